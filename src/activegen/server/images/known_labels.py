"""Labels a practitioner already has for an image folder, by file name (``[images] labels``,
``--labels FILE``): a CSV ``path,label`` or a Label Studio export."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from activegen.server.core.errors import InvalidImport
from activegen.server.interop.label_studio_tasks import read_label_studio_export


def read_known_labels(path: Path, classes: Sequence[str], index_of: Mapping[str, int]
                      ) -> list[tuple[int, int]]:
    """``(image index, label)`` pairs from a CSV ``path,label`` (``label`` a class name), or
    from a Label Studio JSON export (``.json``: tasks matched to files by name, see
    :mod:`activegen.server.interop.label_studio_tasks`).

    Raises:
        InvalidImport: no such file, a bad header, or a row naming an unknown file or class
            (the row and the file are named).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidImport(f"{path}: no such labels file")
    if path.suffix.lower() == ".json":
        return read_label_studio_export(path, classes, index_of)
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    if not {"path", "label"} <= set(reader.fieldnames or []):
        raise InvalidImport(f"{path}: needs a header with 'path' and 'label'; got "
                            f"{reader.fieldnames}")
    items = []
    for line, row in enumerate(reader, start=2):
        name, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if name not in index_of:
            raise InvalidImport(f"{path}, row {line}: file {name!r} is not a readable image of "
                                "the folder")
        if label not in classes:
            raise InvalidImport(f"{path}, row {line} ({name}): class {label!r} is not one of "
                                f"{list(classes)}")
        items.append((index_of[name], list(classes).index(label)))
    return items
