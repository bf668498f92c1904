"""Known labels from a Label Studio export, matched to the folder's files by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activegen.cli import _images_label_config, build_parser
from activegen.errors import DataError
from activegen.server.core.session import LabelSession
from activegen.server.interop.label_studio_tasks import (
    choice_result,
    match_file,
    reference_parts,
    suffix_index,
)
from activegen.server.opening import open_session
from test_image_folder_labeling import NAMES, make_folders

FILES = ["cats/a.jpg", "dogs/a.jpg", "cats/b.png", "c.png", "x/y/deep.png"]


def _match(ref: str) -> str:
    index_of = {p: i for i, p in enumerate(FILES)}
    return FILES[match_file(ref, index_of, suffix_index(index_of), "task 1")]


def test_every_kind_of_image_reference_finds_its_file() -> None:
    assert _match("cats/b.png") == "cats/b.png"  # data.path, as activegen writes it
    assert _match("/data/upload/3/8f2e1c0a-b.png") == "cats/b.png"  # an upload, prefixed
    assert _match("/data/upload/3/c.png") == "c.png"
    assert _match("/data/local-files/?d=photos/dogs/a.jpg") == "dogs/a.jpg"
    assert _match("s3://bucket/photos/cats/a.jpg") == "cats/a.jpg"
    assert _match("https://host/img/x/y/deep.png?token=1") == "x/y/deep.png"
    assert _match("/data/local-files/?d=photos%2Fcats%2Fa.jpg") == "cats/a.jpg"
    assert reference_parts("/data/local-files/?d=a/b.png") == ["a", "b.png"]
    with pytest.raises(DataError, match=r"task 1: image '/data/upload/1/a.jpg' matches several"):
        _match("/data/upload/1/a.jpg")
    with pytest.raises(DataError, match="matches no readable image"):
        _match("/data/upload/1/zzz.png")


def _session(tmp_path: Path, pool_dir: Path, labels: Path) -> LabelSession:
    args = build_parser().parse_args(
        ["label", "--images", str(pool_dir), "--classes", ",".join(NAMES), "--size", "16",
         "--channels", "1", "--audit", "10", "--budget", "20", "--labels", str(labels)])
    return open_session(_images_label_config(args), tmp_path / "s.sqlite")


def _task(i: int, image: str, choice: str | None, cancelled: bool = False) -> dict:
    annotations = [] if choice is None else [
        {"id": i, "result": choice_result(choice), "was_cancelled": cancelled,
         "updated_at": "2026-12-01T10:00:00Z"}]
    return {"id": i, "data": {"image": image}, "annotations": annotations}


def test_a_label_studio_export_seeds_the_session_by_file_name(tmp_path: Path) -> None:
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=60, n_held=0)
    names = sorted(truth)
    chosen, rest = names[:24], names[24:]
    tasks = []
    for k, rel in enumerate(chosen):  # the three ways images reach Label Studio
        ref = (f"/data/upload/7/{k:08x}-{rel.split('/')[-1]}" if k % 3 == 0 and "/" not in rel
               else f"/data/local-files/?d=photos/{rel}" if k % 3 == 1
               else f"s3://bucket/photos/{rel}")
        tasks.append(_task(k, ref, NAMES[truth[rel]]))
    tasks.append(_task(100, f"s3://b/photos/{rest[0]}", None))  # not annotated: left out
    tasks.append(_task(101, f"s3://b/photos/{rest[1]}", "two", cancelled=True))  # cancelled
    tasks.append(_task(102, f"s3://b/photos/{rest[2]}", "can't tell"))  # no class: left out
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    session = _session(tmp_path, pool_dir, export)
    try:
        assert session.files is not None and session.audit is not None
        imported = {session.files[r["pool_index"]]: r["label"] for r in session.store.answered()
                    if r["source"] == "import"}
        audit = {session.audit.files[j]: a["label"] for j, a in session.audit.answers().items()}
        assert {**imported, **audit} == {rel: truth[rel] for rel in chosen}
        assert not set(imported) & set(audit)
    finally:
        session.close()

    # JSON-MIN: one flat row per task, the choice under the control's name
    minimal = [{"id": k, "image": f"/data/local-files/?d=photos/{rel}", "label": NAMES[truth[rel]]}
               for k, rel in enumerate(chosen[:5])]
    export.write_text(json.dumps(minimal))
    (tmp_path / "m").mkdir()
    session = _session(tmp_path / "m", pool_dir, export)
    try:
        assert session.files is not None and session.audit is not None
        got = {session.files[r["pool_index"]]: r["label"] for r in session.store.answered()
               if r["source"] == "import"}
        got |= {session.audit.files[j]: a["label"] for j, a in session.audit.answers().items()}
        assert got == {rel: truth[rel] for rel in chosen[:5]}
    finally:
        session.close()


@pytest.mark.parametrize(("tasks", "message"), [
    ([_task(5, "s3://b/photos/nothere.png", "one")], r"task 5: image .* matches no readable"),
    ([_task(6, "s3://b/photos/img0000.png", "cat")], r"task 6: .*class 'cat' is not one of"),
    ([_task(7, "data:image/png;base64,AAAA", "one")], r"task 7: no image file name"),
    ([{"id": 9, "image": "s3://b/photos/img0000.png", "label": "cat"}],
     r"task 9: class 'cat' is not one of"),  # JSON-MIN
    ({"not": "a list"}, "a JSON list of tasks"),
])
def test_a_bad_export_is_refused_naming_the_task(tmp_path: Path, tasks: object,
                                                 message: str) -> None:
    pool_dir, _, _, _ = make_folders(tmp_path, n_pool=20, n_held=0)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    with pytest.raises(DataError, match=message):
        _session(tmp_path, pool_dir, export)
    assert not (tmp_path / "s.sqlite").exists()  # refused before anything is written


def test_one_file_with_two_classes_is_refused(tmp_path: Path) -> None:
    pool_dir, _, truth, _ = make_folders(tmp_path, n_pool=20, n_held=0)
    rel = sorted(truth)[0]
    export = tmp_path / "export.json"
    export.write_text(json.dumps([_task(1, f"s3://b/photos/{rel}", "zero"),
                                  _task(2, f"/data/local-files/?d=x/{rel}", "one")]))
    with pytest.raises(DataError, match="two different classes"):
        _session(tmp_path, pool_dir, export)
