"""Composition instead of copies: the engine hands strategies the true labels, the CVAE
conditions on them (not on the learner's predictions), one ``subsample`` wrapper restricts any
pool strategy, and the VAE strategies are the plain ones with another feature map."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from activegen.data import load_dataset
from activegen.engine import ActiveLearner
from activegen.errors import DataError
from activegen.models import LinearSVM
from activegen.strategies import (
    STRATEGIES,
    CoreSet,
    PrepareContext,
    Query,
    QueryState,
    Strategy,
    Subsample,
    TaskFeatures,
    VAEAugmented,
    VAEAugmentedSettings,
    feature_maps,
)

VAE = {"vae": {"latent_dim": 4, "width": 4, "epochs": 1}}


@pytest.fixture(scope="module")
def pool():
    return load_dataset("digits").select_classes([3, 8])


class _Recorder(Strategy):
    """A test double that records the states it is given and asks the first available."""

    name: ClassVar[str] = "recorder"

    def __init__(self) -> None:
        self.states: list[QueryState] = []

    def query(self, state: QueryState, k: int) -> Query:
        self.states.append(state)
        return Query.from_pool(state.available_indices[:k])


def test_the_engine_hands_the_labels_of_the_labeled_points_abstentions_excluded(pool) -> None:
    X, y = pool.to_float(), pool.y
    recorder = _Recorder()
    engine = ActiveLearner(X, 2, LinearSVM(2), recorder, seed=0,
                           initial=(np.array([0, 1, 2, 3]), y[:4]))
    for answer in ("truth", "abstain first", "truth"):
        q = engine.ask(3)
        labels = y[q.indices].copy()
        if answer == "abstain first":
            labels[0] = -1
        engine.tell(q, labels)
    assert len(recorder.states) == 3
    for state in recorder.states:
        assert state.labels is not None
        np.testing.assert_array_equal(state.labels, y[state.labeled_indices])
    last = recorder.states[-1]
    assert len(last.labeled_indices) == 4 + 3 + 2  # the abstained point is not labeled
    assert last.queried.sum() == 4 + 3 + 3


class _ConstantLearner:
    """Predicts class 0 with certainty, whatever the image (so predictions are not labels)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(X), 1))

    def embed(self, X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), -1)[:, :3]


def _cvae_state(pool, labels: np.ndarray | None) -> QueryState:
    X = pool.to_float()
    labeled = np.arange(0, 60, 3)
    queried = np.zeros(len(X), bool)
    queried[labeled] = True
    return QueryState(X, queried, labeled, _ConstantLearner(), 2,  # type: ignore[arg-type]
                      np.random.default_rng(0), round=2, labels=labels)


def test_the_cvae_conditions_labeled_points_on_their_true_labels(pool, monkeypatch,
                                                                 tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    real = feature_maps.train_vae

    def spy(X, settings, seed=0, device="cpu", conditions=None):
        seen["conditions"] = conditions
        return real(X, settings, seed, device, conditions)

    monkeypatch.setattr(feature_maps, "train_vae", spy)
    fmap = VAEAugmented(VAEAugmentedSettings(vae_kind="cvae", **VAE))
    fmap.prepare(PrepareContext(pool=pool, cache_dir=tmp_path))
    state = _cvae_state(pool, pool.y[np.arange(0, 60, 3)])
    assert (state.labels == 1).any()  # the learner says 0 for all: labels must win
    feats = fmap(state, state.X_pool[:5])
    assert feats.shape == (5, 3 + 4)
    conditions = seen["conditions"]
    np.testing.assert_array_equal(conditions[state.labeled_indices],
                                  np.eye(2, dtype=np.float32)[state.labels])
    unlabeled = np.setdiff1d(np.arange(len(pool)), state.labeled_indices)
    np.testing.assert_array_equal(conditions[unlabeled], np.tile([1.0, 0.0], (len(unlabeled), 1)))


@pytest.mark.parametrize("labels", [None, np.zeros(3, dtype=np.int64)])
def test_the_cvae_refuses_a_state_without_aligned_labels(pool, labels, tmp_path: Path) -> None:
    fmap = VAEAugmented(VAEAugmentedSettings(vae_kind="cvae", **VAE))
    fmap.prepare(PrepareContext(pool=pool, cache_dir=tmp_path))
    with pytest.raises(DataError, match="labels aligned with its 20 labeled_indices"):
        fmap(_cvae_state(pool, labels), pool.to_float()[:2])


def _state(pool, learner, seed: int) -> QueryState:
    X = pool.to_float()
    labeled = np.arange(0, 40)
    queried = np.zeros(len(X), bool)
    queried[labeled] = True
    queried[50:70] = True  # abstained: queried, not labeled
    return QueryState(X, queried, labeled, learner, 2, np.random.default_rng(seed), round=1,
                      labels=pool.y[labeled])


def test_the_wrapper_equals_the_strategies_own_subsample_key(pool) -> None:
    X = pool.to_float()
    learner = LinearSVM(2).fit(X[:40], pool.y[:40])
    for name in ("margin", "coreset", "medal", "badge"):
        for seed in range(3):
            own = STRATEGIES.build(name, {"subsample": 25}).query(_state(pool, learner, seed), 4)
            wrapped = Subsample(STRATEGIES.build(name, {}), 25).query(
                _state(pool, learner, seed), 4)
            np.testing.assert_array_equal(own.indices, wrapped.indices)
            expected = np.sort(np.random.default_rng(seed).choice(
                _state(pool, learner, seed).available_indices, 25, replace=False))
            assert np.isin(own.indices, expected).all()


def test_the_wrapper_passes_everything_else_through_and_refuses_what_it_cannot_wrap(
        pool) -> None:
    inner = STRATEGIES.build("medal", {})
    wrapped = Subsample(inner, 10)
    assert wrapped.requires == inner.requires and wrapped.name == "medal"
    learner = LinearSVM(2).fit(pool.to_float()[:40], pool.y[:40])
    big = Subsample(STRATEGIES.build("margin", {}), 10_000)  # more than the pool: no draw
    plain = STRATEGIES.build("margin", {})
    np.testing.assert_array_equal(big.query(_state(pool, learner, 1), 5).indices,
                                  plain.query(_state(pool, learner, 1), 5).indices)
    with pytest.raises(ValueError, match="synthesizes"):
        Subsample(STRATEGIES.build("simple-gan", {}), 10)
    with pytest.raises(ValueError, match="subset size n >= 1"):
        Subsample(inner, 0)


def test_vae_coreset_is_coreset_with_the_vae_feature_map(pool, tmp_path: Path) -> None:
    """The registered preset and a plain core-set given the same map pick alike."""
    X = pool.to_float()
    learner = LinearSVM(2).fit(X[:40], pool.y[:40])
    preset = STRATEGIES.build("vae-coreset", {"alpha": 3.0, **VAE})
    composed = CoreSet().with_features(VAEAugmented(VAEAugmentedSettings(alpha=3.0, **VAE)))
    context = PrepareContext(pool=pool, cache_dir=tmp_path)
    preset.prepare(context)
    composed.feature_map.prepare(context)
    assert type(preset).__mro__[1] is CoreSet and isinstance(CoreSet().feature_map,
                                                            TaskFeatures)
    for seed in range(3):
        np.testing.assert_array_equal(preset.query(_state(pool, learner, seed), 6).indices,
                                      composed.query(_state(pool, learner, seed), 6).indices)
    assert not hasattr(feature_maps, "VAEFeatures")
