"""Seconds to train the self-supervised encoder with the shipped defaults on 10,000 28x28
grey images, one thread, nothing cached: the number the feature-training goal is about.

    OMP_NUM_THREADS=1 PYTHONPATH=src python research/features/train_time.py [--n 10000]

The images: mnist10k's 10,000 digits (~/.activegen/data/mnist10k). The 1-minute load average
before and after is printed beside the time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from activegen.data import load_dataset
from activegen.features import SelfSupervisedSettings, make_source


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    n = parser.parse_args().n
    torch.set_num_threads(1)
    X = load_dataset("mnist10k").to_float()[:n]
    settings = SelfSupervisedSettings()
    load = Path("/proc/loadavg").read_text().split()[0]
    estimate = settings.estimated_seconds(len(X), X.shape[1:])
    source = make_source("self-supervised", settings=settings, cache_dir=None, threads=1,
                         display="lines")
    started = time.perf_counter()
    source.fit(X)
    seconds = time.perf_counter() - started
    after = Path("/proc/loadavg").read_text().split()[0]
    print(f"{len(X)} images {tuple(X.shape[1:])}, defaults, 1 thread: {seconds:.0f} s "
          f"(estimate {estimate:.0f} s; load {load} before, {after} after)", flush=True)


if __name__ == "__main__":
    main()
