"""Reading Label Studio tasks: their annotations, and their images' files.

:func:`task_annotation` reads a task's latest finished ``choices`` annotation (for the live
sync of :mod:`activegen.server.label_studio` and for exports alike).

A practitioner who labeled some photos in Label Studio exports them (JSON, or JSON-MIN) and
passes the file as ``--labels``. Label Studio does not keep the folder's paths: a task's image
is an upload (``/data/upload/3/8f2e1c0a-cat_01.jpg``, the name prefixed with 8 hex digits), a
local-storage link (``/data/local-files/?d=photos/cats/cat_01.jpg``), a cloud URL
(``s3://bucket/photos/cats/cat_01.jpg``) or, for tasks activegen made, ``data.path``. Each is
matched to the folder's relative paths by the longest trailing run of path components that
names exactly one image; a name that matches none, or several equally well, is refused naming
the task, before anything starts.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from activegen.errors import DataError
from activegen.oracles.base import ABSTAIN
from activegen.server.interchange import CANT_TELL

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


class LabelStudioTaskError(DataError):
    """A Label Studio task whose annotation activegen cannot read (the task is named)."""


def choice_result(name: str) -> list[dict[str, Any]]:
    """A ``choices`` result of activegen's labeling config (``label`` on ``image``)."""
    return [{"from_name": "label", "to_name": "image", "type": "choices",
             "value": {"choices": [name]}}]


def task_annotation(task: dict[str, Any], classes: Sequence[str]) -> int | None:
    """The class (``-1`` = can't tell) of a task's latest finished annotation; None without.

    Raises:
        LabelStudioTaskError: the annotation's choice is not one of ``classes`` (task named).
    """
    done = [a for a in task.get("annotations") or []
            if not a.get("was_cancelled") and a.get("result")]
    if not done:
        return None
    latest = max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""),
                                      int(a.get("id") or 0)))
    chosen = [c for r in latest["result"] if r.get("type") == "choices"
              for c in (r.get("value") or {}).get("choices") or []]
    if len(chosen) != 1:
        raise LabelStudioTaskError(f"Label Studio task {task.get('id')}: its annotation has "
                               f"{len(chosen)} choices, expected one")
    if chosen[0] == CANT_TELL:
        return ABSTAIN
    if chosen[0] not in classes:
        raise LabelStudioTaskError(f"Label Studio task {task.get('id')}: class {chosen[0]!r} is "
                               f"not one of {list(classes)}")
    return list(classes).index(chosen[0])


def reference_parts(ref: str) -> list[str]:
    """The path components an image reference names (query ``d=`` of local files included)."""
    parsed = urllib.parse.urlparse(ref)
    path = urllib.parse.unquote(parsed.path)
    local = urllib.parse.parse_qs(parsed.query).get("d")
    if local:
        path = local[0]
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def suffix_index(index_of: Mapping[str, int]) -> dict[tuple[str, ...], set[int]]:
    """Every trailing run of path components of the folder's files -> the images it names."""
    out: dict[tuple[str, ...], set[int]] = {}
    for rel, i in index_of.items():
        parts = tuple(rel.split("/"))
        for k in range(1, len(parts) + 1):
            out.setdefault(parts[-k:], set()).add(i)
    return out


def match_file(ref: str, index_of: Mapping[str, int],
               suffixes: Mapping[tuple[str, ...], set[int]], where: str) -> int:
    """The image index ``ref`` names (see the module docstring).

    Raises:
        DataError: no image of the folder matches, or several match equally well.
    """
    if ref in index_of:
        return index_of[ref]
    parts = reference_parts(ref)
    if not parts:
        raise DataError(f"{where}: image reference {ref!r} names no file")
    variants = [parts]
    stripped = _UPLOAD_PREFIX.sub("", parts[-1])
    if stripped != parts[-1] and stripped:
        variants.append([*parts[:-1], stripped])  # Label Studio's upload prefix
    for k in range(len(parts), 0, -1):  # the longest trailing run first
        hits = set().union(*(suffixes.get(tuple(v[-k:]), set()) for v in variants))
        if len(hits) == 1:
            return hits.pop()
        if len(hits) > 1:
            names = sorted(rel for rel, i in index_of.items() if i in hits)[:3]
            raise DataError(f"{where}: image {ref!r} matches several files of the folder "
                            f"({', '.join(names)}, ...); export with the folder's paths")
    raise DataError(f"{where}: image {ref!r} matches no readable image of the folder")


def _image_reference(task: dict[str, Any]) -> str | None:
    data = task.get("data") if isinstance(task.get("data"), dict) else task
    if isinstance(data.get("path"), str):
        return str(data["path"])
    image = data.get("image")
    if isinstance(image, str) and not image.startswith("data:"):
        return image
    refs = [v for k, v in data.items() if isinstance(v, str) and k not in ("id",)
            and re.search(r"\.(png|jpe?g|bmp|gif|tiff?|webp)(\?|$)", v, re.I)]
    return refs[0] if len(refs) == 1 else None


def _min_label(task: dict[str, Any], classes: Sequence[str], where: str) -> int | None:
    """The class of a JSON-MIN row (``{"image": ..., "label": "cat"}``); None without."""
    named = task.get("label")
    if isinstance(named, dict):
        named = (named.get("choices") or [None])[0] if len(named.get("choices") or []) == 1 \
            else named
    if isinstance(named, str):  # activegen's control name: its value must be a class
        if named == "can't tell":
            return ABSTAIN
        if named not in classes:
            raise DataError(f"{where}: class {named!r} is not one of {list(classes)}")
        return list(classes).index(named)
    values = [v for k, v in task.items() if k not in ("image", "path", "id", "annotator",
                                                         "annotation_id", "created_at",
                                                         "updated_at", "lead_time")
              and isinstance(v, str) and (v in classes or v == "can't tell")]
    choices = [v.get("choices") for v in task.values() if isinstance(v, dict)]
    values += [c[0] for c in choices if isinstance(c, list) and len(c) == 1
               and (c[0] in classes or c[0] == "can't tell")]
    if not values:
        return None
    if len(set(values)) != 1:
        raise DataError(f"{where}: several class values {sorted(set(values))}")
    return ABSTAIN if values[0] == "can't tell" else list(classes).index(values[0])


def read_label_studio_labels(path: Path, classes: Sequence[str], index_of: Mapping[str, int]
                             ) -> list[tuple[int, int]]:
    """``(image index, label)`` pairs from a Label Studio JSON or JSON-MIN export.

    Tasks without a finished annotation, and "can't tell" answers, are left out.

    Raises:
        DataError: not a JSON list of tasks, a task whose image matches no file (or several),
            a class not in ``classes``, or two tasks giving one file different classes.
    """
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a Label Studio JSON export ({exc})") from None
    if not isinstance(tasks, list):
        raise DataError(f"{path}: a Label Studio export is a JSON list of tasks")
    found: dict[int, int] = {}
    suffixes = suffix_index(index_of)
    for n, task in enumerate(tasks):
        where = f"{path}, task {task.get('id', n) if isinstance(task, dict) else n}"
        if not isinstance(task, dict):
            raise DataError(f"{where}: not a task object")
        try:
            label = (task_annotation(task, classes) if "annotations" in task
                     else _min_label(task, classes, where))
        except LabelStudioTaskError as exc:
            raise DataError(f"{where}: {exc}") from None
        if label is None or label == ABSTAIN:
            continue
        ref = _image_reference(task)
        if ref is None:
            raise DataError(f"{where}: no image file name (data.image is embedded or absent)")
        index = match_file(ref, index_of, suffixes, where)
        if found.get(index, label) != label:
            raise DataError(f"{where}: {ref!r} has two different classes in the export")
        found[index] = label
    return sorted(found.items())
