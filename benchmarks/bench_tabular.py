"""Core-set on tabular data through a scikit-learn pipeline: which space it measures in.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_tabular.py [--seeds 5]

scikit-learn's breast cancer data (569 rows, 30 features on scales from 1e-3 to 1e3), a
``StandardScaler + SVC`` pipeline, 10 random labels then batches of 10 up to 60, each seed its
own stratified 70/30 split. Core-set picks the unlabeled row farthest from the labeled ones;
with ``features = "embedding"`` (the default) it measures in the pipeline's transformed space
(``SklearnLearner.embed``: the output of the steps before the classifier), with
``features = "input"`` in the raw units, where two features in the hundreds decide every
distance. Prints the test accuracy at 60 labels per strategy, mean and per seed.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from activegen import STRATEGIES, ActiveLearner, SklearnLearner

CASES = {"random": ("random", {}),
         "coreset (pipeline features)": ("coreset", {}),
         "coreset (raw input)": ("coreset", {"features": "input"})}


def accuracy_at_60(strategy: str, params: dict, seed: int) -> float:
    X, y = load_breast_cancer(return_X_y=True)
    X_pool, X_test, y_pool, y_test = train_test_split(
        X.astype(np.float32), y, test_size=0.3, stratify=y, random_state=seed)
    learner = ActiveLearner(
        X_pool, n_classes=2,
        learner=SklearnLearner(2, estimator=make_pipeline(StandardScaler(), SVC())),
        strategy=STRATEGIES.build(strategy, params), seed=seed,
        test_sets={"test": (X_test, y_test)})
    while learner.state.n_spent < 60:
        query = learner.ask(10)
        learner.tell(query, y_pool[query.indices])
    return learner.fit().accuracy["test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    print(f"| strategy | accuracy at 60 labels, mean of {args.seeds} seeds | per seed |")
    print("|---|---|---|")
    for label, (name, params) in CASES.items():
        scores = [accuracy_at_60(name, params, seed) for seed in range(args.seeds)]
        print(f"| {label} | {np.mean(scores):.3f} | "
              f"{', '.join(f'{s:.3f}' for s in scores)} |")
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
