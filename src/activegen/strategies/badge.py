"""BADGE (Ash et al. 2020): k-means++ seeding on the gradient embeddings of the last layer.

The gradient of the cross-entropy at the predicted label ``ŷ`` with respect to the last
layer's weights is ``g(x) = (p(x) - e_ŷ) ⊗ h(x)`` (``h`` = penultimate features, the learner's
``embed``; ``p`` = its ``predict_proba``). ``g`` has ``K·d`` entries per point, so it is never
built: since ``⟨a⊗h, b⊗h'⟩ = ⟨a, b⟩⟨h, h'⟩``,

    ||g_i - g_j||² = ||a_i||²||h_i||² + ||a_j||²||h_j||² - 2⟨a_i, a_j⟩⟨h_i, h_j⟩,

which costs O(K + d) per pair instead of O(K·d). scikit-learn's ``kmeans_plusplus`` would
need the explicit ``[N, K·d]`` matrix (and samples several trial centres per step), hence
this short hand-written seeding.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from activegen.models.capabilities import Embedding, Probabilistic
from activegen.strategies.base import Query, QueryState, Strategy
from activegen.strategies.subsample import SubsampleSettings, restrict

FirstCentre = Literal["max-norm", "random"]


def gradient_embedding_factors(proba: np.ndarray, features: np.ndarray) -> tuple[
        np.ndarray, np.ndarray]:
    """The factors ``(a, h)`` of ``g = a ⊗ h``: ``a = p - onehot(argmax p)``, ``h`` = features."""
    proba = np.asarray(proba, dtype=np.float64)
    features = np.asarray(features, dtype=np.float64)
    if proba.ndim != 2 or features.ndim != 2 or len(proba) != len(features):
        raise ValueError(
            f"need proba [N, K] and features [N, d] with the same N, got {proba.shape} and "
            f"{features.shape}")
    a = proba.copy()
    a[np.arange(len(a)), proba.argmax(axis=1)] -= 1.0
    return a, features


def gradient_embeddings(proba: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The explicit ``[N, K·d]`` gradient embeddings (for checks and small data only)."""
    a, h = gradient_embedding_factors(proba, features)
    return (a[:, :, None] * h[:, None, :]).reshape(len(a), -1)


def factored_sq_distances(
    a: np.ndarray, h: np.ndarray, a_centre: np.ndarray, h_centre: np.ndarray
) -> np.ndarray:
    """``||a_i ⊗ h_i - a_c ⊗ h_c||²`` for every row ``i``, in O(N·(K + d)), clipped at 0."""
    a_sq = np.einsum("ij,ij->i", a, a)
    h_sq = np.einsum("ij,ij->i", h, h)
    d_sq = a_sq * h_sq + (a_centre @ a_centre) * (h_centre @ h_centre)
    d_sq -= 2.0 * (a @ a_centre) * (h @ h_centre)
    return np.maximum(d_sq, 0.0, out=d_sq)


def kmeans_pp_factored(
    a: np.ndarray,
    h: np.ndarray,
    k: int,
    rng: np.random.Generator,
    first: FirstCentre = "max-norm",
) -> np.ndarray:
    """k-means++ seeding (D² sampling) on the points ``a_i ⊗ h_i`` without building them.

    The first centre is the largest gradient norm (``"max-norm"``, as in the BADGE authors'
    code; lowest index on ties) or uniform (``"random"``); each next one is drawn with
    probability proportional to the squared distance to its nearest chosen centre. Picks are
    distinct: chosen points get weight 0, and if every remaining weight is 0 (duplicates) the
    next pick is uniform among the points not chosen. Memory O(N·(K + d)).

    Returns:
        ``int64 [min(k, N)]`` row indices, in pick order.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if first not in ("max-norm", "random"):
        raise ValueError(f"first must be 'max-norm' or 'random', got {first!r}")
    n = len(a)
    k = min(k, n)
    g_sq = np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", h, h)
    chosen = np.zeros(n, dtype=bool)
    picks: list[int] = []
    nearest = np.full(n, np.inf)
    for step in range(k):
        if step == 0:
            pick = int(np.argmax(g_sq)) if first == "max-norm" else int(rng.integers(n))
        else:
            weights = np.where(chosen, 0.0, nearest)
            total = weights.sum()
            if total > 0.0:
                pick = int(rng.choice(n, p=weights / total))
            else:
                pick = int(rng.choice(np.flatnonzero(~chosen)))
        picks.append(pick)
        chosen[pick] = True
        np.minimum(nearest, factored_sq_distances(a, h, a[pick], h[pick]), out=nearest)
    return np.asarray(picks, dtype=np.int64)


class BADGESettings(SubsampleSettings):
    """How BADGE seeds its k-means++."""

    first: FirstCentre = Field("max-norm", description=(
        "the first centre: max-norm (as the authors' code) or random; later centres by D² "
        "sampling with the round's seeded generator"))


class BADGE(Strategy):
    """BADGE: diverse *and* uncertain batches by k-means++ on last-layer gradient embeddings."""

    name: ClassVar[str] = "badge"
    requires: tuple[type, ...] = (Embedding, Probabilistic)
    Settings = BADGESettings
    settings: BADGESettings

    def query(self, state: QueryState, k: int) -> Query:
        state = restrict(state, k, self.settings.subsample)
        candidates = state.available_indices
        X = state.X_pool[candidates]
        a, h = gradient_embedding_factors(state.learner.predict_proba(X), state.learner.embed(X))
        rows = kmeans_pp_factored(a, h, k, state.rng, first=self.settings.first)
        return Query.from_pool(candidates[rows])
