"""Accuracy on the held-out test split at 10/20/50/100/200 random labels, for
{pixels, self-supervised} × {linear probe, label spreading}; prints Markdown tables.

    PYTHONPATH=src:research/features python research/features/measure.py \
        [--datasets mnist10k fashion-mnist] [--seeds 5] [--threads 1] [--cache DIR]

The self-supervised encoder is trained on the pool's images with the default settings (or
loaded from ``--cache``); the labels are drawn at random from the pool (seeds 0..S-1, the same
sets for every feature × learner); accuracy is on the test split (see ``common.py``), which
no tuning read. Also printed: the training time, threads and load average, extraction speed,
and the transductive accuracy of label spreading on the pool next to its distilled linear
model's (does the linear model keep what the spreading found?).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
from common import labeled_set, splits

from activegen.features import PixelSource, SelfSupervisedSettings, SelfSupervisedSource
from activegen.models.semi_supervised import LabelSpreadingLearner, LinearProbe

COUNTS = (10, 20, 50, 100, 200)


def evaluate(F_pool: np.ndarray, y_pool: np.ndarray, F_test: np.ndarray, y_test: np.ndarray,
             seeds: int) -> tuple[dict[tuple[str, int], list[float]], dict[int, list[float]]]:
    """Test accuracy per (learner, count) over seeds; and per count the pool accuracy of the
    spread labels minus that of the distilled model (transductive vs linear)."""
    acc: dict[tuple[str, int], list[float]] = {}
    kept: dict[int, list[float]] = {}
    for n in COUNTS:
        for seed in range(seeds):
            idx = labeled_set(n, len(F_pool), seed)
            rest = np.setdiff1d(np.arange(len(F_pool)), idx)
            for name, learner in (("linear probe", LinearProbe(10)),
                                  ("label spreading", LabelSpreadingLearner(10))):
                learner.prepare(F_pool)
                learner.fit(F_pool[idx], y_pool[idx])
                acc.setdefault((name, n), []).append(learner.score(F_test, y_test))
                if isinstance(learner, LabelSpreadingLearner):
                    assert learner.pool_labels_ is not None
                    spread = float(np.mean(learner.pool_labels_[rest] == y_pool[rest]))
                    kept.setdefault(n, []).append(
                        learner.score(F_pool[rest], y_pool[rest]) - spread)
    return acc, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist10k", "fashion-mnist"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/activegen-measure"))
    args = parser.parse_args()
    settings = SelfSupervisedSettings()
    print(f"self-supervised settings: {settings.model_dump()}\n")
    for name in args.datasets:
        Xp, yp, Xt, yt = splits(name)
        rows: dict[str, dict[tuple[str, int], list[float]]] = {}
        notes = []
        for features in ("pixels", "self-supervised"):
            if features == "pixels":
                source = PixelSource()
            else:
                source = SelfSupervisedSource(settings, cache_dir=args.cache,
                                              threads=args.threads, display="lines")
            load = os.getloadavg()[0]
            t = time.perf_counter()
            source.fit(Xp)
            fit_s = time.perf_counter() - t
            t = time.perf_counter()
            F_pool, F_test = source.transform(Xp), source.transform(Xt)
            rate = (len(Xp) + len(Xt)) / (time.perf_counter() - t)
            if isinstance(source, SelfSupervisedSource) and source.training is not None:
                rec = source.training
                notes.append(
                    f"- self-supervised encoder on {len(Xp):,} pool images: trained in "
                    f"{rec.seconds:.0f} s ({len(rec.losses)} epochs, {rec.threads} thread(s), "
                    f"{'loaded from the cache; trained earlier' if rec.from_cache else 'now'}, "
                    f"load average {load:.1f} when fit() started; this fit() took "
                    f"{fit_s:.0f} s), loss {rec.losses[0]:.3f} → {rec.losses[-1]:.3f}; "
                    f"extraction {rate:,.0f} images/s; peak RSS of this process so far "
                    f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
            else:
                notes.append(f"- pixels: extraction {rate:,.0f} images/s")
            t = time.perf_counter()
            acc, kept = evaluate(F_pool, yp, F_test, yt, args.seeds)
            notes.append(f"  {features}: evaluation {time.perf_counter() - t:.0f} s; label "
                         "spreading's linear model minus its own spread labels, on the pool: "
                         + ", ".join(f"{n}: {100 * np.mean(v):+.1f}" for n, v in kept.items()))
            for (learner, n), values in acc.items():
                rows.setdefault(f"{features} + {learner}", {})[("", n)] = values
        print(f"### {name}: test accuracy (%), mean ± std over {args.seeds} random labeled "
              f"sets; pool {len(Xp):,}, test {len(Xt):,}\n")
        print("| features + learner | " + " | ".join(f"{n} labels" for n in COUNTS) + " |")
        print("|---|" + "---:|" * len(COUNTS))
        for label, values in rows.items():
            cells = [f"{100 * np.mean(values[('', n)]):.1f} ± {100 * np.std(values[('', n)]):.1f}"
                     for n in COUNTS]
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()
        print("\n".join(notes))
        print(flush=True)


if __name__ == "__main__":
    main()
