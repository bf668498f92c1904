"""Training throughput of the deep learners and the VAE (images per second), as ratios.

Measured in one process on 28×28 grey images: the small CNN, ResNet-18 in float32, ResNet-18
with bf16 autocast + channels_last, and the paper's conv VAE. The baseline is ResNet-18 float32
measured in the same run; the target is that bf16 + channels_last is not slower than it on a
CPU with bf16 support (KNOWN.md: ≈116 → ≈250 images/s). Usage:

    python benchmarks/bench_models.py [--threads 1] [--images 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from activegen.generative.vae import VAESettings, train_vae
from activegen.models import ResNet18, SmallCNN


def images_per_second(fit, X: np.ndarray, y: np.ndarray, repeats: int = 2) -> float:
    """Best of ``repeats`` timed fits of one epoch (after one warm-up fit)."""
    fit(X[:64], y[:64])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit(X, y)
        best = min(best, time.perf_counter() - t0)
    return len(X) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X = rng.random((args.images, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, args.images)
    one_epoch = dict(schedule="fixed", epochs=1, batch_size=64, device="cpu")

    def learner(cls, **kw):
        return lambda X_, y_: cls(10, **one_epoch, **kw).fit(X_, y_)

    rates = {
        "resnet18 fp32": images_per_second(learner(ResNet18), X, y),
        "resnet18 bf16+channels_last": images_per_second(
            learner(ResNet18, bf16=True, channels_last=True), X, y),
        "small-cnn": images_per_second(learner(SmallCNN), X, y),
        "conv VAE (width 32)": images_per_second(
            lambda X_, y_: train_vae(X_, VAESettings(epochs=1, batch_size=64)), X, y),
        "conv VAE (width 16)": images_per_second(
            lambda X_, y_: train_vae(X_, VAESettings(epochs=1, width=16, batch_size=64)), X, y),
    }
    base = rates["resnet18 fp32"]
    print(f"{'model':<30} {'images/s':>10} {'vs resnet18 fp32':>17}")
    for name, rate in rates.items():
        print(f"{name:<30} {rate:>10.0f} {rate / base:>16.2f}x")


if __name__ == "__main__":
    main()
