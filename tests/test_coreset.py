"""Core-set k-center greedy and MedAL against brute force, and their strategies' contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from activegen.errors import EmptyPoolError
from activegen.models.base import WithEmbedding, WithMargins, WithProba
from activegen.strategies import CoreSet, MedAL, QueryState
from activegen.strategies.coreset import kcenter_greedy, medal_select


# -- brute-force references (independent: scipy distances, recomputed from scratch) ----------
def brute_kcenter(X: np.ndarray, labeled, k: int, candidates=None) -> np.ndarray:
    """Each pick: the candidate of largest min float64 distance to every centre so far."""
    X = np.asarray(X, dtype=np.float64)
    labeled = np.unique(np.asarray(labeled, dtype=np.int64))
    pool = np.arange(len(X)) if candidates is None else np.unique(candidates)
    pool = np.setdiff1d(pool, labeled)
    centres = list(labeled)
    picks: list[int] = []
    for _ in range(min(k, len(pool))):
        left = np.setdiff1d(pool, picks)  # sorted: argmax's first maximum = lowest index
        if centres:
            nearest = cdist(X[left], X[centres], "sqeuclidean").min(axis=1)
        else:
            nearest = np.full(len(left), np.inf)
        best = int(left[np.argmax(nearest)])
        picks.append(best)
        centres.append(best)
    return np.asarray(picks)


def brute_medal(U: np.ndarray, L: np.ndarray, k: int, squared: bool) -> np.ndarray:
    """Each pick: the row of largest mean distance to the labeled rows plus earlier picks."""
    labeled = [row for row in np.asarray(L, dtype=np.float64)]
    picks: list[int] = []
    for _ in range(min(k, len(U))):
        metric = "sqeuclidean" if squared else "euclidean"
        mean = cdist(U, np.array(labeled), metric).mean(axis=1) if labeled else np.zeros(len(U))
        mean[picks] = -np.inf
        best = int(np.argmax(mean))
        picks.append(best)
        labeled.append(U[best])
    return np.asarray(picks)


# -- k-center greedy ------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_kcenter_matches_brute_force_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(20, 200)), int(rng.integers(1, 40))
    X = (rng.normal(size=(n, d)) * rng.uniform(0.01, 100) + rng.uniform(-1e3, 1e3)).astype(
        np.float32)
    labeled = rng.choice(n, int(rng.integers(0, n // 2)), replace=False)
    k = int(rng.integers(1, n))
    picks = kcenter_greedy(X, labeled, k, chunk_size=int(rng.integers(1, 30)))
    np.testing.assert_array_equal(picks, brute_kcenter(X, labeled, k))


@pytest.mark.parametrize("seed", range(6))
def test_kcenter_lazy_levels_match_brute_force(seed, monkeypatch):
    # Force the multi-level lazy path (normally from 256 labeled centres on) with tiny refine
    # batches, on random and on integer (tie-rich) data.
    import activegen.strategies.coreset as coreset_module

    monkeypatch.setattr(coreset_module, "_MIN_CENTRES_FOR_LEVELS", 2)
    monkeypatch.setattr(coreset_module, "_REFINE_BATCH", int(1 + seed % 3 * 4))
    rng = np.random.default_rng(100 + seed)
    n, d = int(rng.integers(30, 250)), int(rng.integers(1, 12))
    X = rng.normal(size=(n, d)) if seed % 2 else rng.integers(-2, 3, size=(n, d)).astype(float)
    labeled = rng.choice(n, int(rng.integers(2, n // 2)), replace=False)
    k = int(rng.integers(1, n))
    picks = kcenter_greedy(X, labeled, k, chunk_size=int(rng.integers(1, 40)))
    np.testing.assert_array_equal(picks, brute_kcenter(X, labeled, k))


def test_kcenter_many_labeled_centres_uses_levels_and_stays_exact():
    rng = np.random.default_rng(7)
    X = (rng.normal(size=(40, 24)) * 5)[rng.integers(0, 40, 1500)] + rng.normal(size=(1500, 24))
    labeled = rng.choice(1500, 400, replace=False)
    np.testing.assert_array_equal(kcenter_greedy(X, labeled, 150),
                                  brute_kcenter(X, labeled, 150))


def test_kcenter_on_clustered_data_and_candidate_subset():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 16)) * 10
    X = centres[rng.integers(0, 6, 400)] + rng.normal(size=(400, 16)) * 0.3
    labeled = rng.choice(400, 30, replace=False)
    candidates = rng.choice(400, 150, replace=False)  # some of them labeled: must be dropped
    picks = kcenter_greedy(X, labeled, 40, candidates=candidates, chunk_size=7)
    np.testing.assert_array_equal(picks, brute_kcenter(X, labeled, 40, candidates))
    assert set(picks) <= set(candidates) - set(labeled)


def test_kcenter_ties_and_duplicates_go_to_the_lowest_index():
    # Small integers: every distance is exact in float32 and float64, so ties are real ties.
    rng = np.random.default_rng(2)
    base = rng.integers(-3, 4, size=(25, 3)).astype(np.float32)
    X = np.concatenate([base, base, base[:10]])  # many exact duplicates
    for labeled in (np.array([0, 1]), np.array([], dtype=np.int64), np.arange(20)):
        picks = kcenter_greedy(X, labeled, 30, chunk_size=4)
        np.testing.assert_array_equal(picks, brute_kcenter(X, labeled, 30))
    # Four corners tie; the lowest index wins.
    square = np.array([[0, 0], [1, 1], [-1, 1], [1, -1], [-1, -1]], dtype=np.float32)
    assert kcenter_greedy(square, np.array([0]), 1)[0] == 1


def test_kcenter_float64_resolution_beyond_float32():
    # Points that float32 cannot tell apart (1e-9 offsets on values ~1e3): the float32 screen
    # must hand the decision to float64, or the picks differ from brute force.
    rng = np.random.default_rng(3)
    grid = rng.integers(0, 3, size=(60, 4)).astype(np.float64) * 1e3
    X = grid + rng.normal(size=grid.shape) * 1e-6
    labeled = np.arange(5)
    picks = kcenter_greedy(X, labeled, 40)
    np.testing.assert_array_equal(picks, brute_kcenter(X, labeled, 40))


@pytest.mark.parametrize("magnitude", [1e-20, 1e25])
def test_kcenter_is_exact_for_very_large_and_very_small_values(magnitude):
    # Squares of 1e25 overflow float32: the float32 screen must be rescaled, not trusted blindly.
    rng = np.random.default_rng(8)
    X = rng.normal(size=(300, 10)) * magnitude
    labeled = rng.choice(300, 40, replace=False)
    np.testing.assert_array_equal(kcenter_greedy(X, labeled, 30), brute_kcenter(X, labeled, 30))


def test_kcenter_k_larger_than_candidates_returns_each_once():
    X = np.random.default_rng(4).normal(size=(12, 3))
    picks = kcenter_greedy(X, np.array([0, 5]), 50)
    assert sorted(picks) == sorted(set(range(12)) - {0, 5})
    np.testing.assert_array_equal(picks, brute_kcenter(X, [0, 5], 50))
    assert len(kcenter_greedy(X, np.arange(12), 3)) == 0


def test_kcenter_accepts_torch_tensors_and_auto_device():
    X = np.random.default_rng(5).normal(size=(50, 8)).astype(np.float32)
    expected = kcenter_greedy(X, np.array([3]), 10)
    np.testing.assert_array_equal(
        kcenter_greedy(torch.from_numpy(X), np.array([3]), 10, device="auto"), expected)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"features": np.zeros(5), "labeled": [], "k": 1}, ValueError),
        ({"features": np.full((3, 2), np.nan), "labeled": [], "k": 1}, ValueError),
        ({"features": np.zeros((3, 2)), "labeled": [7], "k": 1}, IndexError),
        ({"features": np.zeros((3, 2)), "labeled": [], "k": 0}, ValueError),
        ({"features": np.zeros((3, 2)), "labeled": [], "k": 1, "candidates": [-1]}, IndexError),
        ({"features": np.zeros((3, 2)), "labeled": [], "k": 1, "chunk_size": 0}, ValueError),
    ],
)
def test_kcenter_rejects_bad_input(kwargs, error):
    with pytest.raises(error):
        kcenter_greedy(**kwargs)


# -- MedAL ----------------------------------------------------------------------------------
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_medal_select_matches_brute_force(seed, squared):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 20))
    U = rng.normal(size=(int(rng.integers(5, 80)), d)) * 3
    L = rng.normal(size=(int(rng.integers(0, 30)), d))
    k = int(rng.integers(1, len(U) + 3))
    picks = medal_select(U, L, k, squared=squared, chunk_size=int(rng.integers(1, 9)))
    np.testing.assert_array_equal(picks, brute_medal(U, L, k, squared))


def test_medal_select_rejects_mismatched_labeled_features():
    with pytest.raises(ValueError, match="features_labeled"):
        medal_select(np.zeros((4, 6)), np.zeros((3, 4)), 1)
    with pytest.raises(ValueError, match="k must be"):
        medal_select(np.zeros((4, 6)), np.zeros((3, 6)), 0)


def test_medal_uses_the_mean_not_the_min():
    # Point 0 is next to one labeled point but far from the rest on average; point 1 is the
    # opposite. Mean distance must prefer 0, min distance would prefer 1.
    L = np.array([[0.0], [10.0], [10.0], [10.0]])
    U = np.array([[0.5], [5.0]])
    assert medal_select(U, L, 1)[0] == 0
    assert cdist(U, L).min(axis=1).argmax() == 1


# -- strategies -----------------------------------------------------------------------------
class TableLearner(WithProba, WithMargins, WithEmbedding):
    """A learner whose features and probabilities are looked up by the index stored in x."""

    name = "table"

    def __init__(self, features: np.ndarray, proba: np.ndarray) -> None:
        super().__init__(proba.shape[1])
        self.table_features = features
        self.table_proba = proba
        self._fitted = True

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



def make_state(features, proba, labeled, queried_extra=(), seed=0, X_extra=None):
    n = len(features)
    X_pool = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)
    queried = np.zeros(n, dtype=bool)
    queried[labeled] = True
    queried[list(queried_extra)] = True
    learner = TableLearner(features, proba)
    return QueryState(X_pool, queried, np.asarray(labeled, dtype=np.int64), learner,
                      proba.shape[1], np.random.default_rng(seed), X_extra=X_extra)


def random_table(n=120, d=6, k_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k_classes)) * 2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return rng.normal(size=(n, d)).astype(np.float32), proba


def test_coreset_strategy_matches_kcenter_and_skips_queried():
    features, proba = random_table()
    labeled, abstained = np.arange(0, 20), [50, 51, 52]
    state = make_state(features, proba, labeled, queried_extra=abstained)
    query = CoreSet(device="cpu").query(state, 15)
    candidates = np.setdiff1d(np.arange(120), np.concatenate([labeled, abstained]))
    np.testing.assert_array_equal(
        query.indices, brute_kcenter(features, labeled, 15, candidates))
    assert not set(query.indices) & (set(labeled) | set(abstained))


def test_coreset_counts_synthesized_labeled_images_as_centres():
    features, proba = random_table()
    labeled = np.arange(10)
    state = make_state(features, proba, labeled)
    first = CoreSet().query(state, 1).indices[0]
    # A labeled synthesized image whose features equal the first pick's: it is covered now.
    extra = np.array([[[[first]]]], dtype=np.float32)
    with_extra = make_state(features, proba, labeled, X_extra=extra)
    assert CoreSet().query(with_extra, 1).indices[0] != first


def test_coreset_subsample_and_empty_pool():
    features, proba = random_table()
    state = make_state(features, proba, np.arange(10), seed=3)
    picks = CoreSet(subsample=30).query(state, 5).indices
    again = CoreSet(subsample=30).query(make_state(features, proba, np.arange(10), seed=3), 5)
    np.testing.assert_array_equal(picks, again.indices)
    assert len(set(picks)) == 5 and not set(picks) & set(range(10))
    with pytest.raises(EmptyPoolError):
        CoreSet().query(make_state(features, proba, np.arange(120)), 3)
    with pytest.raises(EmptyPoolError):
        MedAL().query(make_state(features, proba, np.arange(120)), 3)


def test_coreset_with_nothing_labeled_starts_at_a_seeded_random_point():
    features, proba = random_table()
    picks = [CoreSet().query(make_state(features, proba, [], seed=s), 4).indices for s in (0, 1)]
    assert all(len(set(p)) == 4 for p in picks)
    assert picks[0][0] != picks[1][0]
    np.testing.assert_array_equal(picks[0][1:], brute_kcenter(features, picks[0][:1], 3))


def entropy(p):
    return -(p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1)


@pytest.mark.parametrize("squared", [False, True])
def test_medal_strategy_prefilters_by_entropy_then_mean_distance(squared):
    features, proba = random_table(seed=5)
    labeled = np.arange(0, 15)
    state = make_state(features, proba, labeled)
    query = MedAL(top_m=25, squared=squared).query(state, 6)
    candidates = np.arange(15, 120)
    shortlist = np.sort(candidates[np.argsort(-entropy(proba[candidates]), kind="stable")[:25]])
    expected = shortlist[brute_medal(features[shortlist], features[labeled], 6, squared)]
    np.testing.assert_array_equal(query.indices, expected)


def test_medal_binary_entropy_keeps_the_uncertain_points():
    # A sign bug in binary entropy would keep the confident points instead.
    n = 40
    p1 = np.where(np.arange(n) % 2 == 0, 0.5, 0.99)
    proba = np.stack([1 - p1, p1], axis=1)
    features = np.random.default_rng(6).normal(size=(n, 3))
    state = make_state(features, proba, [0, 1])
    picks = MedAL(prefilter_fraction=0.5).query(state, 5).indices
    assert all(i % 2 == 0 for i in picks)


def test_medal_rejects_bad_parameters():
    with pytest.raises(ValueError, match="top_m"):
        MedAL(top_m=0)
    with pytest.raises(ValueError, match="prefilter_fraction"):
        MedAL(prefilter_fraction=0.0)
    with pytest.raises(ValueError, match="subsample"):
        CoreSet(subsample=0)
