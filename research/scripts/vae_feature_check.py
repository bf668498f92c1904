"""How much do a config's VAE features say about the classes, and how big are they?

Loads (or trains) the VAE that CONFIG's first VAE-augmented strategy uses, from the config's
cache, encodes the pool, and prints the spread of the posterior means, their norm next to the
learner-free pixel norm, and 1-nearest-neighbour accuracy (fitted on half the pool, scored on
the other half) of VAE means vs raw pixels. Usage: python scripts/vae_feature_check.py CONFIG
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from activegen.experiments.config import load_config
from activegen.experiments.runner import build_strategy, cache_dir, load_experiment_data
from activegen.generative.vae import encode
from activegen.strategies import PrepareContext
from activegen.strategies.feature_maps import VAEAugmented


def main(path: str) -> None:
    config = load_config(path)
    pool, _ = load_experiment_data(config)
    label = next(s.display for s in config.strategies if s.name.startswith("vae-"))
    strategy = build_strategy(config, label)
    feature_map = getattr(strategy, "feature_map", None) or getattr(strategy, "head_features",
                                                                    None)
    assert isinstance(feature_map, VAEAugmented)
    strategy.prepare(PrepareContext(pool=pool, cache_dir=cache_dir(config, Path("out"))))
    X = pool.to_float()
    assert feature_map.vae is not None
    mu = encode(feature_map.vae, X)
    pixels = X.reshape(len(X), -1)
    print(f"{label}: latent {mu.shape[1]}, pool {len(X)}")
    print(f"posterior-mean std per dim: median {np.median(mu.std(0)):.4f}, "
          f"max {mu.std(0).max():.4f}; mean ||mu|| {np.linalg.norm(mu, axis=1).mean():.3f}")
    for name, feats in (("VAE means", mu), ("raw pixels", pixels)):
        knn = KNeighborsClassifier(1).fit(feats[::2], pool.y[::2])
        print(f"1-NN accuracy on {name}: {knn.score(feats[1::2], pool.y[1::2]):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
