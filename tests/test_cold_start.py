"""TypiClust and ProbCover against hand computation and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from activegen.strategies import STRATEGIES, QueryState
from activegen.strategies.cold_start import (
    ball_purity,
    choose_delta,
    coverage,
    probcover_select,
    typicality,
    typiclust_select,
)


def test_typicality_equals_its_formula_by_hand() -> None:
    # points on a line at 0, 1, 3, 7; two nearest neighbours each
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    expected = [1 / ((1 + 3) / 2), 1 / ((1 + 2) / 2), 1 / ((2 + 3) / 2), 1 / ((4 + 6) / 2)]
    np.testing.assert_allclose(typicality(X, n_neighbors=2), expected)
    # n_neighbors larger than the cluster: min(k, size - 1) = 3 neighbours
    np.testing.assert_allclose(typicality(X, n_neighbors=20),
                               [3 / 11, 3 / 9, 3 / 9, 3 / 17])


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    sizes = [40, 30, 20, 10]
    X = np.concatenate([c + rng.normal(size=(s, 2)) for c, s in zip(centres, sizes,
                                                                     strict=True)])
    return X, np.repeat(np.arange(4), sizes)


def test_typiclust_takes_the_most_typical_point_of_uncovered_clusters() -> None:
    X, blob = _blobs()
    picks = typiclust_select(X, np.empty(0, dtype=np.int64), 4, np.random.default_rng(0),
                             clusters=blob)
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3]
    assert blob[picks[0]] == 0  # the largest cluster first
    for p in picks:
        members = np.flatnonzero(blob == blob[p])
        assert p == members[np.argmax(typicality(X[members]))]
    # a labeled point in the largest cluster: it is covered, so the next pick goes elsewhere
    picks = typiclust_select(X, np.array([0]), 1, np.random.default_rng(0), clusters=blob)
    assert blob[picks[0]] == 1
    # k-means on the blobs themselves finds them
    picks = typiclust_select(X, np.empty(0, dtype=np.int64), 4, np.random.default_rng(0))
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3]


def _coverage_brute(X: np.ndarray, centres: list[int], delta: float) -> int:
    return sum(any(np.linalg.norm(X[i] - X[c]) <= delta for c in centres) for i in range(len(X)))


@pytest.mark.parametrize("delta", [0.5, 1.5, 4.0])
def test_probcover_coverage_equals_brute_force_and_greedy_steps_are_maximal(delta) -> None:
    X = np.random.default_rng(1).normal(size=(40, 2)) * 3
    labeled = np.array([3])
    picks = probcover_select(X, labeled, 5, delta, np.random.default_rng(0))
    chosen = [3]
    for p in picks:
        before = _coverage_brute(X, chosen, delta)
        gains = {j: _coverage_brute(X, [*chosen, j], delta) - before
                 for j in range(40) if j not in chosen}
        assert gains[int(p)] == max(gains.values())
        chosen.append(int(p))
        assert coverage(X, np.array(chosen), delta) == _coverage_brute(X, chosen, delta)


def test_delta_is_the_largest_candidate_radius_that_stays_pure() -> None:
    X, blob = _blobs()
    delta = choose_delta(X, blob, purity=0.95)
    assert ball_purity(X, blob, delta) >= 0.95
    assert delta > 1.0  # the blobs are 10 apart: balls of a few units stay pure
    brute = np.mean([all(blob[j] == blob[i] for j in range(len(X))
                         if np.linalg.norm(X[i] - X[j]) <= delta) for i in range(len(X))])
    assert ball_purity(X, blob, delta) == pytest.approx(brute)


def test_a_cold_start_is_seeded_and_later_rounds_query_unqueried_points() -> None:
    from activegen.data import load_dataset

    data = load_dataset("digits")
    X = data.to_float()[:300]

    def first(name: str, seed: int) -> np.ndarray:
        state = QueryState(X, np.zeros(300, dtype=bool), np.empty(0, np.int64), None,  # type: ignore[arg-type]
                           10, np.random.default_rng(seed))
        return STRATEGIES.build(name, {"features": "pixels"}).query(state, 10).indices

    for name in ("typiclust", "probcover"):
        a = first(name, 3)
        assert len(np.unique(a)) == 10 and np.array_equal(a, first(name, 3))
        queried = np.zeros(300, dtype=bool)
        queried[a] = True
        state = QueryState(X, queried, a, None, 10, np.random.default_rng(0))  # type: ignore[arg-type]
        q = STRATEGIES.build(name, {"features": "pixels"}).query(state, 5)
        assert len(set(q.indices.tolist())) == 5 and not queried[q.indices].any()
    # TypiClust's 10 typical points of 10 clusters span more classes than chance usually does
    assert len(np.unique(data.y[:300][first("typiclust", 0)])) >= 6
