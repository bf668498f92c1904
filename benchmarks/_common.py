"""Helpers shared by this folder's benchmarks: the row format and small experiment configs."""

from __future__ import annotations

from typing import Any

from activegen.experiments.config import ExperimentConfig, parse_config


def row(benchmark: str, case: str, value: float, unit: str, baseline: str,
        baseline_value: float, ratio: float | None = None, **extra: Any) -> dict[str, Any]:
    """One result row in the convention of ``benchmarks/README.md``.

    ``ratio`` defaults to ``value / baseline_value``.
    """
    if ratio is None:
        ratio = value / baseline_value if baseline_value else float("nan")
    return {"benchmark": benchmark, "case": case, "value": value, "unit": unit,
            "baseline": baseline, "baseline_value": baseline_value, "ratio": ratio, **extra}


def mnist5k_config(seeds: list[int], budget: int, batch: int = 20, **changes: Any
                   ) -> ExperimentConfig:
    """Uncertainty (margin) against random on all ten MNIST digits of mnist5k, linear SVM.

    4,000 pool images, 1,000 held out; each round refits a 10-class linear SVM on up to
    ``budget`` images and scores the whole pool, so per-run compute dominates start-up.
    """
    data: dict[str, Any] = {
        "name": "bench mnist5k",
        "seeds": seeds,
        "supervised": False,
        "data": {"dataset": "mnist5k", "test_fraction": 0.2},
        "learner": {"name": "linear-svm"},
        "loop": {"initial": 20, "batch": batch, "budget": budget},
        "strategies": [{"name": "random"}, {"name": "margin"}],
        "device": "cpu",
        **changes,
    }
    return parse_config(data, "benchmark")
