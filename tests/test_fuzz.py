"""Property-based fuzzing (Hypothesis) of the config parsers, the file loaders, and what
comes from outside: model files, labels files (CSV, JSON, Label Studio exports), image folders
(random bytes under random names) and a Label Studio server's answers (a fake server on
127.0.0.1).

The property: any input either loads or raises activegen's own error (an
:class:`~activegen.errors.ActivegenError` naming the file, key or request), never another
exception, and a refused experiment leaves no output folder behind. What loads is checked
too, so that nothing is accepted silently: a model predicts probabilities of its own distinct
classes from finite weights, a labels file gives each image one label, a folder's every file
is read or named as skipped, and no impossible answer reaches a store.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from activegen.cli import main  # noqa: E402
from activegen.engine import Checkpoint  # noqa: E402
from activegen.errors import ActivegenError  # noqa: E402
from activegen.experiments.config import load_config, parse_config  # noqa: E402
from activegen.experiments.results import read_results  # noqa: E402
from activegen.experiments.runner import load_experiment_data  # noqa: E402
from activegen.server.config import load_label_config, parse_label_config  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

#: Values of every JSON/TOML kind, nested a little, including the awkward ones.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["digits", "random", "margin", "cpu", "gpu7", "", "-1", "1e9", "auto"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)

EXPERIMENT: dict[str, Any] = {
    "name": "fuzz",
    "seeds": [0],
    "supervised": False,
    "data": {"dataset": "digits", "classes": [5, 7], "test_fraction": 0.3},
    "loop": {"initial": 4, "batch": 4, "budget": 12},
    "strategies": [{"name": "margin"}],
}
LABEL: dict[str, Any] = {
    "name": "fuzz", "data": {"dataset": "digits", "classes": [5, 7]},
    "loop": {"initial": 4, "batch": 2, "budget": 10},
}

EXPERIMENT_KEYS = ["name", "seeds", "supervised", "device", "cache_dir", "data.dataset",
                   "data.classes", "data.subset", "data.pad_to", "data.size", "data.channels",
                   "data.test_fraction", "data.split_seed", "data.root", "data.split",
                   "loop.initial", "loop.batch", "loop.budget", "learner", "learner.name",
                   "learner.C", "oracle", "strategies", "report.baseline",
                   "report.thresholds", "report.label_counts", "execution.jobs",
                   "execution.threads", "execution.executor", "test_sets", "unknown"]
LABEL_KEYS = ["name", "seed", "device", "data.dataset", "data.classes", "data.size",
              "loop.initial", "loop.batch", "loop.budget", "loop.cold_start", "labeling.port",
              "labeling.host", "labeling.lease_size", "strategy", "strategy.name", "learner"]


def _mutate(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[last] = value
    return data


def _own_error_or_load(fn, *args) -> Any:
    try:
        return fn(*args)
    except ActivegenError as exc:
        assert str(exc).strip(), "an error must say what is wrong"
        return None


@FUZZ
@given(st.dictionaries(st.sampled_from(EXPERIMENT_KEYS), values, min_size=1, max_size=3))
def test_experiment_config_parser_never_raises_anything_else(changes) -> None:
    config = _own_error_or_load(parse_config, _mutate(EXPERIMENT, changes), "exp.toml")
    if config is not None and not config.test_sets and config.data.dataset == "digits":
        _own_error_or_load(load_experiment_data, config)  # the data checks, too


@FUZZ
@given(st.dictionaries(st.sampled_from(LABEL_KEYS), values, min_size=1, max_size=3))
def test_label_config_parser_never_raises_anything_else(changes) -> None:
    _own_error_or_load(parse_label_config, _mutate(LABEL, changes), "label.toml")


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_config_files_load_or_are_refused_naming_the_file(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_bytes(content)
        for loader in (load_config, load_label_config):
            try:
                loader(path)
            except ActivegenError as exc:
                assert str(path) in str(exc)


@FUZZ
@given(st.dictionaries(st.sampled_from(EXPERIMENT_KEYS), values, min_size=1, max_size=2))
def test_a_refused_run_leaves_no_output_folder(changes) -> None:
    from _experiments import write_toml

    data = _mutate(EXPERIMENT, changes)
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = write_toml(Path(folder) / "c.toml", data)
        except (TypeError, ValueError, AttributeError):  # the tests' tiny TOML writer cannot
            return  # write every value
        try:
            config = load_config(path)
        except ActivegenError:
            out = Path(folder) / "out"
            assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
            assert not out.exists()
            return
        if config.execution.executor == "ray" or config.data.dataset != "digits":
            return
        out = Path(folder) / "out"
        try:
            load_experiment_data(config)
        except ActivegenError:
            assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
            assert not out.exists()


_CSV_HEADER = "dataset,strategy,seed,round,n_labels,test_set,accuracy\n"


@FUZZ
@given(st.one_of(st.binary(max_size=400),
                 st.lists(st.lists(scalars.map(str), min_size=7, max_size=7), max_size=5)
                 .map(lambda rows: (_CSV_HEADER + "".join(",".join(r) + "\n" for r in rows))
                      .encode())))
def test_results_tables_load_or_are_refused_naming_the_file(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.csv"
        path.write_bytes(content)
        try:
            frame = read_results(path)
        except ActivegenError as exc:
            assert str(path) in str(exc)
        else:
            assert frame["accuracy"].between(0, 1).all()


@FUZZ
@given(st.binary(max_size=600))
def test_checkpoints_load_or_are_refused_naming_the_file(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.npz"
        path.write_bytes(content)
        try:
            Checkpoint.read(path)
        except ActivegenError as exc:
            assert str(path) in str(exc)


@FUZZ
@given(st.binary(max_size=600))
def test_idx_files_load_or_are_refused_naming_the_file(content: bytes) -> None:
    from activegen.data.loaders import read_idx

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x-idx3-ubyte"
        path.write_bytes(b"\x00\x00\x08\x03" + content if content[:1] == b"\x00" else content)
        try:
            read_idx(path)
        except ActivegenError as exc:
            assert str(path) in str(exc)


# -- files and answers from outside: model files, labels files, image folders, Label Studio ---
#: fewer examples than the parsers' fuzzers: each one writes files (or asks a server)
FUZZ_FILES = settings(max_examples=40, deadline=20_000,
                      suppress_health_check=[HealthCheck.too_slow,
                                             HealthCheck.function_scoped_fixture])

NAMES = ["dark", "bright"]
_MODEL_KEYS = ["format", "version", "classes", "size", "channels", "features", "features_id"]
_ARRAY_NAMES = ["coef", "intercept", "feature_mean", "feature_scale"]
arrays = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=6).map(
        lambda v: np.asarray(v, dtype=np.float64)),
    st.tuples(st.integers(0, 3), st.integers(0, 200), st.sampled_from([0.0, 1.0, np.nan])).map(
        lambda t: np.full((t[0], t[1]), t[2])),
    st.sampled_from([np.zeros(3, np.int64), np.array(["a"]), np.ones((1, 48)), np.ones(48),
                     np.zeros(48, np.float32), np.ones(1), np.full((1, 48), np.nan),
                     np.full(48, np.inf, np.float32), np.full(1, np.nan),
                     np.full(48, -1.0, np.float32)]),
)


def _valid_model() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    header = {"format": "activegen-image-classifier", "version": 1, "classes": NAMES,
              "size": 4, "channels": 3, "features": "pixels", "features_id": "pixels"}
    d = 4 * 4 * 3
    return header, {"coef": np.ones((1, d)), "intercept": np.zeros(1),
                    "feature_mean": np.full(d, 0.5, np.float32),
                    "feature_scale": np.full(d, 0.25, np.float32)}


#: one value of one array of a valid model set to something that predicts nonsense
pokes = st.tuples(st.sampled_from(_ARRAY_NAMES),
                  st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e308]),
                  st.integers(0, 47))


@FUZZ_FILES
@given(st.dictionaries(st.sampled_from(_MODEL_KEYS), values, max_size=2),
       st.dictionaries(st.sampled_from(_ARRAY_NAMES), arrays, max_size=2),
       st.none() | pokes, st.none() | st.binary(max_size=200))
def test_model_files_predict_sense_or_are_refused_naming_the_file(
        header_changes, array_changes, poke, raw) -> None:
    from PIL import Image

    from activegen.models.export import feature_size, load_model, predict_files

    header, parts = _valid_model()
    header.update(header_changes)
    parts.update(array_changes)
    if poke is not None:
        name, value, i = poke
        target = np.array(parts[name], dtype=np.float64)
        if target.size:
            target.reshape(-1)[i % target.size] = value
            with np.errstate(over="ignore"):  # 1e308 as float32 is inf: one more bad value
                parts[name] = target.astype(parts[name].dtype)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.npz"
        if raw is not None:
            path.write_bytes(raw)
        else:
            try:
                text = json.dumps(header).encode()
            except ValueError:
                return
            np.savez(path, header=np.frombuffer(text, dtype=np.uint8), **parts)
        photos = Path(folder) / "photos"
        photos.mkdir()
        for i in range(2):
            Image.new("RGB", (6, 6), (40 * i, 0, 0)).save(photos / f"{i}.png")
        try:
            model = load_model(path)
            text, _ = predict_files(path, [photos], None)
        except ActivegenError as exc:
            assert str(path) in str(exc), exc
            return
        # loaded: nothing that predicts nonsense got through
        assert len(set(model.classes)) == len(model.classes) >= 2
        for array in (model.coef, model.intercept, model.feature_mean, model.feature_scale):
            assert np.isfinite(array).all()
        assert (model.feature_scale > 0).all()
        assert model.coef.shape[1] == feature_size("pixels", model.size, model.channels)
        rows = text.strip().splitlines()[1:]
        assert len(rows) == 2
        for row in rows:
            _, label, confidence = row.rsplit(",", 2)
            assert label in model.classes and 0 <= float(confidence) <= 1


_FILES = [f"img{i}.png" for i in range(4)]
csv_cells = st.one_of(st.sampled_from([*_FILES, *NAMES, "cat", "", "img9.png", " dark"]),
                      st.sampled_from(_FILES), st.sampled_from(NAMES),
                      st.sampled_from(["café", "naïve.png", "\u00e9"]), st.text(max_size=6))
csv_rows = st.one_of(
    st.lists(st.tuples(csv_cells, csv_cells), max_size=6),
    st.lists(st.tuples(st.sampled_from(_FILES), st.sampled_from(NAMES)), min_size=2,
             max_size=6),  # every row readable: only a contradiction can refuse them
).map(
    lambda rows: "path,label\n" + "".join(f"{a},{b}\n" for a, b in rows))
encodings = st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"])


def _labels_file_bytes() -> st.SearchStrategy[tuple[str, bytes]]:
    as_csv = st.tuples(csv_rows, encodings).map(
        lambda t: (".csv", t[0].encode(t[1], "replace")))
    as_json = st.one_of(values, st.lists(st.fixed_dictionaries(
        {"id": st.integers(0, 9)},
        optional={"data": st.fixed_dictionaries({"path": st.sampled_from([*_FILES, "x.png"])}),
                  "label": st.sampled_from([*NAMES, "cat", "can't tell"]),
                  "annotations": values}), max_size=4)).map(
        lambda v: (".json", json.dumps(v).encode()))
    garbage = st.tuples(st.sampled_from([".csv", ".json"]), st.binary(max_size=200))
    return st.one_of(as_csv, as_json, garbage)


@FUZZ_FILES
@given(_labels_file_bytes())
def test_labels_files_load_consistently_or_are_refused_naming_the_file(file) -> None:
    from activegen.server.images.known_labels import read_known_labels

    suffix, content = file
    index_of = {name: i for i, name in enumerate(_FILES)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"labels{suffix}"
        path.write_bytes(content)
        try:
            pairs = read_known_labels(path, NAMES, index_of)
        except ActivegenError as exc:
            assert str(path) in str(exc), exc
            return
    if suffix == ".csv":  # two rows giving one file two classes are never both accepted
        rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))[1:]
        given = {}
        for row in rows:
            if len(row) >= 2 and row[0].strip() in index_of and row[1].strip() in NAMES:
                given.setdefault(row[0].strip(), set()).add(row[1].strip())
        assert all(len(labels) == 1 for labels in given.values()), given
    indices = [i for i, _ in pairs]
    assert len(set(indices)) == len(indices)  # one label per image: no silent choice
    assert all(i in index_of.values() and 0 <= y < len(NAMES) for i, y in pairs)


import_rows = st.one_of(
    st.lists(st.tuples(st.one_of(st.integers(-2, 6), csv_cells),
                       st.one_of(st.integers(-2, 3), csv_cells)), max_size=6),
    st.lists(st.tuples(st.integers(0, 3), st.integers(-1, 1)), min_size=2, max_size=6),
)


@FUZZ_FILES
@given(st.one_of(
    st.tuples(st.just(".csv"), import_rows.map(
        lambda rows: ("pool_index,label\n" + "".join(f"{a},{b}\n" for a, b in rows)).encode())),
    st.tuples(st.just(".json"), st.one_of(values, st.fixed_dictionaries(
        {"labels": st.lists(st.fixed_dictionaries({}, optional={
            "pool_index": st.one_of(st.integers(-1, 6), scalars),
            "label": st.one_of(st.integers(-2, 3), scalars)}), max_size=4)})).map(
        lambda v: json.dumps(v).encode())),
    st.tuples(st.sampled_from([".csv", ".json"]), st.binary(max_size=200))))
def test_import_files_load_consistently_or_are_refused_naming_the_file(file) -> None:
    from activegen.server.interop.interchange import read_labels_file

    suffix, content = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"import{suffix}"
        path.write_bytes(content)
        try:
            pairs = read_labels_file(path, NAMES)
        except ActivegenError as exc:
            assert str(path) in str(exc), exc
            return
    if suffix == ".csv":  # two rows giving one image two labels are never both accepted
        given = {}
        for row in list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))[1:]:
            if len(row) >= 2 and row[0].strip().lstrip("-").isdigit():
                given.setdefault(int(row[0]), set()).add(row[1].strip())
        assert all(len(labels) == 1 for labels in given.values()), given
    indices = [i for i, _ in pairs]
    assert len(set(indices)) == len(indices)
    assert all(isinstance(i, int) and -1 <= y < len(NAMES) for i, y in pairs)


def _png(side: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (side, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


image_bytes = st.one_of(
    st.binary(max_size=300),
    st.integers(1, 40).map(_png),
    st.tuples(st.integers(1, 40), st.integers(0, 120)).map(lambda t: _png(t[0])[:t[1] + 8]),
    st.just(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x01\x00"
            b"\x00\x00\x00\x00\x00\x00\x00"),  # a bomb's header, its CRC wrong
)
file_names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
            min_size=1, max_size=12).map(lambda s: s + ".png"),
    st.binary(min_size=1, max_size=8).filter(lambda b: b"/" not in b and b"\x00" not in b
                                             and b not in (b".", b"..")).map(
        lambda b: b + b".png"),
)


@FUZZ_FILES
@given(st.lists(st.tuples(file_names, image_bytes), min_size=1, max_size=5))
def test_image_folders_read_every_file_or_name_why_not(files) -> None:
    import os

    from activegen.data.unlabeled import list_image_files, load_unlabeled_images

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, content in files:
            try:
                target = os.path.join(os.fsencode(root), name if isinstance(name, bytes)
                                      else os.fsencode(name))
                with open(target, "wb") as handle:
                    handle.write(content)
            except OSError:  # a name this file system refuses (too long, ...)
                continue
        present = list_image_files(root)
        try:
            loaded = load_unlabeled_images(root, 8, 3)
        except ActivegenError as exc:
            assert str(root) in str(exc)
            return
        assert len(loaded.paths) + len(loaded.skipped) == len(present)  # none lost silently
        assert loaded.X.shape == (len(loaded.paths), 8, 8, 3)
        for name in [*loaded.paths, *(s for s, _ in loaded.skipped)]:
            name.encode("utf-8")  # every name can be shown and written
        assert all(reason for _, reason in loaded.skipped)


task_ids = st.one_of(st.integers(0, 40), scalars)
choice_lists = st.one_of(values, st.lists(st.sampled_from(["3", "8", "can't tell", "cat"]),
                                          max_size=2))
annotation = st.fixed_dictionaries({}, optional={
    "id": task_ids, "was_cancelled": st.booleans(), "updated_at": scalars,
    "result": st.one_of(values, st.lists(st.fixed_dictionaries(
        {"type": st.sampled_from(["choices", "rating"])},
        optional={"value": st.one_of(values, st.fixed_dictionaries({"choices": choice_lists}))}),
        max_size=2))})
task = st.fixed_dictionaries({"id": task_ids}, optional={
    "data": st.one_of(values, st.fixed_dictionaries({}, optional={
        "activegen_query_id": st.one_of(st.integers(-2, 60), scalars)})),
    "annotations": st.one_of(values, st.lists(annotation, max_size=2)),
    "label": st.sampled_from(["3", "8", "cat"])})
listing = st.one_of(
    st.lists(task, max_size=4),
    st.fixed_dictionaries({"tasks": st.one_of(values, st.lists(task, max_size=4))},
                          optional={"total": scalars}),
    values,
)
answer_bodies = st.one_of(listing.map(lambda v: json.dumps(v).encode()),
                          st.binary(max_size=120))


@pytest.fixture(scope="module")
def synced_session(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from label_support import digits_config, make_session

    session, _ = make_session(tmp_path_factory.mktemp("ls") / "s.sqlite",
                              digits_config([3, 8], budget=400))
    yield session
    session.close()


@FUZZ_FILES
@given(answer_bodies, st.sampled_from([200, 200, 200, 302, 404, 500]))
def test_label_studio_answers_sync_or_are_refused_naming_the_request(
        synced_session, body: bytes, status: int) -> None:
    from activegen.server.interop.label_studio import (
        LabelStudioClient,
        LabelStudioError,
        LabelStudioSync,
    )
    from fake_label_studio import FakeLabelStudio, send

    def respond(handler, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
        if path.startswith("/api/projects/1/import"):
            send(handler, {"task_count": 0})
        elif path.startswith("/api/projects"):
            send(handler, {"id": 1})
        elif status == 302:
            send(handler, b"", 302, {"Location": "http://203.0.113.9/elsewhere"})
        else:
            send(handler, body, status)

    with FakeLabelStudio(respond) as server:
        client = LabelStudioClient(server.url, "fuzz-token-0123456789", timeout=5, deadline=10)
        sync = LabelStudioSync(synced_session, client, 1)
        try:
            report = sync.sync()
        except LabelStudioError as exc:
            assert "Label Studio" in str(exc)
            return
    assert report.pulled >= 0 and all(isinstance(why, str) for why in report.unreadable)
    answers = synced_session.store.read("SELECT label FROM labels")
    assert all(-1 <= label < 2 for (label,) in answers)  # nothing impossible got in
