"""The contract every registered strategy keeps (modelled on scikit-activeml's query-strategy
template): at most ``k`` distinct unqueried pool indices, or ``k`` synthesized images of the
pool's shape and scale; the same seed gives the same query; an empty pool raises
``EmptyPoolError``; a constant learner is no crash; ``fit`` is never called; each strategy
states the capabilities it reads and is compatible with the learner it is given; ``subsample``
(the wrapper, and a strategy's own key) is honoured; and every constructor setting is taken
into account."""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from activegen._registry import setting_hints, settings
from activegen.data import load_dataset
from activegen.errors import ConfigError, EmptyPoolError
from activegen.models import LinearSVM, SmallCNN
from activegen.models.capabilities import (
    FitContext,
    LossPredicting,
    MCDropout,
    check_compatible,
)
from activegen.strategies import STRATEGIES, PrepareContext, QueryState, Strategy, Subsample

GAN = {"gan_epochs": 2, "latent_dim": 4}
VAE = {"vae_latent_dim": 4, "vae_width": 4, "vae_epochs": 1}
#: Small settings per strategy (the defaults train big generators and VAEs).
SETTINGS: dict[str, dict[str, Any]] = {
    "gaal": {**GAN, "steps": 3}, "gaal-retrieve": {**GAN, "steps": 3}, "simple-gan": GAN,
    "mixed": {"primary_params": {**GAN, "steps": 3}, "secondary": "uncertainty"},
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


POOL_STRATEGIES = [n for n in BUILT_IN if not STRATEGIES.get(n).synthesizes]


@pytest.mark.parametrize("name", POOL_STRATEGIES)
def test_subsample_is_honoured(name: str, pool, cache: Path) -> None:
    """Wrapped in :class:`Subsample` (and through its own ``subsample`` key where it has one),
    every pick comes from the round's seeded subset of the available points."""
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
        if "subsample" in settings(type(strategy)):
            own = STRATEGIES.build(name, {**SETTINGS.get(name, {}), "subsample": n})
            own.prepare(PrepareContext(pool=pool, cache_dir=cache, device="cpu"))
            picks = _query(own, _state(pool, learner, labeled, seed)).indices
            assert np.isin(picks, subset).all()
            np.testing.assert_array_equal(picks, wrapped.indices)


#: Valid non-default values for settings whose type alone does not give one.
OTHER_VALUE: dict[str, Any] = {
    "device": "cpu", "gan": "wgan-gp", "constraint": "tanh", "prior": "uniform",
    "realism_kind": "prior", "gan_augment": "translation", "primary": "gaal-retrieve",
    "secondary": "margin", "primary_params": {**GAN, "steps": 4},
    "secondary_params": {"subsample": 3}, "gan_holdout": 0.2, "gan_ema": 0.5,
    "features": "pixels", "optimizer": "lbfgs", "diversity_kind": "manifold",
    "gan_ada_target": 0.6, "gan_loss": "hinge", "gan_bn_stats": "standing",
}

#: settings that are only valid together with another one (compared with that one set too)
COMPANION: dict[str, dict[str, Any]] = {"gan_ada_target": {"gan_augment": "translation"}}


_ONE_VALUE = object()  # a setting with a single valid value: nothing to vary


def _other_value(param: inspect.Parameter, hint: Any, current: Any) -> Any:
    """A valid value of ``param`` other than ``current``, from its type and default."""
    if param.name in OTHER_VALUE:
        return OTHER_VALUE[param.name]
    if typing.get_origin(hint) is typing.Literal:
        return next((v for v in typing.get_args(hint) if v != current), _ONE_VALUE)
    args = set(typing.get_args(hint)) - {type(None)} or {hint}
    if isinstance(current, bool) or bool in args:
        return not current
    if int in args:
        return 7 if current is None else current + 1
    if float in args:
        return 0.5 if current is None else (current / 2 if current else 0.25)
    raise AssertionError(f"no other value known for {param.name!r} ({hint}); add it to "
                         f"OTHER_VALUE")


def _describe(obj: Any, depth: int = 0) -> Any:
    """Everything an object holds, recursively, as comparable plain values."""
    if depth > 6 or obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, np.ndarray):
        return (obj.shape, obj.tobytes())
    if isinstance(obj, dict):
        return tuple(sorted((str(k), _describe(v, depth + 1)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple, set, frozenset)):
        return tuple(_describe(v, depth + 1) for v in obj)
    if isinstance(obj, (type, types.FunctionType, types.MethodType)):
        return obj.__qualname__
    if hasattr(obj, "__dict__") or dataclasses.is_dataclass(obj):  # feature maps, settings
        return (type(obj).__name__, _describe(vars(obj), depth + 1))
    return re.sub(r" at 0x[0-9a-f]+", "", repr(obj))  # no addresses: they differ by chance


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_constructor_setting_is_taken_into_account(name: str) -> None:
    """Each constructor setting, given another valid value, changes what the strategy holds:
    no setting is accepted by the config and then dropped."""
    cls = STRATEGIES.get(name)
    hints = setting_hints(cls)
    params = list(settings(cls).values())  # what a config may set, as the registry sees it
    base_settings = SETTINGS.get(name, {})
    base = _describe(STRATEGIES.build(name, base_settings))
    for param in params:
        current = base_settings.get(param.name, param.default)
        value = _other_value(param, hints.get(param.name), current)
        if value is _ONE_VALUE:
            continue
        assert value != current
        companion = COMPANION.get(param.name, {})
        reference = _describe(STRATEGIES.build(name, {**base_settings, **companion})) \
            if companion else base
        changed = STRATEGIES.build(name, {**base_settings, **companion, param.name: value})
        assert _describe(changed) != reference, f"{name}: setting {param.name!r} = " \
                                                f"{value!r} changes nothing the strategy holds"


def test_settings_are_held_once_with_no_hand_written_params_copy() -> None:
    """The constructor settings are the record (checked above); the hand-written
    ``params()`` copies that nothing called are gone from every registered component."""
    from activegen.models import LEARNERS
    from activegen.oracles import ORACLES
    from activegen.stopping import CRITERIA

    classes = [cls for registry in (STRATEGIES, LEARNERS, ORACLES)
               for _, cls in registry.items()] + list(CRITERIA.values())
    assert len(classes) > 30
    assert [cls.__name__ for cls in classes if hasattr(cls, "params")] == []


def test_generator_settings_are_written_once_and_still_checked_by_name() -> None:
    """GAAL's constructor names only its synthesis settings; the generator's come from
    ``_GeneratorStrategy`` through ``**generator``, and the registry still accepts, type-checks
    and refuses them by name."""
    gaal, simple = settings(STRATEGIES.get("gaal")), settings(STRATEGIES.get("simple-gan"))
    assert set(simple) < set(gaal) and {"gan_epochs", "latent_dim", "steps"} <= set(gaal)
    assert "gan_epochs" not in inspect.signature(STRATEGIES.get("gaal").__init__).parameters
    built = STRATEGIES.build("gaal-retrieve", {"gan_epochs": 3, "latent_dim": 5, "steps": 4})
    assert built.gan_settings.epochs == 3 and built.gan_settings.latent_dim == 5
    with pytest.raises(ConfigError, match=r"has no parameter 'gan_epoch'; .*gan_epochs"):
        STRATEGIES.build("gaal", {"gan_epoch": 3})
    with pytest.raises(ConfigError, match="'gan_epochs' = 'many' is not a valid int"):
        STRATEGIES.check_params("gaal", {"gan_epochs": "many"})
    with pytest.raises(ConfigError, match=r"'random' has no parameter 'k'; .*\(none\)"):
        STRATEGIES.build("random", {"k": 3})
