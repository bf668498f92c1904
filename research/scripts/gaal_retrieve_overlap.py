"""How pool-based is a strategy's choice? Per round of its finished runs, the share of its picks
that SVMactive would pick in the same state, and where its picks rank by margin.

Usage: python scripts/gaal_retrieve_overlap.py CONFIG OUT STRATEGY

For each seed of CONFIG, the run ``STRATEGY__seed<k>`` in OUT is replayed from its saved
queries (``queries/<run>/round_XXXX.npz``): the learner is refitted on the labeled set the run
had before each round (its seeded initial draw plus the earlier rounds' labeled picks), and the
round's picks are compared with the unqueried images nearest that learner's boundary (``|f|``,
or the top-two gap for several classes). Applied to ``svm-active`` it must give 1.0 (the
replay's own check). Pool strategies only (picks are pool indices); a random initial set only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from activegen.engine import initial_labeled_indices
from activegen.experiments.config import load_config
from activegen.experiments.data_setup import load_experiment_data
from activegen.experiments.gallery import load_round
from activegen.models import LEARNERS


def _margins(decision: np.ndarray) -> np.ndarray:
    if decision.ndim == 1:
        return np.abs(decision)
    top2 = np.sort(decision, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def overlap(config_path: str, out: Path, strategy: str) -> dict[str, float]:
    """Mean share of picks SVMactive would also pick, and the picks' margin ranks."""
    config = load_config(config_path)
    if config.loop.initial_strategy != "random":
        sys.exit(f"{config_path}: initial_strategy = {config.loop.initial_strategy!r}; the "
                 "replay knows only the random initial draw")
    pool, _ = load_experiment_data(config)
    X, y = pool.to_float(), pool.y
    shares: list[float] = []
    ranks: list[float] = []
    for seed in config.seeds:
        run = f"{strategy}__seed{seed}"
        if not (out / "queries" / run).is_dir():
            sys.exit(f"{out}: no saved queries for {run}")
        labeled = list(initial_labeled_indices(y, config.loop.initial, seed))
        queried = np.zeros(len(X), dtype=bool)
        queried[labeled] = True
        r = 0
        while (out / "queries" / run / f"round_{r:04d}.npz").exists():
            saved = load_round(out, run, r)
            if "indices" not in saved:
                sys.exit(f"{out}: {run} round {r} holds synthesized images, not pool picks")
            picks = np.asarray(saved["indices"], dtype=np.int64)
            learner = LEARNERS.build(config.learner.name, dict(config.learner.params),
                                     n_classes=pool.n_classes, seed=seed)
            learner.fit(X[labeled], y[labeled])
            free = np.flatnonzero(~queried)
            order = np.argsort(_margins(learner.decision_function(X[free])), kind="stable")
            rank = np.empty(len(free), dtype=np.int64)
            rank[order] = np.arange(len(free))
            position = {int(i): k for k, i in enumerate(free)}
            shares.append(len(set(free[order[:len(picks)]].tolist()) & set(picks.tolist()))
                          / len(picks))
            ranks += (rank[[position[int(i)] for i in picks]] / len(free)).tolist()
            queried[picks] = True
            labels = np.asarray(saved["labels"])
            labeled += picks[labels >= 0].tolist()  # abstained picks are queried, not labeled
            r += 1
    return {"rounds": len(shares), "share": float(np.mean(shares)),
            "rank_median": float(np.median(ranks)), "rank_p90": float(np.quantile(ranks, 0.9))}


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    stats = overlap(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
    print(f"{sys.argv[3]} in {sys.argv[2]}: {stats['rounds']} rounds; share of its picks "
          f"SVMactive would also pick: {stats['share']:.3f}; its picks' margin rank among the "
          f"unqueried images (0 = nearest the boundary): median {stats['rank_median']:.3f}, "
          f"90th percentile {stats['rank_p90']:.3f}")
