"""Cold start on digits: random vs TypiClust vs ProbCover initial sets at a few budgets.

    PYTHONPATH=src OMP_NUM_THREADS=1 python scripts/cold_start_digits.py [--out DIR]

Each (initial strategy, budget) is its own experiment with ``budget = initial`` (no query
rounds: the accuracy of the small CNN trained on the initial set alone), 3 seeds, the same
learner as docs/experiments/bayesian-digits.toml without dropout. Prints a Markdown table of
mean ± std test accuracy and the mean number of classes in the initial set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from activegen.experiments.config import parse_config
from activegen.experiments.runner import load_experiment_data, run_experiment
from activegen.loop import initial_labeled_indices
from activegen.strategies.cold_start import initial_selection

SEEDS = [0, 1, 2]
BUDGETS = [10, 20, 50]
INITIAL = ["random", "typiclust", "probcover"]


def config(initial_strategy: str, budget: int):
    return parse_config({
        "name": f"cold start {initial_strategy} {budget}", "seeds": SEEDS, "supervised": False,
        "device": "cpu", "data": {"dataset": "digits", "test_fraction": 0.3},
        "learner": {"name": "small-cnn", "schedule": "fixed", "epochs": 30, "lr": 0.05},
        "loop": {"initial": budget, "batch": 10, "budget": budget,
                 "initial_strategy": initial_strategy},
        "strategies": [{"name": "random"}],
    }, "cold_start_digits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/cold-start-digits"))
    args = parser.parse_args()
    rows = []
    for budget in BUDGETS:
        for name in INITIAL:
            cfg = config(name, budget)
            results = pd.read_csv(run_experiment(cfg, args.out / f"{name}-{budget}",
                                                 progress=False))
            pool, _ = load_experiment_data(cfg)
            classes = []
            for seed in SEEDS:
                idx = (initial_labeled_indices(pool.y, budget, seed) if name == "random"
                       else initial_selection(name, pool.to_float(), budget, seed,
                                              pool.n_classes))
                classes.append(len(np.unique(pool.y[idx])))
            acc = results["accuracy"].to_numpy()
            rows.append(f"| {budget} | {name} | {acc.mean():.3f} ± {acc.std(ddof=1):.3f} "
                        f"| {np.mean(classes):.1f} |")
    print("| labels | initial set | accuracy (mean ± std, 3 seeds) | classes in the set |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
