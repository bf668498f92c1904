"""Labels a practitioner already has for an image folder, by file name (``[images] labels``,
``--labels FILE``): a CSV ``path,label`` or a Label Studio export."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from activegen.server.core.errors import InvalidImport
from activegen.server.interop.label_files import OneLabelEach, read_labels_text
from activegen.server.interop.label_studio_tasks import read_label_studio_export


def read_known_labels(path: Path, classes: Sequence[str], index_of: Mapping[str, int]
                      ) -> list[tuple[int, int]]:
    """``(image index, label)`` pairs from a CSV ``path,label`` (``label`` a class name), or
    from a Label Studio JSON export (``.json``: tasks matched to files by name, see
    :mod:`activegen.server.interop.label_studio_tasks`).

    Raises:
        InvalidImport: no such file, not UTF-8, a bad header, a row naming an unknown file or
            class, or two rows giving one file different classes (the rows and the file are
            named).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidImport(f"{path}: no such labels file")
    if path.suffix.lower() == ".json":
        return read_label_studio_export(path, classes, index_of)
    try:
        reader = csv.DictReader(io.StringIO(read_labels_text(path)))
        fields = reader.fieldnames
    except csv.Error as exc:
        raise InvalidImport(f"{path}: not a CSV file ({exc})") from None
    if not {"path", "label"} <= set(fields or []):
        raise InvalidImport(f"{path}: needs a header with 'path' and 'label'; got {fields}")
    rows = OneLabelEach("file", classes)
    try:
        for line, row in enumerate(reader, start=2):
            name, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
            if name not in index_of:
                raise InvalidImport(f"{path}, row {line}: file {name!r} is not a readable image "
                                    "of the folder")
            if label not in classes:
                raise InvalidImport(f"{path}, row {line} ({name}): class {label!r} is not one "
                                    f"of {list(classes)}")
            rows.add(name, list(classes).index(label), f"{path}, row {line}")
    except csv.Error as exc:
        raise InvalidImport(f"{path}, row {reader.line_num}: not CSV ({exc})") from None
    return [(index_of[name], label) for name, label in rows.items]
