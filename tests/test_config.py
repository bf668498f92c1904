"""Experiment configs: every bad input is refused with a clear message before any work."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from _fake_data import write_fake_mnist_usps
from activegen.cli import demo_config_path
from activegen.errors import ConfigError, DataError
from activegen.experiments.config import load_config, parse_config
from activegen.experiments.runner import load_experiment_data, prepare_output, saved_config

REPO = Path(__file__).resolve().parents[1]

BASE: dict = {
    "name": "t",
    "seeds": [0, 1],
    "data": {"dataset": "digits", "classes": [5, 7], "test_fraction": 0.3},
    "loop": {"initial": 4, "batch": 2, "budget": 10},
    "strategies": [{"name": "random"}, {"name": "svm-active"}],
}


def _with(**changes) -> dict:
    """BASE with dotted keys replaced, e.g. _with(**{"loop.budget": 3})."""
    config = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return config


def _error(config: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(config, "exp.toml")
    message = str(info.value)
    assert "\n" not in message  # one line
    assert message.startswith("exp.toml: ")
    return message


# -- every config we ship parses (no data needed) ------------------------------------------
@pytest.mark.parametrize("path", [*sorted((REPO / "configs").glob("*.toml")), demo_config_path()],
                         ids=lambda p: Path(p).name)
def test_every_shipped_config_is_valid(path: Path) -> None:
    config = load_config(path)
    assert config.seeds and config.strategies  # validated in full by load_config


def test_shipped_configs_exist() -> None:
    names = {p.name for p in (REPO / "configs").glob("*.toml")}
    assert {"gaal-pool-mnist-5v7.toml", "pool-mnist5k-5v7.toml"} <= names


def test_valid_config_and_defaults() -> None:
    config = parse_config(BASE)
    assert config.learner.name == "linear-svm" and config.oracle.name == "pool"
    assert config.supervised and config.baseline == "random"
    assert [s.display for s in config.strategies] == ["random", "svm-active"]
    labeled = parse_config(_with(strategies=[{"name": "margin", "label": "m", "subsample": 5},
                                             {"name": "random"}]))
    assert labeled.strategies[0].display == "m" and labeled.strategies[0].params == {
        "subsample": 5}


def test_fingerprint_ignores_the_report_section_only() -> None:
    a = parse_config(BASE).fingerprint()
    assert parse_config(_with(**{"report.label_counts": [4, 10]})).fingerprint() == a
    assert parse_config(_with(**{"loop.budget": 12})).fingerprint() != a
    assert parse_config(_with(seeds=[0, 2])).fingerprint() != a


# -- bad input ------------------------------------------------------------------------------
def test_unknown_key_names_its_path() -> None:
    assert "loop.budgett: unknown key" in _error(_with(**{"loop.budgett": 3}))
    assert "data.clases: unknown key" in _error(_with(**{"data.clases": [5, 7]}))
    assert "strategy: unknown key" in _error(_with(strategy=[{"name": "random"}]))


def test_unknown_strategy_lists_the_known_ones() -> None:
    message = _error(_with(strategies=[{"name": "random"}, {"name": "svm-activ"}]))
    assert "strategies[1]: unknown strategy 'svm-activ'" in message
    assert "random" in message and "svm-active" in message and "entropy" in message


def test_unknown_strategy_parameter_and_bad_value() -> None:
    message = _error(_with(strategies=[{"name": "svm-active", "gamma": 0.001}]))
    assert "strategies[0]: strategy 'svm-active': gamma: unknown setting; the settings are: " \
        "subsample" in message
    assert "measure: Input should be 'auto', 'distance'" in _error(
        _with(strategies=[{"name": "uncertainty", "measure": "maybe"}]))
    assert "strategies[0]: strategy 'gaal': generator.epochs: Input should be a valid " \
        "integer" in _error(_with(strategies=[{"name": "gaal", "generator": {"epochs": "many"}}]))


def test_unknown_learner_and_learner_parameter() -> None:
    assert "unknown learner 'svm'" in _error(_with(learner={"name": "svm"}))
    assert "learner: learner 'linear-svm': gamma: unknown setting; the settings are: C, " \
        "max_iter" in _error(_with(learner={"name": "linear-svm", "gamma": 0.001}))
    assert "seed: unknown setting" in _error(_with(learner={"name": "linear-svm", "seed": 1}))


def test_budget_below_the_initial_set() -> None:
    message = _error(_with(**{"loop.budget": 3}))
    assert "loop: budget (3) is below the initial labeled set (4)" in message


def test_budget_leaving_less_than_one_batch() -> None:
    message = _error(_with(**{"loop.budget": 5, "loop.batch": 2, "loop.initial": 4}))
    assert "budget (5) leaves 1 labels after the initial set, fewer than one batch (2)" in message
    parse_config(_with(**{"loop.budget": 4}))  # no query at all is allowed


def test_other_bad_values_name_their_key() -> None:
    assert "loop.batch: Input should be greater than or equal to 1" in _error(
        _with(**{"loop.batch": 0}))
    assert "seeds: seeds repeat" in _error(_with(seeds=[1, 1]))
    assert "data.test_fraction" in _error(_with(**{"data.test_fraction": 1.5}))
    assert "distinct 'label'" in _error(_with(strategies=[{"name": "random"}, {"name": "random"}]))
    assert "no test set" in _error(_with(**{"data.test_fraction": None}))
    assert "'supervised' is reserved" in _error(
        _with(strategies=[{"name": "random", "label": "supervised"}]))
    assert "test_sets.0: test_fraction belongs in [data]" in _error(
        _with(test_sets=[{"name": "x", "dataset": "digits", "test_fraction": 0.5}]))
    assert "report.baseline: 'margin' is not one of the strategies" in _error(
        _with(**{"report.baseline": "margin"}))


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such config file"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[loop\ninitial = 3\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML: .*line 2"):
        load_config(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ConfigError, match=r"bin\.toml: not a text file"):
        load_config(binary)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('seeds = [0]\nstrategies = [{name = "random"}]\n'
                       "[loop]\ninitial = 2\nbatch = 1\nbudget = 4\n[data]\ntest_fraction = 0.3\n"
                       "colour = 3\n")
    with pytest.raises(ConfigError, match=r"unknown\.toml: .*data\.colour: unknown key"):
        load_config(unknown)


# -- what needs the data --------------------------------------------------------------------
def test_a_class_absent_from_the_data() -> None:
    config = parse_config(_with(**{"data.classes": [5, 11]}))
    with pytest.raises(DataError, match=r"digits: class 11 is not in the data"):
        load_experiment_data(config)
    config = parse_config(_with(**{"data.classes": ["5", "cat"]}))
    with pytest.raises(DataError, match=r"class 'cat' is not in the data"):
        load_experiment_data(config)


def test_a_single_class_is_refused() -> None:
    assert "data.classes: List should have at least 2 items" in _error(
        _with(**{"data.classes": [5]}))
    config = parse_config(_with(**{"data.classes": None, "data.subset": None}))
    one = config.model_copy(update={"data": config.data.model_copy(update={"classes": [3]})})
    with pytest.raises(ConfigError, match=r"the pool has 1 class \(\['3'\]\)"):
        load_experiment_data(one)


def test_test_set_with_another_image_size_or_classes() -> None:
    size = parse_config(_with(test_sets=[{"name": "big", "dataset": "digits", "split": "all",
                                          "classes": [5, 7], "size": [16, 16]}]))
    with pytest.raises(ConfigError, match=r"test set 'big' has images of \(16, 16, 1\).*'size'"):
        load_experiment_data(size)
    classes = parse_config(_with(test_sets=[{"name": "other", "dataset": "digits",
                                             "split": "all", "classes": [5, 8]}]))
    expected = r"test set 'other' has classes \['5', '8'\].*\['5', '7'\]"
    with pytest.raises(ConfigError, match=expected):
        load_experiment_data(classes)


def test_budget_or_initial_beyond_the_pool() -> None:
    config = parse_config(_with(**{"loop.budget": 5000, "loop.batch": 100}))
    with pytest.raises(ConfigError, match=r"loop.budget \(5000\) exceeds the pool \(\d+ images\)"):
        load_experiment_data(config)


def test_a_results_folder_holding_another_config_is_refused(tmp_path: Path) -> None:
    prepare_output(parse_config(BASE), tmp_path)
    prepare_output(parse_config(BASE), tmp_path)  # the same config: fine (resume)
    new_report = parse_config(_with(**{"report.label_counts": [4, 10]}))
    prepare_output(new_report, tmp_path)  # same results, new report settings: kept
    assert saved_config(tmp_path).report.label_counts == [4, 10]
    other = parse_config(_with(**{"loop.budget": 12}))
    with pytest.raises(ConfigError, match="holds results of a different configuration"):
        prepare_output(other, tmp_path)
    prepare_output(other, tmp_path, fresh=True)  # --fresh: start over
    orphan = tmp_path / "orphan"
    (orphan / "runs").mkdir(parents=True)
    (orphan / "runs" / "random__seed0.csv").write_text("x\n")
    with pytest.raises(ConfigError, match=r"holds runs but no config\.json"):
        prepare_output(other, orphan)
    for junk in ("{not json", "[1, 2]"):
        (tmp_path / "config.json").write_text(junk)
        with pytest.raises(DataError, match=r"config\.json: unreadable"):
            prepare_output(other, tmp_path)


# -- the GAAL config loads real-format files when they are there -----------------------------
def test_gaal_config_prepares_usps_like_mnist(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_mnist_usps(tmp_path, n_train=600, n_test=60)
    monkeypatch.setenv("ACTIVEGEN_DATA", str(tmp_path))
    config = load_config(REPO / "configs" / "gaal-pool-mnist-5v7.toml")
    pool, tests = load_experiment_data(config)
    assert len(pool) == 400 and pool.classes == ("5", "7")
    assert set(tests) == {"usps", "usps-pad24", "mnist-test"}
    assert all(t.image_shape == (28, 28, 1) and len(t) for t in tests.values())
    plain, padded = tests["usps"].X, tests["usps-pad24"].X
    # Padded: a 2-pixel black frame at 24x24 becomes ≈2.3 pixels at 28x28.
    assert padded[:, :2].max() == 0 and plain[:, :2].max() > 0
