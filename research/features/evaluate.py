"""Accuracy of the linear probe and label spreading at a few label counts on given features."""

from __future__ import annotations

import time

import numpy as np
from common import labeled_set

from activegen.models.semi_supervised import LabelSpreadingLearner, LinearProbe


def accuracies(F_pool: np.ndarray, y_pool: np.ndarray, F_eval: np.ndarray | None,
               y_eval: np.ndarray | None, counts=(20, 100), seeds=(0, 1, 2),
               learners: dict | None = None) -> dict[tuple[str, int], list[float]]:
    """Per (learner, label count): accuracy over seeds. With ``F_eval`` None, the accuracy is
    on the pool points outside the labeled set (tuning on training data only)."""
    n_classes = int(y_pool.max()) + 1
    learners = learners or {"probe": lambda: LinearProbe(n_classes),
                            "spread": lambda: LabelSpreadingLearner(n_classes)}
    out: dict[tuple[str, int], list[float]] = {}
    for n in counts:
        for seed in seeds:
            idx = labeled_set(n, len(F_pool), seed)
            if F_eval is None:
                rest = np.setdiff1d(np.arange(len(F_pool)), idx)
                Fe, ye = F_pool[rest], y_pool[rest]
            else:
                Fe, ye = F_eval, y_eval
            for name, make in learners.items():
                learner = make()
                learner.prepare(F_pool)
                learner.fit(F_pool[idx], y_pool[idx])
                out.setdefault((name, n), []).append(learner.score(Fe, ye))
    return out


def table(results: dict[tuple[str, int], list[float]]) -> str:
    return "  ".join(f"{name}@{n}={100 * np.mean(v):.1f}" for (name, n), v in results.items())


if __name__ == "__main__":
    import sys

    from common import splits

    Xp, yp, _, _ = splits(sys.argv[1])
    t = time.perf_counter()
    r = accuracies(Xp.reshape(len(Xp), -1), yp, None, None)
    print("pixels", table(r), f"({time.perf_counter() - t:.0f} s)")
