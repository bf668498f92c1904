"""Pool strategies against brute force and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from activegen.data import load_dataset
from activegen.errors import ConfigError, EmptyPoolError, UnknownNameError
from activegen.models import LinearSVM, LogisticRegression
from activegen.strategies import STRATEGIES, QueryState, top_k
from activegen.strategies.uncertainty import (
    entropy_scores,
    hyperplane_distance_scores,
    least_confidence_scores,
    margin_scores,
)


@pytest.fixture(scope="module")
def pool_5v7() -> tuple[np.ndarray, np.ndarray]:
    ds = load_dataset("digits").select_classes([5, 7])
    return ds.to_float(), ds.y


def _state(X: np.ndarray, y: np.ndarray, labeled: np.ndarray, learner=None, seed: int = 0,
           n_classes: int = 2) -> QueryState:
    queried = np.zeros(len(X), dtype=bool)
    queried[labeled] = True
    if learner is None:
        learner = LinearSVM(n_classes=n_classes).fit(X[labeled], y[labeled])
    return QueryState(X_pool=X, queried=queried, labeled_indices=labeled, learner=learner,
                      n_classes=n_classes, rng=np.random.default_rng(seed))


def _labeled(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    both = np.concatenate([rng.choice(np.flatnonzero(y == c), n // 2, replace=False)
                           for c in (0, 1)])
    return np.sort(both)


# -- SVMactive against brute force on the fitted w, b ----------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_svm_active_picks_the_points_nearest_the_hyperplane(pool_5v7, seed: int) -> None:
    X, y = pool_5v7
    labeled = _labeled(y, 10, seed)
    state = _state(X, y, labeled)
    w, b = state.learner.linear_weights()
    # Brute force: the distance of every unqueried point to the hyperplane, smallest first.
    flat = X.reshape(len(X), -1).astype(np.float64)
    distance = np.abs(flat @ w[0] + b[0]) / np.linalg.norm(w[0])
    distance[state.queried] = np.inf
    expected = np.argsort(distance, kind="stable")[:7]
    query = STRATEGIES.build("svm-active", {}).query(state, 7)
    assert sorted(query.indices.tolist()) == sorted(expected.tolist())
    assert not state.queried[query.indices].any()
    # The scores returned belong to the picks: -|w·x + b|, in the order of the picks.
    np.testing.assert_allclose(query.scores, -np.abs(flat[query.indices] @ w[0] + b[0]),
                               rtol=1e-6)
    assert np.all(np.diff(-query.scores) >= -1e-12)  # nearest first


def test_svm_active_subsample_ranks_only_a_subset(pool_5v7) -> None:
    X, y = pool_5v7
    labeled = _labeled(y, 10, 3)
    state = _state(X, y, labeled)
    full = STRATEGIES.build("svm-active", {}).query(state, 5).indices
    whole = STRATEGIES.build("svm-active", {"subsample": len(X)}).query(state, 5).indices
    assert sorted(full.tolist()) == sorted(whole.tolist())
    # A small subsample: the picks are the nearest points of some 20 available candidates,
    # so at most 5 of them and never a queried point.
    picks = STRATEGIES.build("svm-active", {"subsample": 20}).query(state, 5).indices
    assert len(set(picks.tolist())) == 5 and not state.queried[picks].any()
    assert sorted(picks.tolist()) != sorted(full.tolist())


@pytest.mark.parametrize("name", ["least-confidence", "margin", "entropy"])
def test_binary_probability_measures_agree_with_svm_active(pool_5v7, name: str) -> None:
    """With two classes, each measure is monotone in |w·x + b|: same picks as SVMactive."""
    X, y = pool_5v7
    state = _state(X, y, _labeled(y, 12, 4))
    expected = STRATEGIES.build("svm-active", {}).query(state, 9).indices
    got = STRATEGIES.build(name, {}).query(state, 9).indices
    assert sorted(got.tolist()) == sorted(expected.tolist())


# -- the measures against hand-computed values -----------------------------------------------
PROBA = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0], [0.1, 0.3, 0.6]])


def test_least_confidence_by_hand() -> None:
    np.testing.assert_allclose(least_confidence_scores(PROBA), [0.3, 0.6, 0.0, 0.4])


def test_margin_by_hand() -> None:
    # -(top1 - top2): -(0.7-0.2), -(0.4-0.4), -(1-0), -(0.6-0.3)
    np.testing.assert_allclose(margin_scores(PROBA), [-0.5, 0.0, -1.0, -0.3])


def test_entropy_by_hand() -> None:
    # -Σ p ln p, with 0 ln 0 = 0:
    # row 0: 0.7·0.356675 + 0.2·1.609438 + 0.1·2.302585 = 0.801819
    # row 1: 2·0.4·0.916291 + 0.2·1.609438 = 1.054920
    # row 3: 0.1·2.302585 + 0.3·1.203973 + 0.6·0.510826 = 0.897946
    np.testing.assert_allclose(entropy_scores(PROBA), [0.801819, 1.054920, 0.0, 0.897946],
                               atol=1e-6)


def test_hyperplane_distance_by_hand() -> None:
    np.testing.assert_allclose(hyperplane_distance_scores(np.array([-2.0, 0.5, 0.0, 3.0])),
                               [-2.0, -0.5, 0.0, -3.0])
    with pytest.raises(ValueError, match="binary"):
        hyperplane_distance_scores(np.zeros((3, 2)))


class _FixedProba:
    """A stand-in learner with given probabilities (the measures read nothing else)."""

    def __init__(self, proba: np.ndarray) -> None:
        self.proba = proba

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.proba[np.asarray(X[:, 0, 0, 0], dtype=np.int64)]


@pytest.mark.parametrize(("name", "best"), [("least-confidence", [1, 3]), ("margin", [1, 3]),
                                            ("entropy", [1, 3])])
def test_multiclass_measures_rank_by_hand_values(name: str, best: list[int]) -> None:
    X = np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1)  # pixel = row of PROBA
    state = QueryState(X_pool=X, queried=np.zeros(4, bool), labeled_indices=np.empty(0, np.int64),
                       learner=_FixedProba(PROBA), n_classes=3, rng=np.random.default_rng(0))
    picks = STRATEGIES.build(name, {}).query(state, 2).indices
    assert sorted(picks.tolist()) == best


def test_auto_measure_is_distance_for_two_classes_margin_for_more(pool_5v7) -> None:
    X, y = pool_5v7
    state = _state(X, y, _labeled(y, 10, 5))
    auto = STRATEGIES.build("uncertainty", {}).query(state, 6).indices
    svm = STRATEGIES.build("svm-active", {}).query(state, 6).indices
    assert sorted(auto.tolist()) == sorted(svm.tolist())
    # Row 0 has the smaller margin (0 vs 0.1); row 1 the larger entropy and lower confidence.
    proba = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3]])
    X2 = np.arange(2, dtype=np.float32).reshape(2, 1, 1, 1)

    def pick(name: str) -> list[int]:
        state2 = QueryState(X_pool=X2, queried=np.zeros(2, bool),
                            labeled_indices=np.empty(0, np.int64), learner=_FixedProba(proba),
                            n_classes=3, rng=np.random.default_rng(0))
        return STRATEGIES.build(name, {}).query(state2, 1).indices.tolist()

    assert pick("uncertainty") == pick("margin") == [0]
    assert pick("entropy") == pick("least-confidence") == [1]


# -- top_k ------------------------------------------------------------------------------------
def test_top_k_orders_by_score_and_breaks_ties_at_random() -> None:
    candidates = np.array([10, 11, 12, 13, 14])
    scores = np.array([1.0, 3.0, 3.0, 2.0, 0.0])
    rng = np.random.default_rng(0)
    assert sorted(top_k(scores, candidates, 2, rng).tolist()) == [11, 12]
    assert top_k(scores, candidates, 3, rng).tolist()[2] == 13
    assert top_k(scores, candidates, 9, rng).tolist()[2:] == [13, 10, 14]  # k > candidates
    firsts = {int(top_k(scores, candidates, 1, np.random.default_rng(s))[0]) for s in range(40)}
    assert firsts == {11, 12}  # either tied top score, never another


def test_top_k_ties_are_uniform_and_seeded() -> None:
    candidates = np.arange(100, 110)
    scores = np.zeros(10)
    counts = np.zeros(10)
    for s in range(2000):
        counts[top_k(scores, candidates, 1, np.random.default_rng(s))[0] - 100] += 1
    # Uniform: each of 10 tied candidates about 200 times (a stable sort would give 2000, 0, …).
    assert counts.min() > 140 and counts.max() < 260
    a = top_k(scores, candidates, 4, np.random.default_rng(7))
    b = top_k(scores, candidates, 4, np.random.default_rng(7))
    assert a.tolist() == b.tolist()


def test_constant_learner_does_not_always_pick_the_lowest_indices(pool_5v7) -> None:
    """A learner fitted on one class ties every score; the picks must still be spread."""
    X, y = pool_5v7
    labeled = np.flatnonzero(y == 0)[:3]
    state = _state(X, y, labeled)
    assert state.learner.decision_function(X[:2]).tolist() == [0.0, 0.0]
    picks = STRATEGIES.build("svm-active", {}).query(state, 10).indices
    assert picks.max() > 30


# -- random sampling and the pool's bookkeeping ----------------------------------------------
def test_random_sampling_picks_distinct_unqueried_points(pool_5v7) -> None:
    X, y = pool_5v7
    labeled = np.arange(0, len(X), 2)  # every other point is queried already
    state = _state(X, y, labeled)
    strategy = STRATEGIES.build("random", {})
    picks = strategy.query(state, 25).indices
    assert len(set(picks.tolist())) == 25 and not state.queried[picks].any()
    again = strategy.query(_state(X, y, labeled), 25).indices
    assert picks.tolist() == again.tolist()  # seeded by the state's rng
    other = strategy.query(_state(X, y, labeled, seed=1), 25).indices
    assert picks.tolist() != other.tolist()


@pytest.mark.parametrize("name", ["random", "svm-active", "margin", "entropy"])
def test_last_points_and_empty_pool(pool_5v7, name: str) -> None:
    X, y = pool_5v7
    labeled = np.arange(len(X) - 3)
    learner = LogisticRegression(n_classes=2).fit(X[labeled], y[labeled])
    state = _state(X, y, labeled, learner=learner)
    strategy = STRATEGIES.build(name, {})
    picks = strategy.query(state, 10).indices  # fewer left than asked: all of them
    assert sorted(picks.tolist()) == list(range(len(X) - 3, len(X)))
    with pytest.raises(EmptyPoolError, match="pool is empty"):
        strategy.query(_state(X, y, np.arange(len(X)), learner=learner), 1)
    with pytest.raises(ValueError, match="k >= 1"):
        strategy.query(state, 0)


def test_strategy_registry_refuses_bad_names_and_params() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown strategy 'nope'; known: .*random"):
        STRATEGIES.build("nope", {})
    with pytest.raises(ConfigError, match=r"'svm-active': gamma: unknown setting; the "
                                          r"settings are: subsample"):
        STRATEGIES.build("svm-active", {"gamma": 1})
    with pytest.raises(ConfigError, match=r"measure: Input should be 'auto', 'distance'"):
        STRATEGIES.build("uncertainty", {"measure": "bogus"})
    with pytest.raises(ConfigError, match="subsample: Input should be greater than or equal "
                                          "to 1"):
        STRATEGIES.build("margin", {"subsample": 0})
