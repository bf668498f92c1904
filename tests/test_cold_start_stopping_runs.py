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


def test_default_config_keeps_the_fingerprint_and_random_initial_set() -> None:
    plain = small_config()
    explicit = small_config(loop={"initial": 20, "batch": 4, "budget": 120,
                                  "initial_strategy": "random"})
    assert plain.fingerprint() == explicit.fingerprint()
    assert "initial_strategy" not in plain.model_dump()["loop"]
    assert "stopping" not in plain.model_dump()
    typi = small_config(loop={"initial": 20, "batch": 4, "budget": 120,
                              "initial_strategy": "typiclust"})
    assert typi.fingerprint() != plain.fingerprint()


def test_bad_stopping_and_strategy_learner_mismatch_are_refused_before_work(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"stopping.criteria: unknown stopping criterion"):
        run_experiment(small_config(stopping={"criteria": {"nope": {}}}), tmp_path / "a")
    with pytest.raises(ConfigError, match=r"'bald' needs a learner that is MCDropout.*linear"):
        run_experiment(small_config(strategies=[{"name": "bald"}]), tmp_path / "b")
    assert not (tmp_path / "a" / "runs").exists() and not (tmp_path / "b" / "runs").exists()


def test_typiclust_initial_set_and_stopping_records(tmp_path) -> None:
    config = small_config(
        seeds=[0],
        loop={"initial": 20, "batch": 10, "budget": 80, "initial_strategy": "typiclust"},
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
    assert crit["classification-change"]["round"] == 1
    assert crit["budget"]["n_labels"] == 80 and crit["budget"]["labels_saved"] == 0
    rows = pd.read_csv(out / "results.csv")
    acc = rows.set_index("n_labels")["accuracy"]
    lost = crit["classification-change"]["accuracy_lost"]
    assert next(iter(lost.values())) == pytest.approx(acc.loc[80] - acc.loc[30])
    report = make_report(out / "results.csv").read_text()
    assert "## Stopping criteria" in report and "classification-change" in report


def test_cold_start_initial_set_is_the_one_the_run_starts_from(tmp_path) -> None:
    from activegen.experiments.runner import load_experiment_data
    from activegen.strategies.cold_start import initial_selection

    config = small_config(seeds=[0], strategies=[{"name": "random"}],
                          loop={"initial": 20, "batch": 10, "budget": 40,
                                "initial_strategy": "probcover"})
    out = tmp_path / "out"
    run_experiment(config, out)
    pool, _ = load_experiment_data(config)
    expected = initial_selection("probcover", pool.to_float(), 20, 0, pool.n_classes)
    assert not np.array_equal(expected, initial_labeled_indices(pool.y, 20, 0))
    queried = np.concatenate([np.load(f)["indices"] for f in sorted((out / "queries").rglob(
        "*.npz"))])
    assert len(queried) == 20 and not np.isin(queried, expected).any()
    # the first checkpointed labeled set, if kept, starts with the cold-start set
    for ckpt in (out / "checkpoints").glob("*.npz"):
        with np.load(ckpt, allow_pickle=False) as data:
            assert np.isin(expected, data["labeled_indices"]).all()


def test_docs_table_lists_every_registered_strategy() -> None:
    from pathlib import Path

    from activegen.strategies import STRATEGIES

    text = (Path(__file__).resolve().parents[1] / "docs" / "strategies.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in text.splitlines()
            if line.startswith("| `")}
    shipped = {n for n in STRATEGIES.names()  # other tests register their own helpers
               if STRATEGIES.get(n).__module__.startswith("activegen.")}
    assert len(shipped) >= 24 and shipped <= rows, shipped - rows
