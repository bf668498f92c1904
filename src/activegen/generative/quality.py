"""Sample-quality figures for a trained generator.

Two figures that need no pretrained network: how confidently an expert classifier of the
domain labels the samples (the fraction it would not abstain on is the fraction a labeler
can use), and the Fréchet distance between real and generated images in a feature space
fitted on real images (here: the top principal components of the pool), next to the same
distance between two halves of the real data as the floor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import linalg


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """``‖μ_r − μ_f‖² + Tr(Σ_r + Σ_f − 2(Σ_r Σ_f)^½)`` between two feature sets ``[N, d]``."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"Fréchet distance needs [N, d] features of one d, got {real.shape} "
                         f"and {fake.shape}")
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("Fréchet distance needs at least 2 samples on each side")
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = linalg.sqrtm(cov_r @ cov_f)
    covmean = np.real(covmean)
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2.0 * covmean))


def pca_features(reference: np.ndarray, n_components: int = 32
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """A feature map ``[N, C, H, W] → [N, n_components]`` fitted on ``reference`` images."""
    from sklearn.decomposition import PCA

    flat = np.asarray(reference, dtype=np.float32).reshape(len(reference), -1)
    pca = PCA(n_components=min(n_components, flat.shape[1], len(flat) - 1), random_state=0)
    pca.fit(flat)
    return lambda X: pca.transform(np.asarray(X, dtype=np.float32).reshape(len(X), -1))


@dataclass(frozen=True)
class SampleQuality:
    """Quality figures of ``n`` generated samples."""

    n: int
    expert_mean_confidence: float
    expert_usable_fraction: float  # share with confidence >= threshold
    threshold: float
    frechet_generated: float  # real (first half) vs generated
    frechet_real_halves: float  # real vs real: the floor the generator is measured against


def sample_quality(real: np.ndarray, generated: np.ndarray,
                   expert_proba: Callable[[np.ndarray], np.ndarray], threshold: float,
                   n_components: int = 32, seed: int = 0) -> SampleQuality:
    """Expert confidence on ``generated`` and Fréchet distances in PCA space of ``real``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(real))
    half_a, half_b = real[order[: len(real) // 2]], real[order[len(real) // 2:]]
    features = pca_features(real, n_components)
    confidence = np.asarray(expert_proba(generated)).max(axis=1)
    return SampleQuality(
        n=len(generated),
        expert_mean_confidence=float(confidence.mean()),
        expert_usable_fraction=float((confidence >= threshold).mean()),
        threshold=threshold,
        frechet_generated=frechet_distance(features(half_a), features(generated)),
        frechet_real_halves=frechet_distance(features(half_a), features(half_b)),
    )
