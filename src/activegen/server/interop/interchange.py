"""Labels in and out: CSV, JSON, and Label Studio tasks with annotations.

**Exports** are built from the store alone (:func:`export_source`: the answers, and from its
``meta`` the classes, the settings, an image folder's files and its audit answers and
estimate), so the page's export and ``activegen label-export STORE`` are the same file. An
image folder's exports name each image's file (``path``) and carry the audit answers as rows
of ``source`` ``audit`` (no query, no pool index: the audit is never in the pool).

**Imports** go through one reader (:func:`read_label_rows`): a CSV, this app's JSON export or
a Label Studio export, each row giving a ``pool_index`` and/or a ``path`` and an answer. A
CSV's answer is its ``class`` column (a class name, or ``can't tell``), else its ``label``
column (a class name first, else a class index, ``-1`` = can't tell); with both, they must
agree. A dataset session takes rows by ``pool_index`` (:func:`pool_index_pairs`, for
``--import`` and ``POST /api/import``); an image folder takes them by ``path``
(:mod:`activegen.server.images.known_labels`, ``--labels``), so the page's own export of a
folder session seeds a new store, its audit answers included. Synthesized images exist only
in the store that asked them, so imports skip them (and count them). A text that cannot be
read is an :class:`~activegen.server.core.errors.InvalidImport` naming the row or task,
checked in full before anything is imported. A labels file is read as data
(:mod:`~activegen.server.interop.label_files`): UTF-8 required (a byte-order mark accepted),
JSON no deeper than the parser goes, and two rows giving one image different labels are
refused, both named (the same label twice is kept once).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from activegen.server.core.audit import audit_state, read_audit_answers
from activegen.server.core.errors import InvalidImport
from activegen.server.core.schema import AUDIT_CURVE_KEY, AUDIT_FILES_KEY, AUDIT_KEY, FILES_KEY
from activegen.server.interop.label_files import OneLabelEach, parse_json_text, read_labels_text
from activegen.server.interop.label_studio_tasks import CANT_TELL, task_answer

CSV_COLUMNS = ("query_id", "round", "kind", "source", "pool_index", "label", "class", "labeler",
               "timestamp", "generator_id")


def _class_name(classes: Sequence[str], label: int) -> str:
    return CANT_TELL if label < 0 else classes[label]


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat()


#: A cell starting with one of these is run as a formula by spreadsheet programs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_safe(text: str) -> str:
    """``text`` with a leading apostrophe if a spreadsheet would run it as a formula (OWASP's
    advice for CSV injection); the import strips it again."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


# -- export ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportSource:
    """Everything an export holds, read from the store.

    Attributes:
        answers: every answer with its query, in the order given (``LabelStore.answered``).
        classes: the class names.
        files: each pool image's file (an image folder's), None without files.
        audit: the audit answers, in the order given: ``audit_id``, ``path``, ``label``,
            ``labeler``, ``ts``.
        session: the session's name, seed, strategy, learner, budget and (with an audit) its
            estimate and curve.
    """

    answers: list[dict[str, Any]]
    classes: list[str]
    files: list[str] | None
    audit: list[dict[str, Any]]
    session: dict[str, Any]

    @property
    def has_paths(self) -> bool:
        return self.files is not None or bool(self.audit)

    def path(self, pool_index: int | None) -> str:
        return "" if self.files is None or pool_index is None else self.files[pool_index]


def export_source(answers: list[dict[str, Any]], meta: Mapping[str, str]) -> ExportSource:
    """The export of a store: its answers and its ``meta`` table (see :class:`ExportSource`)."""
    config = json.loads(meta.get("config") or "{}")
    files = json.loads(meta[FILES_KEY]) if FILES_KEY in meta else None
    audit_files = json.loads(meta.get(AUDIT_FILES_KEY) or "[]")
    given = read_audit_answers(meta.get(AUDIT_KEY))
    audit = sorted(({"audit_id": j, "path": audit_files[j] if j < len(audit_files) else "",
                     "label": int(a["label"]), "labeler": str(a["labeler"]),
                     "ts": a.get("ts")} for j, a in given.items()),
                   key=lambda a: (a["ts"] is None, a["ts"] or 0, a["audit_id"]))
    session: dict[str, Any] = {
        "name": config.get("name"), "seed": config.get("seed"),
        "strategy": (config.get("strategy") or {}).get("name"),
        "learner": (config.get("learner") or {}).get("name"),
        "budget": (config.get("loop") or {}).get("budget")}
    if audit_files:
        session["audit"] = audit_state(len(audit_files), len(given),
                                       json.loads(meta.get(AUDIT_CURVE_KEY) or "[]"))
    return ExportSource(answers, list(json.loads(meta["classes"])), files, audit, session)


def to_csv(source: ExportSource) -> str:
    """One line per answer, in the order they were given, then the audit answers (``source``
    ``audit``); an image folder's export ends with a ``path`` column naming each file."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    paths = source.has_paths
    writer.writerow(CSV_COLUMNS + (("path",) if paths else ()))
    classes = source.classes
    for r in source.answers:
        writer.writerow([r["query_id"], r["round"], r["kind"], r["source"],
                         "" if r["pool_index"] is None else r["pool_index"], r["label"],
                         _spreadsheet_safe(_class_name(classes, r["label"])),
                         _spreadsheet_safe(r["labeler"]), _iso(r["ts"]),
                         r["generator_id"] or ""]
                        + ([_spreadsheet_safe(source.path(r["pool_index"]))] if paths else []))
    for a in source.audit:
        writer.writerow(["", "", "pool", "audit", "", a["label"],
                         _spreadsheet_safe(_class_name(classes, a["label"])),
                         _spreadsheet_safe(a["labeler"]), _iso(a["ts"]), "",
                         _spreadsheet_safe(a["path"])])
    return buffer.getvalue()


def _latent_list(latent: bytes | None) -> list[float] | None:
    if latent is None:
        return None
    return np.load(io.BytesIO(latent), allow_pickle=False).astype(float).ravel().tolist()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def to_json(source: ExportSource) -> str:
    """Every answer, then the audit answers; synthesized ones carry their PNG (base64), latent
    and generator; an image folder's carry their file."""
    labels = []
    classes = source.classes
    for r in source.answers:
        item = {k: r[k] for k in ("query_id", "round", "kind", "source", "pool_index", "label",
                                  "labeler")}
        if source.has_paths:
            item["path"] = source.path(r["pool_index"]) or None
        item["class"] = _class_name(classes, r["label"])
        item["timestamp"] = _iso(r["ts"])
        if r["kind"] == "synth":
            item["generator_id"] = r["generator_id"]
            item["latent"] = _latent_list(r["latent"])
            item["image_png_base64"] = base64.b64encode(r["image"]).decode()
        labels.append(item)
    for a in source.audit:
        labels.append({"query_id": None, "round": None, "kind": "pool", "source": "audit",
                       "pool_index": None, "label": a["label"], "labeler": a["labeler"],
                       "path": a["path"], "class": _class_name(classes, a["label"]),
                       "timestamp": _iso(a["ts"])})
    return json.dumps({"format": "activegen-labels", "version": 1, "session": source.session,
                       "classes": classes, "labels": labels}, indent=1)


def to_label_studio(source: ExportSource, image_png: Callable[[int], bytes],
                    audit_png: Callable[[int], bytes] | None = None) -> str:
    """Label Studio tasks with one annotation each (a ``choices`` result named ``label`` on an
    image named ``image``); images are embedded as data URIs, so the file stands alone; an
    image folder's tasks carry their file as ``data.path`` (what ``--labels`` matches), and its
    audit answers are tasks too (``data.audit``).

    ``image_png(query_id)`` returns a query's PNG bytes, ``audit_png(audit_id)`` an audit
    image's.
    """
    classes = source.classes

    def task(task_id: Any, data: dict[str, Any], label: int, ts: float | None,
             labeler: str) -> dict[str, Any]:
        return {"id": task_id, "data": data, "annotations": [{
            "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                        "value": {"choices": [_class_name(classes, label)]}}],
            "created_at": _iso(ts), "meta": {"labeler": labeler}}]}

    tasks = []
    for r in source.answers:
        data = {"image": _data_uri(image_png(r["query_id"])), "query_id": r["query_id"],
                "pool_index": r["pool_index"], "kind": r["kind"],
                "generator_id": r["generator_id"]}
        if source.files is not None and r["pool_index"] is not None:
            data["path"] = source.path(r["pool_index"])
        tasks.append(task(r["query_id"], data, r["label"], r["ts"], r["labeler"]))
    for a in source.audit if audit_png is not None else ():
        data = {"image": _data_uri(audit_png(a["audit_id"])), "pool_index": None,
                "path": a["path"], "audit": True}
        tasks.append(task(f"audit-{a['audit_id']}", data, a["label"], a["ts"], a["labeler"]))
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


# -- import ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelRow:
    """One answer read from a labels file.

    Attributes:
        where: the row or task, for messages (``CSV line 3``, ``task 2``).
        label: a class index, or ``-1`` (can't tell).
        pool_index: the image's row in the pool (None: not given, or an audit image).
        path: the image's file (None: not given).
        audit: an audit answer of an image folder's export.
        synthesized: a synthesized query (only the store that asked it holds its image).
        answered: False for a Label Studio task without a finished answer (counted, never
            imported).
    """

    where: str
    label: int
    pool_index: int | None = None
    path: str | None = None
    audit: bool = False
    synthesized: bool = False
    answered: bool = True


def _unescaped(value: str) -> str:
    value = value.strip()
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        value = value[1:]  # the apostrophe our CSV export adds against formulas
    return value


def _by_name(value: str, classes: Sequence[str]) -> int | None:
    if value == CANT_TELL:
        return -1
    return list(classes).index(value) if value in classes else None


def _answer(class_value: Any, label_value: Any, classes: Sequence[str], where: str) -> int:
    """A row's answer from its ``class`` and/or ``label`` values (see the module docstring)."""
    label = None
    if label_value is not None and str(label_value).strip() != "":
        text = _unescaped(str(label_value))
        label = _by_name(text, classes)
        if label is None:
            try:
                label = int(text)
            except ValueError:
                raise InvalidImport(f"{where}: label {text!r} is not a class of "
                                    f"{list(classes)} and not an integer class index") from None
            if not -1 <= label < len(classes):
                raise InvalidImport(f"{where}: label {label} is outside -1..{len(classes) - 1}")
    if class_value is None or str(class_value).strip() == "":
        if label is None:
            raise InvalidImport(f"{where}: no answer (an empty class and label)")
        return label
    name = _unescaped(str(class_value))
    by_name = _by_name(name, classes)
    if by_name is None:
        raise InvalidImport(f"{where}: class {name!r} is not one of {list(classes)}")
    if label is not None and label != by_name:
        raise InvalidImport(f"{where}: class {name!r} and label {label_value!r} disagree")
    return by_name


def _pool_index(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        index = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidImport(f"{where}: pool_index {value!r} is not an integer") from None
    if isinstance(value, float) and not float(value).is_integer():
        raise InvalidImport(f"{where}: pool_index {value!r} is not an integer")
    return index


def _row(where: str, values: Mapping[str, Any], classes: Sequence[str]) -> LabelRow:
    path = values.get("path")
    path = _unescaped(str(path)) if path not in (None, "") else None
    named = f"{where} ({path})" if path else where
    return LabelRow(where, _answer(values.get("class"), values.get("label"), classes, named),
                    _pool_index(values.get("pool_index"), named), path or None,
                    audit=values.get("source") == "audit",
                    synthesized=values.get("kind") == "synth")


def parse_csv(text: str, classes: Sequence[str]) -> list[LabelRow]:
    """The rows of a CSV with a ``pool_index`` or ``path`` column and a ``class`` or
    ``label`` column (this app's export has them all)."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        fields = set(reader.fieldnames or [])
    except csv.Error as exc:
        raise InvalidImport(f"CSV import: not CSV ({exc})") from None
    if not ({"pool_index", "path"} & fields) or not ({"class", "label"} & fields):
        raise InvalidImport("CSV import needs a header with 'pool_index' or 'path' (the image) "
                            "and 'class' (a class name) or 'label' (a class name or number); "
                            f"got {sorted(fields)}")
    try:
        return [_row(f"CSV line {line}", row, classes)
                for line, row in enumerate(reader, start=2)]
    except csv.Error as exc:
        raise InvalidImport(f"CSV line {reader.line_num}: not CSV ({exc})") from None


def parse_json(text: str, classes: Sequence[str]) -> list[LabelRow]:
    """The rows of this app's JSON export."""
    payload = parse_json_text(text, "JSON import")
    if not isinstance(payload, dict) or not isinstance(payload.get("labels"), list):
        raise InvalidImport("JSON import: expected activegen's export (an object with "
                            "'labels') or a Label Studio export (a JSON list of tasks)")
    if payload.get("classes") is not None and payload["classes"] != list(classes):
        raise InvalidImport(f"JSON import: its classes {payload['classes']} are not this "
                            f"session's {list(classes)}")
    rows = []
    for i, item in enumerate(payload["labels"]):
        if not isinstance(item, dict):
            raise InvalidImport(f"labels[{i}]: not an object")
        rows.append(_row(f"labels[{i}]", item, classes))
    return rows


def parse_label_studio(text: str, classes: Sequence[str]) -> list[LabelRow]:
    """The tasks of a Label Studio JSON export, each with its ``data.pool_index`` and
    ``data.path`` as given (a task without a finished answer is a row not ``answered``)."""
    tasks = parse_json_text(text, "Label Studio import")
    if not isinstance(tasks, list):
        raise InvalidImport("Label Studio import: expected a list of tasks")
    rows = []
    for i, task in enumerate(tasks):
        where = f"task {i}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise InvalidImport(f"{where}: not a task with 'data'")
        data = task["data"]
        index = _pool_index(data.get("pool_index"), where)
        label = task_answer(task, classes, where)
        path = data.get("path") if isinstance(data.get("path"), str) else None
        rows.append(LabelRow(where, -1 if label is None else label, index, path,
                             audit=bool(data.get("audit")),
                             synthesized=data.get("kind") == "synth", answered=label is not None))
    return rows


READERS: dict[str, Callable[[str, Sequence[str]], list[LabelRow]]] = {
    "csv": parse_csv, "labelstudio": parse_label_studio, "json": parse_json}


def file_format(path: Path, text: str) -> str:
    """``csv`` (by the file's name), ``labelstudio`` (a JSON list) or ``json`` (an object).

    Raises:
        InvalidImport: neither CSV by its name nor JSON (or JSON nested too deep to read).
    """
    if path.suffix.lower() == ".csv":
        return "csv"
    parsed = parse_json_text(text, f"{path} (neither CSV by its name, nor JSON)")
    return "labelstudio" if isinstance(parsed, list) else "json"


def read_labels(path: Path) -> tuple[str, str]:
    """The format (see :func:`file_format`) and the text of a labels file, read as data: UTF-8
    required (a byte-order mark accepted), JSON no deeper than the parser goes.

    Raises:
        InvalidImport: no such file, unreadable, not UTF-8 (the first bad byte is named), or
            neither CSV nor JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidImport(f"{path}: no such file to import labels from")
    text = read_labels_text(path)
    return file_format(path, text), text


def read_label_rows(path: Path, classes: Sequence[str]) -> tuple[str, list[LabelRow]]:
    """The format and the rows of a labels file (see the module docstring and
    :func:`read_labels`).

    Raises:
        InvalidImport: no such file, not UTF-8, or a row or task that cannot be read (the file
            is named).
    """
    path = Path(path)
    fmt, text = read_labels(path)
    try:
        return fmt, READERS[fmt](text, classes)
    except InvalidImport as exc:
        raise InvalidImport(f"{path}: {exc}") from None


def pool_index_pairs(rows: Sequence[LabelRow], classes: Sequence[str]
                     ) -> tuple[list[tuple[int, int]], int]:
    """``(pool_index, label)`` pairs of a dataset session's import, and how many rows were
    skipped: no answer, or no pool image to give (synthesized images, audit answers). The same
    answer twice for one image is kept once.

    Raises:
        InvalidImport: a row without a pool_index that is neither, or two rows giving one
            image different labels (both rows are named).
    """
    pairs, skipped = OneLabelEach("pool_index", classes), 0
    for row in rows:
        if row.synthesized or row.audit or not row.answered:
            skipped += 1
            continue
        if row.pool_index is None:
            raise InvalidImport(f"{row.where}: no pool_index")
        pairs.add(row.pool_index, row.label, row.where)
    return pairs.items, skipped


def import_pairs(fmt: str, text: str, classes: Sequence[str]
                 ) -> tuple[list[tuple[int, int]], int]:
    """``POST /api/import``: the pairs of a text in ``fmt``, and how many rows were skipped."""
    return pool_index_pairs(READERS[fmt](text, classes), classes)


def read_labels_file(path: Path, classes: list[str]) -> list[tuple[int, int]]:
    """``(pool_index, label)`` pairs from a file (``--import``): a CSV (by its name), a Label
    Studio export (a JSON list) or this app's JSON export.

    Raises:
        InvalidImport: no such file, or a row or task that cannot be read (the file is named).
    """
    _, rows = read_label_rows(path, classes)
    try:
        return pool_index_pairs(rows, classes)[0]
    except InvalidImport as exc:
        raise InvalidImport(f"{path}: {exc}") from None
