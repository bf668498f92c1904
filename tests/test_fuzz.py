"""Property-based fuzzing (Hypothesis) of the config parsers and the file loaders.

The property: any input either loads or raises activegen's own error (an
:class:`~activegen.errors.ActivegenError` naming the file or key), never another exception,
and a refused experiment leaves no output folder behind.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

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
