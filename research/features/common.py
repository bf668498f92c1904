"""Data splits and the evaluation protocol shared by this folder's scripts.

- mnist10k: the 10,000 digits shuffled with seed 0; the first 8,000 are the pool (unlabeled
  images for self-supervised training, labeled sets drawn from them), the last 2,000 the
  held-out test split.
- fashion-mnist: 10,000 training images drawn with seed 0 are the pool; the official 10,000
  test images are the held-out test split.

Tuning reads the pool only (labeled sets drawn from the pool, accuracy on the rest of it);
the test split is read by ``measure.py`` alone, with the defaults fixed.
"""

from __future__ import annotations

import numpy as np

from activegen.data import load_dataset


def splits(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_pool, y_pool, X_test, y_test)`` with images float32 [N, C, H, W] in [0, 1]."""
    rng = np.random.default_rng(0)
    if name == "mnist10k":
        data = load_dataset("mnist10k", "all")
        order = rng.permutation(len(data))
        pool, test = data.take(order[:8000]), data.take(order[8000:])
    elif name == "fashion-mnist":
        train = load_dataset("fashion-mnist", "train")
        pool = train.take(rng.choice(len(train), 10000, replace=False))
        test = load_dataset("fashion-mnist", "test")
    elif name == "digits":
        data = load_dataset("digits", "all")
        order = rng.permutation(len(data))
        pool, test = data.take(order[:1400]), data.take(order[1400:])
    else:
        raise ValueError(name)
    return pool.to_float(), pool.y, test.to_float(), test.y


def labeled_set(n: int, n_pool: int, seed: int) -> np.ndarray:
    """``n`` random pool indices (plain random, as an active learner's first labels)."""
    return np.random.default_rng(1000 + seed).choice(n_pool, n, replace=False)
