"""Cold start: random vs TypiClust vs ProbCover initial sets at a few budgets.

    PYTHONPATH=src OMP_NUM_THREADS=1 python scripts/cold_start_digits.py [--out DIR]
    PYTHONPATH=src OMP_NUM_THREADS=1 python scripts/cold_start_digits.py \\
        --base docs/experiments/bayesian-mnist5k.toml --budgets 10 20 50 100 \\
        --seeds 0 1 2 3 4 --out runs/cold-start-mnist5k

Each (initial strategy, budget) is its own experiment with ``budget = initial`` (no query
rounds: the accuracy of the learner trained on the initial set alone). Without ``--base``:
digits, 3 seeds, the learner of docs/experiments/bayesian-digits.toml without dropout. With
``--base CONFIG``: that config's ``[data]`` and ``[learner]`` (dropout removed) instead.
``--features`` chooses TypiClust's and ProbCover's features (``pixels``, ``vae`` or
``backbone:PATH``). Prints a Markdown table of mean ± std test accuracy, the mean number of
classes in the initial set, and the paired Wilcoxon and t-test p-values of each cold-start
set against the random one (same seeds), Holm-corrected over the table's comparisons.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activegen.experiments.config import parse_config
from activegen.experiments.runner import load_experiment_data, run_experiment
from activegen.loop import initial_labeled_indices
from activegen.strategies.cold_start import backbone_features, initial_selection

INITIAL = ["random", "typiclust", "probcover"]
DIGITS: dict[str, Any] = {
    "data": {"dataset": "digits", "test_fraction": 0.3},
    "learner": {"name": "small-cnn", "schedule": "fixed", "epochs": 30, "lr": 0.05},
}


def config(base: dict[str, Any], initial_strategy: str, budget: int, seeds: list[int],
           features: str):
    learner = {k: v for k, v in base["learner"].items() if k != "dropout"}
    loop: dict[str, Any] = {"initial": budget, "batch": 10, "budget": budget,
                            "initial_strategy": initial_strategy}
    if initial_strategy != "random" and features != "pixels":
        loop["initial_features"] = features
    return parse_config({
        "name": f"cold start {initial_strategy} {budget}", "seeds": seeds, "supervised": False,
        "device": "cpu", "data": base["data"], "learner": learner, "loop": loop,
        "strategies": [{"name": "random"}],
    }, "cold_start")


def main() -> None:
    from activegen.experiments.stats import holm, paired_test

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/cold-start-digits"))
    parser.add_argument("--base", type=Path, help="take [data] and [learner] from this TOML")
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--features", default="pixels")
    args = parser.parse_args()
    base = DIGITS if args.base is None else tomllib.loads(args.base.read_text())
    rows, tests = [], []
    for budget in args.budgets:
        accs: dict[str, np.ndarray] = {}
        for name in INITIAL:
            cfg = config(base, name, budget, args.seeds, args.features)
            results = pd.read_csv(run_experiment(cfg, args.out / f"{name}-{budget}",
                                                 progress=False))
            pool, _ = load_experiment_data(cfg)
            feats = None  # pixels; with "vae" the class count below is of the pixel set
            if args.features.startswith("backbone:"):
                feats = backbone_features(pool.to_float(), args.features)
            classes = []
            for seed in args.seeds:
                idx = (initial_labeled_indices(pool.y, budget, seed) if name == "random"
                       else initial_selection(name, pool.to_float(), budget, seed,
                                              pool.n_classes, feats))
                classes.append(len(np.unique(pool.y[idx])))
            acc = results.sort_values("seed")["accuracy"].to_numpy()
            accs[name] = acc
            rows.append([budget, name, acc.mean(), acc.std(ddof=1), np.mean(classes)])
        for name in INITIAL[1:]:
            t_p, w_p = paired_test(accs[name], accs["random"])
            tests.append((budget, name, w_p, t_p))
    wil = holm([t[2] for t in tests])
    tt = holm([t[3] for t in tests])
    ptab = {(b, n): (w, t) for (b, n, _, _), w, t in zip(tests, wil, tt, strict=True)}
    print(f"| labels | initial set | accuracy (mean ± std, {len(args.seeds)} seeds) "
          f"| classes in the set | Holm p vs random (Wilcoxon / t) |")
    print("|---|---|---|---|---|")
    for budget, name, mean, std, n_classes in rows:
        p = ptab.get((budget, name))
        ps = "–" if p is None else f"{p[0]:.3f} / {p[1]:.3f}"
        print(f"| {budget} | {name} | {mean:.3f} ± {std:.3f} | {n_classes:.1f} | {ps} |")


if __name__ == "__main__":
    main()
