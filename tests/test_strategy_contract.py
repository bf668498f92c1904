"""The contract every registered strategy keeps (modelled on scikit-activeml's query-strategy
template): at most ``k`` distinct unqueried pool indices, or ``k`` synthesized images of the
pool's shape and scale; the same seed gives the same query; an empty pool raises
``EmptyPoolError``; a constant learner is no crash; ``fit`` is never called; and each strategy
states the capabilities it reads and is compatible with the learner it is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from activegen.data import load_dataset
from activegen.errors import EmptyPoolError
from activegen.models import LinearSVM, SmallCNN
from activegen.models.capabilities import (
    FitContext,
    LossPredicting,
    MCDropout,
    check_compatible,
)
from activegen.strategies import STRATEGIES, PrepareContext, QueryState, Strategy

GAN = {"gan_epochs": 2, "latent_dim": 4}
VAE = {"vae_latent_dim": 4, "vae_width": 4, "vae_epochs": 1}
#: Small settings per strategy (the defaults train big generators and VAEs).
SETTINGS: dict[str, dict[str, Any]] = {
    "gaal": {**GAN, "steps": 3}, "gaal-retrieve": {**GAN, "steps": 3}, "simple-gan": GAN,
    "mixed": {"primary_params": {**GAN, "steps": 3}},
    "vae-coreset": VAE, "vae-medal": VAE, "vae-learning-loss": VAE,
}
K = 5


@pytest.fixture(scope="module")
def pool():
    return load_dataset("digits").select_classes([3, 8])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _strategy(name: str, pool, cache: Path) -> Strategy:
    strategy = STRATEGIES.build(name, SETTINGS.get(name, {}))
    strategy.prepare(PrepareContext(pool=pool, cache_dir=cache, device="cpu"))
    return strategy


def _learner(strategy: Strategy, X: np.ndarray, y: np.ndarray):
    if LossPredicting in strategy.requires:
        learner = SmallCNN(2, seed=0, device="cpu", loss_prediction=True, epochs=1)
    elif MCDropout in strategy.requires:
        learner = SmallCNN(2, seed=0, device="cpu", dropout=0.5, epochs=1)
    else:
        learner = LinearSVM(2)
    check_compatible(strategy, learner)
    learner.fit(X, y, FitContext(extra=strategy.fit_features(X)))

    def no_fit(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"strategy {strategy.name!r} called fit")

    learner.fit = no_fit  # type: ignore[method-assign]
    return learner


def _state(pool, learner, labeled: np.ndarray, seed: int = 0,
           queried: np.ndarray | None = None) -> QueryState:
    if queried is None:
        queried = np.zeros(len(pool), dtype=bool)
        queried[labeled] = True
    return QueryState(pool.to_float(), queried, labeled, learner, 2,
                      np.random.default_rng(seed), round=1)


def _query(strategy, state, k=K):
    torch.manual_seed(0)
    return strategy.query(state, k)


#: The package's own strategies (other test modules register test doubles in STRATEGIES).
BUILT_IN = sorted(n for n in STRATEGIES.names()
                  if STRATEGIES.get(n).__module__.startswith("activegen.strategies"))


def test_every_built_in_strategy_is_covered() -> None:
    assert len(BUILT_IN) >= 17 and {"random", "gaal", "vae-learning-loss"} <= set(BUILT_IN)


@pytest.mark.parametrize("name", BUILT_IN)
def test_strategy_contract(name: str, pool, cache: Path) -> None:
    strategy = _strategy(name, pool, cache)
    X = pool.to_float()
    labeled = np.arange(0, 40, dtype=np.int64)
    learner = _learner(strategy, X[labeled], pool.y[labeled])
    query = _query(strategy, _state(pool, learner, labeled))
    assert 1 <= len(query) <= K
    if query.is_synthesized:
        assert query.samples is not None and query.samples.shape[1:] == X.shape[1:]
        assert query.samples.min() >= 0.0 and query.samples.max() <= 1.0
    else:
        idx = query.indices
        assert len(np.unique(idx)) == len(idx) and not np.isin(idx, labeled).any()
        assert ((idx >= 0) & (idx < len(pool))).all()
    if query.scores is not None:
        assert len(query.scores) == len(query)
    again = _query(strategy, _state(pool, learner, labeled))  # same seed, same query
    np.testing.assert_array_equal(query.indices, again.indices)
    if query.is_synthesized:
        np.testing.assert_allclose(query.samples, again.samples, rtol=1e-5, atol=1e-6)

    constant = _learner(strategy, X[:6], np.zeros(6, dtype=np.int64))  # one class
    assert 1 <= len(_query(strategy, _state(pool, constant, np.arange(6)))) <= K

    if not strategy.synthesizes:
        everything = np.ones(len(pool), dtype=bool)
        with pytest.raises(EmptyPoolError):
            _query(strategy, _state(pool, learner, labeled, queried=everything))
