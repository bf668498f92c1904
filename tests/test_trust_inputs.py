"""One bad input never stops the work: files, folders, stores, model files and label files
that are wrong are skipped or refused naming what and where, never a traceback, never a
silent accept."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activegen.cli import _images_label_config, build_parser, main
from activegen.models.export import ExportedModel
from activegen.server.core.session import LabelSession
from activegen.server.opening import open_session

NAMES = ("dark", "bright")


def bomb_png(path: Path, side: int = 100_000) -> None:
    """A PNG of a few bytes that declares ``side``² pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def photo_folder(root: Path, n: int = 16) -> Path:
    """``n`` photos, dark and bright alternately (``img00.png`` dark)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shade = 30 if i % 2 == 0 else 220
        Image.new("RGB", (20, 20), (shade, shade, shade)).save(root / f"img{i:02d}.png")
    return root


def open_folder_session(folder: Path, store: Path, *extra: str,
                        cache_dir: Path | None = None) -> LabelSession:
    args = build_parser().parse_args(
        ["label", "--images", str(folder), "--classes", ",".join(NAMES), "--size", "8",
         "--audit", "0", "--budget", "20", *extra])
    config = _images_label_config(args)
    data = config.model_dump(mode="json")
    data["loop"] = {**data["loop"], "initial": 4, "batch": 4}
    data["labeling"] = {**data["labeling"], "background": False}
    if cache_dir is not None:
        data["cache_dir"] = str(cache_dir)
    from activegen.server.config import parse_label_config

    return open_session(parse_label_config(data, "test"), store)


def _bad_files(folder: Path) -> None:
    bomb_png(folder / "bomb.png")
    bomb_png(folder / "bomb-below-twice.png", 10_000)  # Pillow only warns at this size
    Image.new("RGB", (20, 20)).save(os.fsencode(folder) + b"/caf\xe9.png")


# -- 5. a decompression bomb or a name that is not UTF-8 -----------------------------------
def test_5_a_bomb_and_a_non_utf8_name_are_skipped_by_the_session(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos")
    _bad_files(folder)
    session = open_folder_session(folder, tmp_path / "s.sqlite")
    try:
        state = session.state()
        skipped = {s["path"]: s["reason"] for s in state["skipped_files"]}
        assert set(skipped) == {"bomb.png", "bomb-below-twice.png", "caf\\xe9.png"}
        assert "decompression bomb" in skipped["bomb.png"]
        assert "decompression bomb" in skipped["bomb-below-twice.png"]
        assert "not valid UTF-8" in skipped["caf\\xe9.png"]
        json.dumps(state, ensure_ascii=False).encode("utf-8")  # what the page is sent
        assert len(session.files or []) == 16
    finally:
        session.close()


def _pixel_model(path: Path, size: int = 8) -> None:
    d = size * size * 3
    ExportedModel(np.ones((1, d)), np.zeros(1), np.full(d, 0.5, np.float32),
                  np.full(d, 0.25, np.float32), list(NAMES), size, 3, "pixels",
                  "pixels").save(path)


def test_5_predict_skips_a_bomb_and_a_non_utf8_name(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    folder = photo_folder(tmp_path / "photos", 4)
    _bad_files(folder)
    _pixel_model(tmp_path / "m.npz")
    assert main(["predict", str(tmp_path / "m.npz"), str(folder)]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 5  # the header and the four photos
    assert "skipped bomb.png" in err and "skipped caf\\xe9.png: its name is not valid" in err


# -- 7. a store with a row no session writes ---------------------------------------------------
def _answered_store(tmp_path: Path) -> Path:
    from label_support import digits_config, make_session

    store = tmp_path / "s.sqlite"
    session, _ = make_session(store, digits_config([3, 8]))
    try:
        for row in session.batch("a").queries:
            session.label(row.id, 0, "a")
        session.batch("a")  # the next round is open
    finally:
        session.close()
    return store


def _tamper(store: Path, sql: str) -> None:
    import sqlite3

    conn = sqlite3.connect(store)
    with conn:
        conn.execute(sql)
    conn.close()


@pytest.mark.parametrize("sql,named", [
    ("UPDATE labels SET label = 7 WHERE id = 2",
     "labels row 2 (query 2) holds the answer 7, which is not a class (0..1)"),
    ("UPDATE labels SET label = 'cat' WHERE id = 1", "labels row 1 (query 1) holds the answer"),
    ("UPDATE queries SET pool_index = 99999 WHERE id = 6",
     "queries row 6 asks for pool_index 99999, outside the pool (0..249)"),
    ("UPDATE queries SET status = 'labeled' WHERE id = 7",
     "queries row 7 has the status 'labeled' but no answer"),
    ("UPDATE labels SET label = -1 WHERE id = 3",
     "queries row 3 has the status 'labeled' but an answer (labels row 3)"),
])
def test_7_a_store_with_an_impossible_row_is_refused_naming_it(
        tmp_path: Path, sql: str, named: str, capsys: pytest.CaptureFixture) -> None:
    from activegen.errors import DataError
    from label_support import digits_config, make_session

    store = _answered_store(tmp_path)
    _tamper(store, sql)
    with pytest.raises(DataError) as info:
        make_session(store, digits_config([3, 8]))
    message = str(info.value)
    assert str(store) in message and named in message, message
    assert "correct the row, or open another --store" in message
    assert "delete" not in message.lower() and "--fresh" not in message
    assert main(["label-export", str(store)]) == 0  # every other answer still comes out
    out, err = capsys.readouterr()
    assert out.startswith("query_id,") and len(out.splitlines()) >= 4
    if "labels SET label = 7" in sql or "'cat'" in sql:
        assert "left out" in err and "labels row" in err


def test_7_a_synthesized_image_that_is_not_a_png_is_named(tmp_path: Path) -> None:
    from activegen.errors import DataError
    from label_support import FakeSynthesis, digits_config, make_session

    store = tmp_path / "s.sqlite"
    session, _ = make_session(store, digits_config([3, 8]), strategy=FakeSynthesis())
    try:
        for row in session.batch("a").queries:
            session.label(row.id, 0, "a")
        session.batch("a")
    finally:
        session.close()
    _tamper(store, "UPDATE queries SET image = x'00010203' WHERE kind = 'synth'")
    with pytest.raises(DataError, match=r"s\.sqlite: a synthesized query of round \d+ holds an "
                                         "image that is not a PNG"):
        make_session(store, digits_config([3, 8]), strategy=FakeSynthesis())


# -- 6. a folder that grows -----------------------------------------------------------------
def _answered_files(session: LabelSession) -> dict[str, int]:
    assert session.files is not None
    return {session.files[r["pool_index"]]: r["label"] for r in session.store.answered()}


def test_6_a_folder_that_grows_keeps_its_labels(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "photos", 16)
    store = tmp_path / "s.sqlite"
    session = open_folder_session(folder, store, "--audit", "3")
    try:
        for row in session.batch("a").queries:
            assert session.files is not None and row.pool_index is not None
            session.label(row.id, int(session.files[row.pool_index][3:5]) % 2, "a")
        before, audit = _answered_files(session), list(session.audit.files)  # type: ignore
    finally:
        session.close()
    # a photo that sorts among the others, one that sorts last
    Image.new("RGB", (20, 20), (30, 30, 30)).save(folder / "img05b.png")
    Image.new("RGB", (20, 20), (220, 220, 220)).save(folder / "zz.png")
    session = open_folder_session(folder, store, "--audit", "3")
    try:
        assert _answered_files(session) == before  # each answer still labels its own file
        assert session.audit is not None and session.audit.files == audit
        assert session.files is not None and session.files[-2:] == ["img05b.png", "zz.png"]
        assert len(session.files) == 16 - 3 + 2
        assert session.batch("a").queries  # the session goes on
    finally:
        session.close()


@pytest.mark.parametrize("change", ["removed", "changed"])
def test_6_an_image_the_session_has_seen_is_not_replaced_silently(
        tmp_path: Path, change: str) -> None:
    from activegen.errors import ConfigError

    folder = photo_folder(tmp_path / "photos", 16)
    store = tmp_path / "s.sqlite"
    open_folder_session(folder, store, "--audit", "3").close()
    if change == "removed":
        (folder / "img04.png").unlink()
    else:
        Image.new("RGB", (20, 20), (1, 2, 3)).save(folder / "img04.png")
    with pytest.raises(ConfigError) as info:
        open_folder_session(folder, store, "--audit", "3")
    message = str(info.value)
    assert str(store) in message and "img04.png" in message
    assert "restore them, or open another --store" in message
    assert "delete" not in message.lower()


# -- 9. model files with values that would predict nonsense ----------------------------------
def _model(path: Path, size: int = 8, classes: tuple[str, ...] = NAMES,
           features: str = "pixels", dim: int | None = None, **arrays: np.ndarray) -> Path:
    d = size * size * 3 if dim is None else dim
    values = {"coef": np.ones((1, d)), "intercept": np.zeros(1),
              "feature_mean": np.full(d, 0.5, np.float32),
              "feature_scale": np.full(d, 0.25, np.float32), **arrays}
    ExportedModel(values["coef"], values["intercept"], values["feature_mean"],
                  values["feature_scale"], list(classes), size, 3, features,
                  "pixels" if features == "pixels" else "backbone:sha256=" + "ab" * 32
                  ).save(path)
    return path


def _nested_header(path: Path) -> Path:
    d = 8 * 8 * 3
    np.savez(path, coef=np.ones((1, d)), intercept=np.zeros(1),
             feature_mean=np.zeros(d, np.float32), feature_scale=np.ones(d, np.float32),
             header=np.frombuffer(b"[" * 50_000 + b"]" * 50_000, dtype=np.uint8))
    return path


@pytest.mark.parametrize("make,named", [
    (lambda p: _model(p, coef=np.full((1, 192), np.nan)), "coef holds nan at flat index 0"),
    (lambda p: _model(p, intercept=np.array([np.inf])), "intercept holds inf"),
    (lambda p: _model(p, feature_scale=np.zeros(192, np.float32)),
     "feature_scale holds 0.0 at index 0; a scale must be positive"),
    (lambda p: _model(p, classes=("cat", "cat", "dog"), coef=np.ones((3, 192)),
                      intercept=np.zeros(3)), "header classes name ['cat'] more than once"),
    (lambda p: _model(p, size=16, dim=192),
     "the arrays have 192 features, but 'pixels' gives 768 for 16x16 images"),
    (lambda p: _model(p, features="backbone:/elsewhere/resnet18.pth", dim=512),
     "backbone weights /elsewhere/resnet18.pth (sha256=abab"),
    (_nested_header, "its header is not JSON"),
])
def test_9_a_model_file_that_would_predict_nonsense_is_refused(
        tmp_path: Path, make, named: str, capsys: pytest.CaptureFixture) -> None:  # type: ignore[no-untyped-def]
    model = make(tmp_path / "m.npz")
    photo_folder(tmp_path / "photos", 2)
    assert main(["predict", str(model), str(tmp_path / "photos")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and named in err and str(model) in err, err


# -- 11. silent nonsense ----------------------------------------------------------------------
def _experiment(**data: object) -> dict:
    return {"name": "x", "seeds": [0], "supervised": False,
            "data": {"dataset": "digits", "classes": [3, 8], "test_fraction": 0.3, **data},
            "loop": {"initial": 4, "batch": 4, "budget": 12},
            "strategies": [{"name": "random"}]}


def test_11_a_split_named_twice_is_refused() -> None:
    from activegen.errors import ConfigError
    from activegen.experiments.config import parse_config

    with pytest.raises(ConfigError, match=r"data\.split: names \['train'\] more than once "
                                          r"\(the pool would hold each of its images twice\)"):
        parse_config(_experiment(split=["train", "train"]), "exp.toml")


@pytest.mark.parametrize("fraction", [0.999, 0.9999])
def test_11_a_test_fraction_that_empties_the_pool_is_named(fraction: float) -> None:
    from activegen.errors import ConfigError
    from activegen.experiments.config import parse_config
    from activegen.experiments.data_setup import load_experiment_data

    with pytest.raises(ConfigError, match=rf"data\.test_fraction = {fraction} leaves the pool "
                                          r"\d+ image\(s\), covering [01] of the 2 classes"):
        load_experiment_data(parse_config(_experiment(test_fraction=fraction), "exp.toml"))


def _known(tmp_path: Path, rows: bytes, suffix: str = ".csv") -> LabelSession:
    folder = photo_folder(tmp_path / "photos", 16)
    labels = tmp_path / f"known{suffix}"
    labels.write_bytes(rows)
    return open_folder_session(folder, tmp_path / "s.sqlite", "--labels", str(labels))


def test_11_contradictory_known_labels_are_refused_naming_both_rows(tmp_path: Path) -> None:
    from activegen.errors import DataError

    with pytest.raises(DataError, match=r"known\.csv, CSV line 3: file 'img00\.png' is "
                                        r"labeled 'bright' here but 'dark' at .*known\.csv, "
                                        r"CSV line 2"):
        _known(tmp_path, b"path,label\nimg00.png,dark\nimg00.png,bright\n")
    session = _known(tmp_path / "again", b"path,label\nimg00.png,dark\nimg00.png,dark\n")
    session.close()  # the same label twice is no contradiction


def test_11_contradictory_import_rows_are_refused(tmp_path: Path) -> None:
    from activegen.server.core.errors import InvalidImport
    from activegen.server.interop.interchange import import_pairs, read_labels_file

    with pytest.raises(InvalidImport, match=r"CSV line 3: pool_index 5 is labeled 'b' here "
                                            r"but 'a' at CSV line 2"):
        import_pairs("csv", "pool_index,class\n5,a\n5,b\n", ["a", "b"])
    with pytest.raises(InvalidImport, match=r"labels\[1\]: pool_index 5"):
        import_pairs("json", json.dumps({"labels": [{"pool_index": 5, "label": 0},
                                                    {"pool_index": 5, "label": -1}]}),
                     ["a", "b"])
    assert import_pairs("csv", "pool_index,class\n5,a\n5,a\n", ["a", "b"]) == ([(5, 0)], 0)
    path = tmp_path / "l.csv"
    path.write_text("pool_index,label\n1,0\n1,1\n")
    with pytest.raises(InvalidImport, match=r"l\.csv: CSV line 3"):
        read_labels_file(path, ["a", "b"])


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_11_a_latin1_labels_file_is_named_not_a_traceback(tmp_path: Path, suffix: str) -> None:
    from activegen.errors import DataError
    from activegen.server.interop.interchange import read_labels_file

    text = ("path,label\nimg00.png,dark\nimg01.png,caf\xe9\n" if suffix == ".csv"
            else '[{"id": 1, "data": {"path": "img00.png"}, "label": "caf\xe9"}]')
    with pytest.raises(DataError, match=r"known\.\w+, line \d: byte 0xe9 is not UTF-8"):
        _known(tmp_path, text.encode("latin-1"), suffix)
    (tmp_path / "i.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match="byte 0xe9 is not UTF-8"):
        read_labels_file(tmp_path / "i.csv", ["a", "b"])
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfpool_index,label\n1,0\n")  # Excel's
    assert read_labels_file(tmp_path / "bom.csv", ["a", "b"]) == [(1, 0)]


def test_11_deeply_nested_labels_json_is_named(tmp_path: Path) -> None:
    from activegen.errors import DataError
    from activegen.server.interop.interchange import read_labels_file

    nested = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(DataError, match="nested too deep"):
        _known(tmp_path, nested, ".json")
    (tmp_path / "n.json").write_bytes(nested)
    with pytest.raises(DataError, match="nested too deep"):
        read_labels_file(tmp_path / "n.json", ["a", "b"])


def test_11_ctrl_c_stops_a_labeling_session_as_it_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    import uvicorn

    def interrupted(self: object, sockets: object = None) -> None:
        raise KeyboardInterrupt  # what uvicorn re-raises once it has shut down on Ctrl-C

    monkeypatch.setattr(uvicorn.Server, "run", interrupted)
    folder = photo_folder(tmp_path / "photos", 16)
    rc = main(["label", "--images", str(folder), "--classes", "dark,bright", "--size", "8",
               "--audit", "0", "--budget", "20", "--port", "0",
               "--store", str(tmp_path / "s.sqlite")])
    err = capsys.readouterr().err
    assert rc == 0 and "activegen label: stopped; labels are in" in err
    assert "every finished round" not in err


def test_9_finite_weights_that_overflow_never_write_a_nan_row(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = _model(tmp_path / "m.npz", classes=("a", "b", "c"),
                   coef=np.stack([np.full(192, 1e308), np.full(192, 1e308), np.zeros(192)]),
                   intercept=np.zeros(3))
    photo_folder(tmp_path / "photos", 2)
    assert main(["predict", str(model), str(tmp_path / "photos")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "its weights overflow on img" in err and str(model) in err
