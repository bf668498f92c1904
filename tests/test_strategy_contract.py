"""The contract every registered strategy keeps (modelled on scikit-activeml's query-strategy
template): at most ``k`` distinct unqueried pool indices, or ``k`` synthesized images of the
pool's shape and scale; the same seed gives the same query; an empty pool raises
``EmptyPoolError``; a constant learner is no crash; ``fit`` is never called; each strategy
states the capabilities it reads and is compatible with the learner it is given; ``subsample``
(the wrapper, and a strategy's own setting) is honoured; and every setting of every component
is read by the code (none is accepted by a config and then dropped)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from pydantic import BaseModel

from activegen._settings import Settings, _settings_type
from activegen.errors import ConfigError, EmptyPoolError
from activegen.models import LEARNERS, LinearSVM, SmallCNN
from activegen.models.base import WithProba, WithTorchDecision
from activegen.models.capabilities import (
    DifferentiableFeatures,
    FitContext,
    LossPredicting,
    MCDropout,
    check_compatible,
)
from activegen.oracles import ORACLES
from activegen.strategies import STRATEGIES, PrepareContext, QueryState, Strategy, Subsample
from tiny import BUILT_IN_STRATEGIES, strategy_settings

K = 5
SRC = Path(__file__).resolve().parents[1] / "src" / "activegen"


def _strategy(name: str, pool, cache: Path, **changes: Any) -> Strategy:
    strategy = STRATEGIES.build(name, strategy_settings(name, **changes))
    strategy.prepare(PrepareContext(pool=pool, cache_dir=cache, device="cpu"))
    return strategy


def _learner(strategy: Strategy, X: np.ndarray, y: np.ndarray):
    if LossPredicting in strategy.requires:
        learner = SmallCNN(2, seed=0, device="cpu", loss_head={}, epochs=1, width=4)
    elif MCDropout in strategy.requires:
        learner = SmallCNN(2, seed=0, device="cpu", dropout=0.5, epochs=1, width=4)
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


def test_every_built_in_strategy_is_covered() -> None:
    assert len(BUILT_IN_STRATEGIES) >= 17
    assert {"random", "gaal", "vae-learning-loss"} <= set(BUILT_IN_STRATEGIES)


@pytest.mark.parametrize("name", BUILT_IN_STRATEGIES)
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


POOL_STRATEGIES = [n for n in BUILT_IN_STRATEGIES
                   if not STRATEGIES.get(n).synthesizes and n != "gaal-retrieve"]


@pytest.mark.parametrize("name", POOL_STRATEGIES)
def test_subsample_is_honoured(name: str, pool, cache: Path) -> None:
    """Wrapped in :class:`Subsample` (and through its own ``subsample`` setting where it has
    one), every pick comes from the round's seeded subset of the available points."""
    X = pool.to_float()
    labeled = np.arange(0, 40, dtype=np.int64)
    strategy = _strategy(name, pool, cache)
    learner = _learner(strategy, X[labeled], pool.y[labeled])
    n = 12
    for seed in (0, 1):
        available = _state(pool, learner, labeled, seed).available_indices
        subset = np.sort(np.random.default_rng(seed).choice(available, n, replace=False))
        wrapped = _query(Subsample(strategy, n), _state(pool, learner, labeled, seed))
        assert 1 <= len(wrapped) <= K and np.isin(wrapped.indices, subset).all()
        if "subsample" in type(strategy).Settings.model_fields:
            own = _strategy(name, pool, cache, subsample=n)
            picks = _query(own, _state(pool, learner, labeled, seed)).indices
            assert np.isin(picks, subset).all()
            np.testing.assert_array_equal(picks, wrapped.indices)


def _models() -> dict[str, type[BaseModel]]:
    """Every settings model reachable from a registered component, nested ones included."""
    found: dict[str, type[BaseModel]] = {}

    def visit(model: type[BaseModel]) -> None:
        if model.__name__ in found:
            return
        found[model.__name__] = model
        for info in model.model_fields.values():
            nested = _settings_type(info.annotation)
            if nested is not None:
                visit(nested)

    for registry in (STRATEGIES, LEARNERS, ORACLES):
        for _, cls in registry.items():
            if cls.__module__.startswith("activegen."):
                visit(cls.Settings)
    return found


def _attributes_read() -> set[str]:
    """Every ``x.name`` attribute read in the package's source (outside the model classes)."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
    return names


def test_every_setting_is_read_by_the_code() -> None:
    """A setting no code reads would be accepted by a config and then do nothing."""
    models = _models()
    assert len(models) > 20
    read = _attributes_read()
    unread = sorted(f"{name}.{field}" for name, model in models.items()
                    for field in model.model_fields
                    if field not in read and field not in ("name",))
    assert unread == []


def test_a_setting_is_refused_by_name_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"generator\.epoch: unknown setting; the settings "
                                          r"are: .*epochs"):
        STRATEGIES.build("gaal", {"generator": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"synthesis\.steps: Input should be a valid integer"):
        STRATEGIES.build("gaal", {"synthesis": {"steps": "many"}})
    with pytest.raises(ConfigError, match=r"'random': k: unknown setting \(this takes no "
                                          r"settings\)"):
        STRATEGIES.build("random", {"k": 3})
    with pytest.raises(ConfigError, match="unknown preset 'fast'; known: paper, boundary, "
                                          "edit, labelable"):
        STRATEGIES.build("gaal", {"synthesis": "fast"})


def test_presets_and_shared_tables_are_defaults_a_strategy_overrides() -> None:
    from activegen.generative.training import GeneratorSettings
    from activegen.strategies.synthesis import SynthesisSettings

    built = STRATEGIES.build("gaal", {"synthesis": {"preset": "labelable", "steps": 9}})
    synthesis = built.settings.synthesis
    assert (synthesis.optimizer, synthesis.band, synthesis.realism, synthesis.steps) == \
        ("lbfgs", 1.0, 1.0, 9)
    shared = {"generator": GeneratorSettings.model_validate("stable"),
              "synthesis": SynthesisSettings(optimizer="lbfgs", diversity=1.0)}
    settings = STRATEGIES.validate("gaal", {"generator": {"epochs": 7},
                                            "synthesis": {"diversity_kind": "manifold"}},
                                   shared)
    assert settings.generator.epochs == 7 and settings.generator.loss == "hinge"
    assert settings.synthesis.diversity == 1.0 and settings.synthesis.optimizer == "lbfgs"
    assert settings.synthesis.diversity_kind == "manifold"
    plain = STRATEGIES.validate("gaal", {}, shared)
    assert plain.generator == shared["generator"] and plain.synthesis == shared["synthesis"]


class _DecisionOnly(WithProba, WithTorchDecision):
    """A user's differentiable learner without differentiable features."""

    name: ClassVar[str] = "decision-only"

    def _fit(self, X: np.ndarray, y: np.ndarray, context: FitContext) -> None:
        self._w = torch.zeros(int(np.prod(X.shape[1:])))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(len(X), dtype=np.int64)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.full((len(X), self.n_classes), 1.0 / self.n_classes)

    def _torch_decision(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1) @ self._w


def test_manifold_diversity_needs_differentiable_features_and_says_so() -> None:
    learner = _DecisionOnly(2)
    assert not isinstance(learner, DifferentiableFeatures)
    check_compatible(STRATEGIES.build("gaal", {}), learner)  # the paper's GAAL: fine
    manifold = STRATEGIES.build("gaal", {"synthesis": {"diversity": 1.0,
                                                       "diversity_kind": "manifold"}})
    with pytest.raises(ConfigError, match=r"strategy 'gaal' needs a learner that is "
                                          r"DifferentiableFeatures \(torch_features.*"
                                          r"learner 'decision-only' is not"):
        check_compatible(manifold, learner)
    assert isinstance(LinearSVM(2), DifferentiableFeatures)  # every built-in torch learner
    assert isinstance(SmallCNN(2), DifferentiableFeatures)


def test_settings_models_are_frozen_and_refuse_unknown_keys() -> None:
    for name, model in _models().items():
        assert issubclass(model, Settings), name
        assert model.model_config.get("frozen") and model.model_config.get("extra") in (
            "forbid", "allow"), name
