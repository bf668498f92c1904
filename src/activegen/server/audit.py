"""An honest estimate: a random audit sample the person labels, never used for training.

Active-learning picks are chosen for being hard, so accuracy on them is biased. The audit
sample is drawn uniformly at random (seeded) from the readable images before anything else and
removed from the pool, so no strategy can pick it and no learner sees it; the current model's
accuracy on the audited images, with a Wilson score interval, estimates its accuracy on the
whole folder.
"""

from __future__ import annotations

import math

import numpy as np

from activegen.errors import ConfigError


def audit_size(audit: float, n_images: int) -> int:
    """``audit`` images (an integer >= 1) or that fraction of ``n_images`` (0 < audit < 1)."""
    if audit < 0:
        raise ConfigError(f"audit {audit} must be >= 0 (a count, or a fraction below 1)")
    n = round(audit * n_images) if 0 < audit < 1 else int(audit)
    if n >= n_images:
        raise ConfigError(f"audit sample ({n}) must be smaller than the {n_images} images")
    return n


def draw_audit(n_images: int, n_audit: int, seed: int) -> np.ndarray:
    """Sorted indices of the audit sample: a seeded uniform draw without replacement."""
    rng = np.random.default_rng([seed, 0xA0D17])
    return np.sort(rng.choice(n_images, size=n_audit, replace=False))


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default); ``(0, 1)`` for n=0."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 a bound is exactly 0 or 1; say so rather than 0.9999999999999999.
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high


def audit_estimate(truth: dict[int, int], predicted: np.ndarray | None) -> dict[str, object]:
    """Accuracy of ``predicted`` (labels of the audit images, by audit index) on the answered
    audit images (``truth``: audit index → label; "can't tell" answers, ``-1``, excluded)."""
    known = {i: y for i, y in truth.items() if y >= 0}
    out: dict[str, object] = {"answered": len(truth), "counted": len(known)}
    if predicted is None or not known:
        out.update(correct=None, accuracy=None, low=None, high=None)
        return out
    correct = sum(int(predicted[i] == y) for i, y in known.items())
    low, high = wilson_interval(correct, len(known))
    out.update(correct=correct, accuracy=correct / len(known), low=low, high=high)
    return out
