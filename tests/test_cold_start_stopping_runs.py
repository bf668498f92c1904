"""End to end on digits: cold-start initial sets, MC-dropout strategies, recorded stopping."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tests._experiments import small_config

from activegen.errors import ConfigError
from activegen.experiments.report import make_report
from activegen.experiments.runner import run_experiment
from activegen.loop import initial_labeled_indices

TYPICLUST = {"name": "typiclust", "features": "pixels"}


def test_a_cold_start_is_part_of_the_fingerprint_and_must_not_read_a_learner() -> None:
    plain = small_config()
    assert plain.loop.cold_start is None
    typi = small_config(loop={"initial": 20, "batch": 4, "budget": 120,
                              "cold_start": TYPICLUST})
    assert typi.fingerprint() != plain.fingerprint()
    assert typi.loop.cold_start.params["vae"]["latent_dim"] == 32  # settings in full
    with pytest.raises(ConfigError, match=r"loop.cold_start: strategy 'typiclust' reads the "
                                          r"learner \(Embedding\).*features = \"input\""):
        small_config(loop={"initial": 20, "batch": 4, "budget": 120,
                           "cold_start": {"name": "typiclust"}})
    with pytest.raises(ConfigError, match=r"loop.cold_start: strategy 'margin' reads"):
        small_config(loop={"initial": 20, "batch": 4, "budget": 120,
                           "cold_start": {"name": "margin"}})
    small_config(loop={"initial": 20, "batch": 4, "budget": 120,
                       "cold_start": {"name": "coreset", "features": "pixels"}})


def test_bad_stopping_and_strategy_learner_mismatch_are_refused_before_work(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"stopping.criteria: unknown stopping criterion"):
        run_experiment(small_config(stopping={"criteria": {"nope": {}}}), tmp_path / "a")
    with pytest.raises(ConfigError, match=r"'bald' needs a learner that is MCDropout.*linear"):
        run_experiment(small_config(strategies=[{"name": "bald"}]), tmp_path / "b")
    assert not (tmp_path / "a" / "runs").exists() and not (tmp_path / "b" / "runs").exists()


def test_typiclust_initial_set_and_stopping_records(tmp_path) -> None:
    config = small_config(
        seeds=[0],
        loop={"initial": 20, "batch": 10, "budget": 80, "cold_start": TYPICLUST},
        strategies=[{"name": "margin"}],
        stopping={"criteria": {"stabilizing-predictions": {"window": 1, "threshold": 0.9},
                               "classification-change": {"threshold": 1.0}},
                  "stop_set": 200},
    )
    out = tmp_path / "out"
    run_experiment(config, out)
    queries = sorted((out / "queries").rglob("*.npz"))
    assert queries
    verdict = json.loads(next((out / "stopping").glob("*.json")).read_text())
    crit = verdict["criteria"]
    # classification change with threshold 1.0 always holds: fires at the first comparison
    # (round 0 is the cold start's: nothing is fitted before it; round 1 the first fit)
    assert crit["classification-change"]["round"] == 2
    assert crit["budget"]["n_labels"] == 80 and crit["budget"]["labels_saved"] == 0
    rows = pd.read_csv(out / "results.csv")
    acc = rows.set_index("n_labels")["accuracy"]
    lost = crit["classification-change"]["accuracy_lost"]
    assert next(iter(lost.values())) == pytest.approx(acc.loc[80] - acc.loc[30])
    report = make_report(out / "results.csv").read_text()
    assert "## Stopping criteria" in report and "classification-change" in report


@pytest.mark.parametrize("cold", [TYPICLUST, {"name": "probcover", "features": "pixels"},
                                  {"name": "coreset", "features": "pixels"}])
def test_the_cold_start_chooses_the_first_batch_of_the_run(tmp_path, cold) -> None:
    """The run's round 0 is the cold start's choice on the unlabeled pool, with the round's
    seeded generator; the strategy takes over from round 1."""
    from activegen.engine import derive_seed
    from activegen.experiments.runner import load_experiment_data
    from activegen.strategies import STRATEGIES, QueryState

    config = small_config(seeds=[0], strategies=[{"name": "random"}],
                          loop={"initial": 20, "batch": 10, "budget": 40, "cold_start": cold})
    out = tmp_path / "out"
    run_experiment(config, out)
    pool, _ = load_experiment_data(config)
    state = QueryState(pool.to_float(), np.zeros(len(pool), bool), np.empty(0, np.int64),
                       None, pool.n_classes,  # type: ignore[arg-type]
                       np.random.default_rng(derive_seed(0, 0, 3)))
    expected = STRATEGIES.build(cold["name"], config.loop.cold_start.params).query(state, 20)
    first = np.load(out / "queries" / "random__seed0" / "round_0000.npz")["indices"]
    np.testing.assert_array_equal(np.sort(first), np.sort(expected.indices))
    assert not np.array_equal(np.sort(first), initial_labeled_indices(pool.y, 20, 0))
    rows = pd.read_csv(out / "results.csv")
    assert rows["n_labels"].tolist() == [20, 30, 40] and rows["round"].tolist() == [1, 2, 3]


def test_each_strategy_may_choose_its_own_first_batch(tmp_path) -> None:
    """A strategy's ``cold_start`` overrides the loop's for it alone: ``true`` is the strategy
    itself, ``false`` the seeded uniform draw, a table another strategy."""
    config = small_config(
        seeds=[0], loop={"initial": 20, "batch": 10, "budget": 30, "cold_start": TYPICLUST},
        strategies=[{"name": "random", "cold_start": False},
                    {"name": "typiclust", "features": "pixels", "cold_start": True},
                    {"name": "margin", "cold_start": {"name": "coreset", "features": "pixels"}},
                    {"name": "entropy"}])
    assert config.cold_start_of("random") is None
    assert config.cold_start_of("typiclust").name == "typiclust"
    assert config.cold_start_of("margin").params["features"] == "pixels"
    assert config.cold_start_of("entropy") == config.loop.cold_start
    out = tmp_path / "out"
    run_experiment(config, out)
    from activegen.experiments.runner import load_experiment_data

    pool, _ = load_experiment_data(config)
    first = {s: np.sort(np.load(out / "queries" / f"{s}__seed0" / "round_0000.npz")["indices"])
             for s in ("random", "typiclust", "margin", "entropy")}
    # the seeded uniform initial set is not a query: random's round 0 is its first batch
    assert len(first["random"]) == 10
    assert not set(first["random"]) & set(initial_labeled_indices(pool.y, 20, 0))
    assert all(len(first[s]) == 20 for s in ("typiclust", "margin", "entropy"))
    np.testing.assert_array_equal(first["typiclust"], first["entropy"])  # both TypiClust's
    assert not np.array_equal(first["margin"], first["typiclust"])
    rounds = pd.read_csv(out / "results.csv").groupby("strategy")["round"].min()
    assert rounds["random"] == 0 and (rounds.drop("random") == 1).all()
    with pytest.raises(ConfigError, match=r"strategies\[0\].cold_start: strategy 'margin' reads"):
        small_config(strategies=[{"name": "margin", "cold_start": True}])
    with pytest.raises(ConfigError, match=r"strategies\[0\].cold_start: unknown"):
        small_config(strategies=[{"name": "margin", "cold_start": {"name": "nope"}}])


def test_docs_table_lists_every_registered_strategy() -> None:
    from pathlib import Path

    from activegen.strategies import STRATEGIES

    text = (Path(__file__).resolve().parents[1] / "docs" / "strategies.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in text.splitlines()
            if line.startswith("| `")}
    shipped = {n for n in STRATEGIES.names()  # other tests register their own helpers
               if STRATEGIES.get(n).__module__.startswith("activegen.")}
    assert len(shipped) >= 24 and shipped <= rows, shipped - rows


@pytest.mark.parametrize("cold", [None, TYPICLUST], ids=["seeded initial set", "cold start"])
def test_a_batch_schedule_sets_the_label_counts_of_every_round(tmp_path, cold) -> None:
    """``loop.batch = [10, 30]``: the rounds add 10, then 30 each (the last size repeats),
    the last batch capped by the budget; with or without a cold start."""
    loop: dict = {"initial": 10, "batch": [10, 30], "budget": 100}
    if cold is not None:
        loop["cold_start"] = cold
    config = small_config(seeds=[0], strategies=[{"name": "margin"}], loop=loop,
                          supervised=True)
    assert config.loop.settings().label_counts == [10, 20, 50, 80, 100]
    out = tmp_path / "out"
    run_experiment(config, out)
    rows = pd.read_csv(out / "results.csv")
    assert rows.loc[rows["strategy"] == "margin", "n_labels"].tolist() == [10, 20, 50, 80, 100]
    batches = [len(np.load(p)["indices"]) for p in
               sorted((out / "queries" / "margin__seed0").glob("round_*.npz"))]
    assert batches == ([] if cold is None else [10]) + [10, 30, 30, 20]


def test_a_batch_schedule_is_refused_where_it_cannot_be_honoured() -> None:
    with pytest.raises(ConfigError, match=r"loop.batch"):
        small_config(loop={"initial": 10, "batch": [10, 0], "budget": 100})
    with pytest.raises(ConfigError, match=r"fewer than one batch \(30\)"):
        small_config(loop={"initial": 10, "batch": [30, 10], "budget": 20})
    from tests.label_support import parse_label_config

    with pytest.raises(ConfigError, match=r"one batch size per round"):
        parse_label_config({"data": {"dataset": "digits", "test_fraction": 0.3},
                            "loop": {"initial": 4, "batch": [4, 8], "budget": 20}})
