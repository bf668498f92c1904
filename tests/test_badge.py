"""BADGE: factorised gradient-embedding distances, k-means++ seeding, the strategy contract."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from activegen.errors import EmptyPoolError
from activegen.models.base import WithEmbedding, WithMargins, WithProba
from activegen.strategies import BADGE, STRATEGIES, QueryState
from activegen.strategies.badge import (
    factored_sq_distances,
    gradient_embedding_factors,
    gradient_embeddings,
    kmeans_pp_factored,
)


def random_outputs(n=60, k_classes=4, d=5, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k_classes)) * 2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return proba, rng.normal(size=(n, d))


def test_gradient_embedding_is_last_layer_gradient():
    proba, h = random_outputs(n=7, k_classes=3, d=4)
    g = gradient_embeddings(proba, h).reshape(7, 3, 4)
    y_hat = proba.argmax(axis=1)
    for i in range(7):
        for c in range(3):  # d CE(ŷ) / d W_c = (p_c - 1[c = ŷ]) h
            np.testing.assert_allclose(g[i, c], (proba[i, c] - (c == y_hat[i])) * h[i])


@pytest.mark.parametrize("seed", range(3))
def test_factorised_distances_equal_explicit_outer_products(seed):
    proba, h = random_outputs(seed=seed)
    a, h = gradient_embedding_factors(proba, h)
    g = gradient_embeddings(proba, h)
    for centre in (0, 17, 59):
        explicit = cdist(g, g[[centre]], "sqeuclidean")[:, 0]
        np.testing.assert_allclose(
            factored_sq_distances(a, h, a[centre], h[centre]), explicit, atol=1e-9)


def kmeans_pp_explicit(g: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Reference seeding on explicit embeddings, same random draws as the factorised one."""
    picks = [int(np.argmax(np.linalg.norm(g, axis=1)))]
    nearest = cdist(g, g[picks], "sqeuclidean").min(axis=1)
    for _ in range(1, k):
        weights = nearest.copy()
        weights[picks] = 0.0
        picks.append(int(rng.choice(len(g), p=weights / weights.sum())))
        nearest = np.minimum(nearest, cdist(g, g[[picks[-1]]], "sqeuclidean")[:, 0])
    return np.asarray(picks)


def test_kmeans_pp_matches_explicit_reference_and_is_distinct():
    proba, h = random_outputs(n=80, seed=4)
    a, hh = gradient_embedding_factors(proba, h)
    picks = kmeans_pp_factored(a, hh, 20, np.random.default_rng(9))
    expected = kmeans_pp_explicit(gradient_embeddings(proba, h), 20, np.random.default_rng(9))
    np.testing.assert_array_equal(picks, expected)
    assert len(set(picks)) == 20


def test_kmeans_pp_distinct_even_with_duplicates_and_zero_gradients():
    # Every point identical, then all-confident points (zero gradient): all D² are 0.
    a = np.tile([[0.2, -0.2]], (10, 1))
    h = np.ones((10, 3))
    picks = kmeans_pp_factored(a, h, 10, np.random.default_rng(0))
    assert sorted(picks) == list(range(10))
    zero = kmeans_pp_factored(np.zeros((6, 2)), h[:6], 4, np.random.default_rng(0))
    assert len(set(zero)) == 4


def test_kmeans_pp_samples_proportional_to_d_squared():
    # Centre 0 first (largest norm); the others sit at D² = 1 and 9 from it: 10% / 90%.
    a = np.array([[1.0], [1.0], [1.0]])
    h = np.array([[5.0], [4.0], [2.0]])  # D² to point 0: 1 and 9
    rng = np.random.default_rng(0)
    seconds = [kmeans_pp_factored(a, h, 2, rng)[1] for _ in range(4000)]
    share = np.mean(np.asarray(seconds) == 2)
    assert 0.88 < share < 0.92
    assert all(kmeans_pp_factored(a, h, 2, rng)[0] == 0 for _ in range(5))


def test_kmeans_pp_is_seeded():
    proba, h = random_outputs(n=200, seed=1)
    a, h = gradient_embedding_factors(proba, h)
    runs = [kmeans_pp_factored(a, h, 15, np.random.default_rng(s)) for s in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    random_first = [kmeans_pp_factored(a, h, 1, np.random.default_rng(s), first="random")[0]
                    for s in range(5)]
    assert len(set(random_first)) > 1


class TableLearner(WithProba, WithMargins, WithEmbedding):
    name = "table"

    def __init__(self, features, proba):
        super().__init__(proba.shape[1])
        self.table_features, self.table_proba, self._fitted = features, proba, True

    def _rows(self, X):
        return np.asarray(X)[:, 0, 0, 0].astype(np.int64)

    def _predict(self, X):
        return self._predict_proba(X).argmax(axis=1)

    def _fit(self, X, y):
        raise AssertionError("a strategy must never train the learner")

    def _decision_function(self, X):
        return self.table_proba[self._rows(X)]

    def _predict_proba(self, X):
        return self.table_proba[self._rows(X)]

    def _embed(self, X):
        return self.table_features[self._rows(X)]



def make_state(proba, features, labeled, seed=0):
    n = len(proba)
    queried = np.zeros(n, dtype=bool)
    queried[labeled] = True
    return QueryState(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), queried,
                      np.asarray(labeled, dtype=np.int64), TableLearner(features, proba),
                      proba.shape[1], np.random.default_rng(seed))


def test_badge_strategy_contract():
    proba, h = random_outputs(n=100, seed=2)
    labeled = np.arange(0, 100, 3)
    query = STRATEGIES.build("badge", {}).query(make_state(proba, h, labeled, seed=5), 12)
    assert len(set(query.indices)) == 12 and not set(query.indices) & set(labeled)
    again = BADGE().query(make_state(proba, h, labeled, seed=5), 12)
    np.testing.assert_array_equal(query.indices, again.indices)
    candidates = np.setdiff1d(np.arange(100), labeled)
    a, hh = gradient_embedding_factors(proba[candidates], h[candidates])
    # The first pick is the unlabeled point with the largest gradient norm.
    assert query.indices[0] == candidates[np.argmax(np.linalg.norm(a, axis=1) *
                                                    np.linalg.norm(hh, axis=1))]
    sub = BADGE(subsample=20).query(make_state(proba, h, labeled), 30)
    assert len(sub.indices) == 20 and not set(sub.indices) & set(labeled)
    with pytest.raises(EmptyPoolError):
        BADGE().query(make_state(proba, h, np.arange(100)), 1)
    with pytest.raises(ValueError, match="first"):
        BADGE(first="centre")
