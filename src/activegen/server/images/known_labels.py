"""Labels a practitioner already has for an image folder, by file name (``[images] labels``,
``--labels FILE``): a CSV with ``path`` and ``class`` or ``label`` columns (the page's own
export is one), this app's JSON export, or a Label Studio export.

Every format is read by the one reader, :func:`~activegen.server.interop.interchange.
read_label_rows`; here each row is matched to the folder's images by its ``path``. A Label
Studio export names its images by URL, so its tasks are matched by the longest trailing run of
path components (:func:`~activegen.server.interop.label_studio_tasks.
read_label_studio_export`). Audit answers of an earlier session are rows like any other: the
folder decides whether their image is in this session's audit sample or in its pool. Two rows
giving one file different answers are refused, both named (the same answer twice is kept once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from activegen.server.core.errors import InvalidImport
from activegen.server.interop.interchange import read_label_rows, read_labels
from activegen.server.interop.label_files import OneLabelEach
from activegen.server.interop.label_studio_tasks import read_label_studio_export


def read_known_labels(path: Path, classes: Sequence[str], index_of: Mapping[str, int]
                      ) -> list[tuple[int, int]]:
    """``(image index, label)`` pairs of a labels file (``label`` a class index, ``-1`` for
    can't tell); synthesized rows are left out (no folder holds their images).

    Raises:
        InvalidImport: no such file, not UTF-8, JSON nested too deep, a bad header, a row
            without a path, a row naming an unknown file or class, or two rows giving one file
            different answers (the rows and the file are named).
    """
    path = Path(path)
    if read_labels(path)[0] == "labelstudio":
        # tasks name their images by URL (and a JSON-MIN export has no data table)
        return read_label_studio_export(path, classes, index_of)
    _, rows = read_label_rows(path, classes)
    found = OneLabelEach("file", classes)
    for row in rows:
        if row.synthesized:
            continue
        if row.path is None:
            raise InvalidImport(f"{path}, {row.where}: no path (a folder's labels are matched "
                                "to its images by file)")
        if row.path not in index_of:
            raise InvalidImport(f"{path}, {row.where}: file {row.path!r} is not a readable "
                                "image of the folder")
        found.add(row.path, row.label, f"{path}, {row.where}")
    return sorted((index_of[name], label) for name, label in found.items)
