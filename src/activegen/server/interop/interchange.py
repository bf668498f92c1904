"""Labels in and out: CSV, JSON, and Label Studio tasks with annotations.

Exports are built from the store alone. Imports identify images by ``pool_index`` (the row of
the pool as the session's config loads it): a CSV needs ``pool_index`` and either ``class``
(a class name) or ``label`` (a class number, ``-1`` = can't tell); a Label Studio export needs
``data.pool_index`` on each task, its answer read by the one Label Studio reader
(:func:`~activegen.server.interop.label_studio_tasks.task_answer`). Synthesized images exist
only in the store that asked them, so imports skip them (and count them). A text that cannot
be read is an :class:`~activegen.server.core.errors.InvalidImport` naming the row or task,
checked in full before anything is imported.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from activegen.server.core.errors import InvalidImport
from activegen.server.interop.label_files import OneLabelEach, parse_json_text, read_labels_text
from activegen.server.interop.label_studio_tasks import CANT_TELL, task_answer

CSV_COLUMNS = ("query_id", "round", "kind", "source", "pool_index", "label", "class", "labeler",
               "timestamp", "generator_id")


def _class_name(classes: Sequence[str], label: int) -> str:
    return CANT_TELL if label < 0 else classes[label]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


#: A cell starting with one of these is run as a formula by spreadsheet programs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_safe(text: str) -> str:
    """``text`` with a leading apostrophe if a spreadsheet would run it as a formula (OWASP's
    advice for CSV injection); the import strips it again."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _path(paths: Sequence[str] | None, pool_index: int | None) -> str:
    return "" if paths is None or pool_index is None else paths[pool_index]


def to_csv(rows: list[dict[str, Any]], classes: Sequence[str],
           paths: Sequence[str] | None = None) -> str:
    """One line per answer, in the order they were given; with ``paths`` (an image-folder
    session's file of each pool image) a last ``path`` column names each image's file."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + (("path",) if paths is not None else ()))
    for r in rows:
        writer.writerow([r["query_id"], r["round"], r["kind"], r["source"],
                         "" if r["pool_index"] is None else r["pool_index"], r["label"],
                         _spreadsheet_safe(_class_name(classes, r["label"])),
                         _spreadsheet_safe(r["labeler"]), _iso(r["ts"]),
                         r["generator_id"] or ""]
                        + ([_spreadsheet_safe(_path(paths, r["pool_index"]))]
                           if paths is not None else []))
    return buffer.getvalue()


def _latent_list(latent: bytes | None) -> list[float] | None:
    if latent is None:
        return None
    return np.load(io.BytesIO(latent), allow_pickle=False).astype(float).ravel().tolist()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def to_json(rows: list[dict[str, Any]], classes: Sequence[str], session: dict[str, Any],
            paths: Sequence[str] | None = None) -> str:
    """Every answer; synthesized ones carry their PNG (base64), latent and generator; with
    ``paths``, pool images carry their file."""
    labels = []
    for r in rows:
        item = {k: r[k] for k in ("query_id", "round", "kind", "source", "pool_index", "label",
                                  "labeler")}
        if paths is not None:
            item["path"] = _path(paths, r["pool_index"]) or None
        item["class"] = _class_name(classes, r["label"])
        item["timestamp"] = _iso(r["ts"])
        if r["kind"] == "synth":
            item["generator_id"] = r["generator_id"]
            item["latent"] = _latent_list(r["latent"])
            item["image_png_base64"] = base64.b64encode(r["image"]).decode()
        labels.append(item)
    return json.dumps({"format": "activegen-labels", "version": 1, "session": session,
                       "classes": list(classes), "labels": labels}, indent=1)


def to_label_studio(rows: list[dict[str, Any]], classes: Sequence[str],
                    image_png: Callable[[int], bytes]) -> str:
    """Label Studio tasks with one annotation each (a ``choices`` result named ``label`` on an
    image named ``image``); images are embedded as data URIs, so the file stands alone.

    ``image_png(query_id)`` returns a query's PNG bytes.
    """
    tasks = []
    for r in rows:
        tasks.append({
            "id": r["query_id"],
            "data": {"image": _data_uri(image_png(r["query_id"])), "query_id": r["query_id"],
                     "pool_index": r["pool_index"], "kind": r["kind"],
                     "generator_id": r["generator_id"]},
            "annotations": [{
                "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                            "value": {"choices": [_class_name(classes, r["label"])]}}],
                "created_at": _iso(r["ts"]),
                "meta": {"labeler": r["labeler"]},
            }],
        })
    return json.dumps(tasks, indent=1)


def label_studio_config(classes: Sequence[str]) -> str:
    """The Label Studio labeling interface that matches :func:`to_label_studio`."""
    # ElementTree escapes every attribute value: a class folder named 'cats & dogs' or
    # '<img …>' stays a value and can never become markup.
    view = ElementTree.Element("View")
    ElementTree.SubElement(view, "Image", name="image", value="$image", zoom="true")
    choices = ElementTree.SubElement(view, "Choices", name="label", toName="image",
                                     choice="single")
    for c in [*classes, CANT_TELL]:
        ElementTree.SubElement(choices, "Choice", value=str(c))
    return ElementTree.tostring(view, encoding="unicode")


# -- import -------------------------------------------------------------------------------
def _label_from(value: str, classes: Sequence[str], where: str, by_name: bool) -> int:
    value = value.strip()
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        value = value[1:]  # the apostrophe our CSV export adds against formulas
    if by_name:
        if value == CANT_TELL:
            return -1
        if value in classes:
            return list(classes).index(value)
        raise InvalidImport(f"{where}: class {value!r} is not one of {list(classes)}")
    try:
        label = int(value)
    except ValueError:
        raise InvalidImport(f"{where}: label {value!r} is not an integer") from None
    if not -1 <= label < len(classes):
        raise InvalidImport(f"{where}: label {label} is outside -1..{len(classes) - 1}")
    return label


def _pool_index(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise InvalidImport(f"{where}: pool_index {value!r} is not an integer") from None
    if isinstance(value, float) and not float(value).is_integer():
        raise InvalidImport(f"{where}: pool_index {value!r} is not an integer")
    return index


def parse_csv(text: str, classes: Sequence[str]) -> tuple[list[tuple[int, int]], int]:
    """``(pool_index, label)`` pairs from a CSV, and how many rows were skipped (synthesized)."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        fields = set(reader.fieldnames or [])
    except csv.Error as exc:
        raise InvalidImport(f"CSV import: not CSV ({exc})") from None
    if "pool_index" not in fields or not ({"class", "label"} & fields):
        raise InvalidImport("CSV import needs a header with 'pool_index' and 'class' "
                                f"(a class name) or 'label' (a class number); got {sorted(fields)}")
    by_name = "class" in fields
    rows, skipped = OneLabelEach("pool_index", classes), 0
    try:
        for line, row in enumerate(reader, start=2):
            where = f"CSV line {line}"
            index = _pool_index(row.get("pool_index"), where)
            if index is None:
                if row.get("kind") == "synth":
                    skipped += 1
                    continue
                raise InvalidImport(f"{where}: no pool_index")
            value = row.get("class") if by_name else row.get("label")
            rows.add(index, _label_from(value or "", classes, where, by_name), where)
    except csv.Error as exc:
        raise InvalidImport(f"CSV line {reader.line_num}: not CSV ({exc})") from None
    return rows.items, skipped


def parse_label_studio(text: str, classes: Sequence[str]) -> tuple[list[tuple[int, int]], int]:
    """``(pool_index, label)`` pairs from a Label Studio JSON export; tasks without a finished
    answer or without ``data.pool_index`` (synthesized images) are skipped and counted."""
    tasks = parse_json_text(text, "Label Studio import")
    if not isinstance(tasks, list):
        raise InvalidImport("Label Studio import: expected a list of tasks")
    rows, skipped = OneLabelEach("pool_index", classes), 0
    for i, task in enumerate(tasks):
        where = f"task {i}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise InvalidImport(f"{where}: not a task with 'data'")
        index = _pool_index(task["data"].get("pool_index"), where)
        label = None if index is None else task_answer(task, classes, where)
        if index is None or label is None:
            skipped += 1
            continue
        rows.add(index, label, where)
    return rows.items, skipped


def parse_json(text: str, classes: Sequence[str]) -> tuple[list[tuple[int, int]], int]:
    """Pairs from this app's own JSON export."""
    payload = parse_json_text(text, "JSON import")
    if not isinstance(payload, dict) or not isinstance(payload.get("labels"), list):
        raise InvalidImport("JSON import: expected an activegen export with 'labels'")
    if payload.get("classes") is not None and payload["classes"] != list(classes):
        raise InvalidImport(f"JSON import: its classes {payload['classes']} are not this "
                                f"session's {list(classes)}")
    rows, skipped = OneLabelEach("pool_index", classes), 0
    for i, row in enumerate(payload["labels"]):
        where = f"labels[{i}]"
        if not isinstance(row, dict):
            raise InvalidImport(f"{where}: not an object")
        index = _pool_index(row.get("pool_index"), where)
        if index is None:
            skipped += 1
            continue
        rows.add(index, _label_from(str(row.get("label", "")), classes, where, False), where)
    return rows.items, skipped


PARSERS = {"csv": parse_csv, "labelstudio": parse_label_studio, "json": parse_json}


def read_labels_file(path: Path, classes: list[str]) -> list[tuple[int, int]]:
    """``(pool_index, label)`` pairs from a file (``--import``): a CSV (by its name), a Label
    Studio export (a JSON list) or this app's JSON export.

    Raises:
        InvalidImport: no such file, or a row or task that cannot be read (the file is named).
    """
    if not path.is_file():
        raise InvalidImport(f"{path}: no such file to import")
    text = read_labels_text(path)
    if path.suffix.lower() == ".csv":
        fmt = "csv"
    else:
        parsed = parse_json_text(text, f"{path} (neither CSV by its name, nor JSON)")
        fmt = "labelstudio" if isinstance(parsed, list) else "json"
    try:
        items, _ = PARSERS[fmt](text, classes)
    except InvalidImport as exc:
        raise InvalidImport(f"{path}: {exc}") from None
    return items
