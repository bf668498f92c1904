"""Reading Label Studio tasks: their answers, and their images' files.

:func:`task_answer` is the one reader of a task's answer, used by the live sync
(:mod:`activegen.server.interop.label_studio`), the import of an export by ``pool_index``
(:mod:`activegen.server.interop.interchange`) and the known labels of an image folder
(:func:`read_label_studio_export`): a task's latest finished annotation (not cancelled, with a
result) and its single ``choices`` value, or, in a JSON-MIN export (one flat row per task),
the row's choice.

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

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from activegen.oracles.base import ABSTAIN
from activegen.server.core.errors import InvalidImport
from activegen.server.interop.label_files import parse_json_text, read_labels_text

#: The class name of the answer ``-1`` in every export and in Label Studio's choices.
CANT_TELL = "can't tell"
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


def choice_result(name: str) -> list[dict[str, Any]]:
    """A ``choices`` result of activegen's labeling config (``label`` on ``image``)."""
    return [{"from_name": "label", "to_name": "image", "type": "choices",
             "value": {"choices": [name]}}]


def task_answer(task: Mapping[str, Any], classes: Sequence[str],
                where: str | None = None) -> int | None:
    """The answer of one Label Studio task (see the module docstring): a class index, ``-1``
    for "can't tell", or None when the task has no finished answer.

    Raises:
        InvalidImport: the annotation has several choices, or a choice that is not one of
            ``classes`` (the task is named: ``where``, default its id).
    """
    where = where or f"Label Studio task {task.get('id')}"
    if "annotations" not in task:
        return _min_label(task, classes, where)
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise InvalidImport(f"{where}: its annotations are not a list")
    done = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")
            and isinstance(a.get("result"), list) and a["result"]]
    if not done:
        return None
    latest = max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""),
                                      _number(a.get("id"))))
    values = [r.get("value") for r in latest["result"]
              if isinstance(r, dict) and r.get("type") == "choices"]
    chosen = [c for v in values if isinstance(v, dict) and isinstance(v.get("choices"), list)
              for c in v["choices"]]
    if len(chosen) != 1:
        raise InvalidImport(f"{where}: its annotation has {len(chosen)} choices, expected one")
    return _class_of(chosen[0], classes, where)


def _number(value: object) -> float:
    """An annotation's id as a sort key (0 for anything that is not a number)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and value == value else 0.0


def _class_of(name: object, classes: Sequence[str], where: str) -> int:
    if name == CANT_TELL:
        return ABSTAIN
    if not isinstance(name, str) or name not in classes:
        raise InvalidImport(f"{where}: class {name!r} is not one of {list(classes)}")
    return list(classes).index(name)


def _min_label(task: Mapping[str, Any], classes: Sequence[str], where: str) -> int | None:
    """The answer of a JSON-MIN row (``{"image": ..., "label": "cat"}``); None without."""
    named = task.get("label")
    if isinstance(named, dict) and isinstance(named.get("choices"), list) \
            and len(named["choices"]) == 1:
        named = named["choices"][0]
    if isinstance(named, str):  # activegen's control name: its value must be a class
        return _class_of(named, classes, where)
    values = [v for k, v in task.items() if k not in ("image", "path", "id", "annotator",
                                                         "annotation_id", "created_at",
                                                         "updated_at", "lead_time")
              and isinstance(v, str) and (v in classes or v == CANT_TELL)]
    choices = [v.get("choices") for v in task.values() if isinstance(v, dict)]
    values += [c[0] for c in choices if isinstance(c, list) and len(c) == 1
               and (c[0] in classes or c[0] == CANT_TELL)]
    if not values:
        return None
    if len(set(values)) != 1:
        raise InvalidImport(f"{where}: several class values {sorted(set(values))}")
    return _class_of(values[0], classes, where)


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
        InvalidImport: no image of the folder matches, or several match equally well.
    """
    if ref in index_of:
        return index_of[ref]
    parts = reference_parts(ref)
    if not parts:
        raise InvalidImport(f"{where}: image reference {ref!r} names no file")
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
            raise InvalidImport(f"{where}: image {ref!r} matches several files of the folder "
                            f"({', '.join(names)}, ...); export with the folder's paths")
    raise InvalidImport(f"{where}: image {ref!r} matches no readable image of the folder")


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


def read_label_studio_export(path: Path, classes: Sequence[str], index_of: Mapping[str, int]
                             ) -> list[tuple[int, int]]:
    """``(image index, label)`` pairs from a Label Studio JSON or JSON-MIN export, images
    matched to files by name (see the module docstring).

    Tasks without a finished answer, and "can't tell" answers, are left out.

    Raises:
        InvalidImport: not a JSON list of tasks, a task whose image matches no file (or
            several), a class not in ``classes``, or two tasks giving one file different
            classes (the file and the task are named).
    """
    tasks = parse_json_text(read_labels_text(Path(path)), f"{path}: a Label Studio export")
    if not isinstance(tasks, list):
        raise InvalidImport(f"{path}: a Label Studio export is a JSON list of tasks")
    found: dict[int, int] = {}
    suffixes = suffix_index(index_of)
    for n, task in enumerate(tasks):
        where = f"{path}, task {task.get('id', n) if isinstance(task, dict) else n}"
        if not isinstance(task, dict):
            raise InvalidImport(f"{where}: not a task object")
        label = task_answer(task, classes, where)
        if label is None or label == ABSTAIN:
            continue
        ref = _image_reference(task)
        if ref is None:
            raise InvalidImport(f"{where}: no image file name (data.image is embedded or "
                                "absent)")
        index = match_file(ref, index_of, suffixes, where)
        if found.get(index, label) != label:
            raise InvalidImport(f"{where}: {ref!r} has two different classes in the export")
        found[index] = label
    return sorted(found.items())
