"""GAAL costs on this machine, as ratios against the pool baseline measured in the same run.

Measures: DCGAN training throughput (images/s; the ``paper`` generator preset, ``--epochs``
epochs) on the mnist5k 5-vs-7 pool; the wall time to synthesize one batch of 10 GAAL queries
with the default synthesis settings (the ``paper`` preset: SGD, 50 steps, 4 starts per query,
all 40 starts in one batch); and one round of the pool-based uncertainty baseline
(SVMactive: fit the linear SVM on 50 labels, score the pool, take the top 10) on the same pool.

    PYTHONPATH=src python benchmarks/bench_gaal.py [--threads 1] [--repeats 5] [--epochs 3]
        [--cache DIR]

With ``--cache`` the synthesis uses the generator that ``configs/gaal-mnist5k.toml`` caches
(its ``[generator]`` table, artifact seed 0) in the experiment's cache folder ``DIR`` (trained
there first when absent: 300 epochs); without it, the generator trained here for the
throughput.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from activegen.data.registry import load_dataset
from activegen.experiments.config import load_config
from activegen.generative import GeneratorSettings, load_or_train, train_generator
from activegen.loop import initial_labeled_indices
from activegen.models import LinearSVM
from activegen.strategies import QueryState, SVMActive
from activegen.strategies.gaal import synthesize

#: the experiment whose cached generator ``--cache`` loads
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gaal-mnist5k.toml"


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pool, _ = load_dataset("mnist5k").select_classes([5, 7]).split(0.2, 0)
    X = pool.to_float()
    gen, report = train_generator(X, GeneratorSettings(epochs=args.epochs), seed=0)
    if args.cache is not None:
        config = load_config(CONFIG)
        gen = load_or_train(X, GeneratorSettings.model_validate(config.generator), args.cache,
                            seed=0).generator
    labeled = initial_labeled_indices(pool.y, 50, 0)
    learner = LinearSVM(2).fit(X[labeled], pool.y[labeled])
    synth = _timed(lambda: synthesize(gen, learner.torch_decision, 10,
                                      torch_generator=torch.Generator().manual_seed(0)),
                   args.repeats)

    def svm_active_round() -> None:
        fitted = LinearSVM(2).fit(X[labeled], pool.y[labeled])
        queried = np.zeros(len(X), dtype=bool)
        queried[labeled] = True
        SVMActive().query(QueryState(X, queried, labeled, fitted, 2,
                                     np.random.default_rng(0)), 10)

    pool_round = _timed(svm_active_round, args.repeats)
    s, p = statistics.median(synth), statistics.median(pool_round)
    print(f"pool: {len(X)} images of 28x28, torch threads: {args.threads}, "
          f"repeats: {args.repeats} (medians)")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| DCGAN training throughput | {report.images_per_second:,.0f} images/s "
          f"({report.images_seen} images in {report.seconds:.1f} s) |")
    print(f"| GAAL synthesis, 10 queries | {s:.3f} s |")
    print(f"| SVMactive round (fit on 50 + rank {len(X) - 50} + top 10) | {p:.3f} s |")
    print(f"| ratio synthesis / SVMactive round | {s / p:.1f}x |")


if __name__ == "__main__":
    main()
