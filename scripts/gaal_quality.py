"""Sample quality of an experiment's cached generator, as docs/gaal.md reports it.

Usage: python scripts/gaal_quality.py CONFIG OUT [--n 1000] [--threshold 0.8]
Loads the generator the experiment trained (same key: pool + settings), draws ``n`` samples,
and reports how confidently the experiment's expert oracle labels them (the share it would
label at ``threshold``) and the Fréchet distance to real images in a PCA-32 space of the pool,
next to the same figures for the held-out real images (the floor).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from activegen.experiments.config import load_config
from activegen.experiments.runner import build_strategy, cache_dir, load_experiment_data
from activegen.generative import load_or_train
from activegen.generative.quality import sample_quality
from activegen.oracles.expert import load_or_fit_expert


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config)
    pool, tests = load_experiment_data(config)
    strategy = next(build_strategy(config, s.display) for s in config.strategies
                    if s.name == "gaal")
    settings = replace(strategy.gan_settings, seed=0)
    cached = load_or_train(pool.to_float(), settings, cache_dir(config, args.out))
    expert = load_or_fit_expert(pool, 10.0, cache_dir(config, args.out))

    def proba(X: np.ndarray) -> np.ndarray:
        return expert.predict_proba(X.reshape(len(X), -1))

    fake = cached.generator.sample(args.n, torch.Generator().manual_seed(123)).numpy()
    real = pool.to_float()
    print(f"generator {cached.key}: {settings}")
    print("generated:", asdict(sample_quality(real, fake, proba, args.threshold)))
    held_out = next(t for name, t in tests.items() if name.endswith("-test")).to_float()
    print("held-out real:", asdict(sample_quality(real, held_out, proba, args.threshold)))


if __name__ == "__main__":
    main()
