"""Runs that end before the budget are listed in the report with why, not left as a '–'."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from activegen.engine import MAX_EMPTY_ROUNDS
from activegen.experiments import stats
from activegen.experiments.config import parse_config
from activegen.experiments.report import make_report
from activegen.experiments.runner import run_experiment


def _run(strategy: str, seed: int, n_labels: list[int], n_train: list[int]) -> list[dict]:
    return [{"dataset": "d", "strategy": strategy, "seed": seed, "round": r, "n_labels": n,
             "test_set": "t", "accuracy": 0.7, "n_classes": 2, "n_train": k, "n_abstained": 0}
            for r, (n, k) in enumerate(zip(n_labels, n_train, strict=True))]


def test_early_ends_names_the_stalled_run_and_the_other_early_end() -> None:
    full = list(range(10, 10 + 2 * 20, 2))  # 20 rounds, to 48 labels
    stalled_labels = list(range(10, 10 + 2 * 15, 2))  # 15 rounds
    stalled_train = [10, 12, 14, 16] + [18] * 11  # no label in its last 10 rounds
    short = list(range(10, 10 + 2 * 12, 2))  # 12 rounds, every one labeled
    frame = pd.DataFrame(
        _run("random", 0, full, full) + _run("gaal", 0, stalled_labels, stalled_train)
        + _run("gaal", 1, short, short) + _run("gaal", 2, full, full)
    )
    early = stats.early_ends(frame, MAX_EMPTY_ROUNDS)
    assert early[["strategy", "seed", "last_labels"]].values.tolist() == [
        ["gaal", 0, stalled_labels[-1]], ["gaal", 1, short[-1]]]
    assert early["reason"].tolist() == [stats.NO_LABEL.format(n=MAX_EMPTY_ROUNDS),
                                        stats.OTHER_END]
    assert (early["longest_run"] == full[-1]).all()
    # one stalled round fewer than the engine's limit is not the engine's stop
    almost = [10, 12, 14, 16, 18] + [20] * 10
    frame = pd.DataFrame(_run("random", 0, full, full)
                         + _run("gaal", 0, stalled_labels, almost))
    assert stats.early_ends(frame, MAX_EMPTY_ROUNDS)["reason"].tolist() == [stats.OTHER_END]


def test_a_run_whose_oracle_refuses_everything_is_reported(tmp_path: Path) -> None:
    # threshold 1.0: the expert refuses every synthesized image, so GAAL's runs bring no
    # label; charged, each round spends the budget until the engine stops them.
    config = parse_config({
        "seeds": [0],
        "data": {"dataset": "digits", "classes": [3, 8], "test_fraction": 0.3},
        "oracle": {"name": "expert", "threshold": 1.0, "pool_queries": "truth"},
        "loop": {"initial": 6, "batch": 2, "budget": 40},
        "generator": {"epochs": 2, "width": 8, "latent_dim": 8},
        "synthesis": {"steps": 3},
        "strategies": [{"name": "gaal"}, {"name": "random"}],
        "supervised": False,
    })
    run_experiment(config, tmp_path, progress=False)
    report = make_report(tmp_path / "results.csv").read_text()
    assert "## Runs that ended early" in report
    early = pd.read_csv(tmp_path / "early_ends.csv")
    assert early[["strategy", "seed"]].values.tolist() == [["gaal", 0]]
    assert early["reason"].iloc[0] == stats.NO_LABEL.format(n=MAX_EMPTY_ROUNDS)
    assert early["last_labels"].iloc[0] == 6 + 2 * MAX_EMPTY_ROUNDS < early["longest_run"].iloc[0]


def test_a_report_without_early_ends_has_no_such_section(tmp_path: Path) -> None:
    full = list(range(10, 30, 2))
    frame = pd.DataFrame(_run("random", 0, full, full) + _run("margin", 0, full, full))
    frame.to_csv(tmp_path / "results.csv", index=False)
    assert "ended early" not in make_report(tmp_path / "results.csv").read_text()
    assert not (tmp_path / "early_ends.csv").exists()
