"""Every registered strategy × a representative learner of every capability set runs one
round through the labeling session and through the experiment loop, on the embedded digits
with tiny settings; a pair whose strategy needs a capability the learner lacks is refused,
naming it, before any work.

Both stand on the engine, so a pair that works in a run and fails in the session (a prepare
hook not called, a fit context not passed, the ``grow`` schedule not told the round) fails
here. The representatives are tiny modules, one per capability set of the built-in learners:
a linear model, scikit-learn, the self-taught SVM (pool-prepared), a tiny ``torch-module``,
small-cnn (width 4) with a loss head, small-cnn with dropout; ResNet-18 (with a loss head)
runs one case, marked slow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from activegen._settings import BuildContext
from activegen.engine import LoopSettings
from activegen.errors import ConfigError
from activegen.loop import ActiveLearningLoop
from activegen.models import LEARNERS
from activegen.models import capabilities as caps
from activegen.oracles import ORACLES
from activegen.oracles.base import PoolOracle
from activegen.server.config import parse_label_config
from activegen.server.core.session import session_learner_factory
from activegen.strategies import STRATEGIES, PrepareContext
from label_support import make_session

GAN = {"epochs": 2, "latent_dim": 4, "width": 4}
SYNTHESIS = {"steps": 3}
VAE = {"latent_dim": 4, "width": 4, "epochs": 1}
MC = {"n_samples": 3}
#: Tiny settings per strategy (the defaults train big generators and VAEs).
STRATEGY_SETTINGS: dict[str, dict[str, Any]] = {
    "gaal": {"generator": GAN, "synthesis": SYNTHESIS},
    "gaal-retrieve": {"generator": GAN, "synthesis": SYNTHESIS},
    "simple-gan": {"generator": GAN},
    "mixed": {"primary": {"name": "gaal", "generator": GAN, "synthesis": SYNTHESIS},
              "secondary": {"name": "random"}},
    "vae-coreset": {"vae": VAE}, "vae-medal": {"vae": VAE}, "vae-learning-loss": {"vae": VAE},
    "bald": MC, "batchbald": {**MC, "n_configs": 50}, "mc-entropy": MC, "mean-std": MC,
    "variation-ratios": MC,
}
TORCH = {"schedule": "grow", "epochs": 1, "epochs_increment": 1, "batch_size": 32}
SMALL_CNN = {**TORCH, "width": 4, "feature_dim": 8}
#: One learner per capability set of the built-in learners: (name, tiny settings).
REPRESENTATIVES: dict[str, tuple[str, dict[str, Any]]] = {
    "linear": ("logistic-regression", {}),
    "sklearn": ("sklearn", {"estimator": "sklearn.linear_model.LogisticRegression",
                            "params": {"max_iter": 200}}),
    "self-taught": ("self-taught-svm", {"n_components": 8, "basis_iterations": 2}),
    "torch-module": ("torch-module", {"module": "label_support.tiny_net",
                                      "allow_imports": ["label_support"], "epochs": 1}),
    "cnn-loss-head": ("small-cnn", {**SMALL_CNN, "loss_head": {}}),
    "cnn-dropout": ("small-cnn", {**SMALL_CNN, "dropout": 0.5}),
    "pool-prepared": ("label-spreading", {}),
}
CAPABILITIES = (caps.Probabilistic, caps.Margins, caps.Embedding, caps.Differentiable,
                caps.DifferentiableFeatures, caps.Linear, caps.LossPredicting,
                caps.PoolPrepared, caps.MCDropout)

BUILT_IN_STRATEGIES = sorted(n for n in STRATEGIES.names()
                             if STRATEGIES.get(n).__module__.startswith("activegen.strategies"))
BUILT_IN_LEARNERS = sorted(n for n in LEARNERS.names()
                           if LEARNERS.get(n).__module__.startswith("activegen.models"))


def capability_set(name: str, params: dict[str, Any]) -> frozenset[str]:
    learner = LEARNERS.build(name, params, BuildContext(n_classes=2))
    return frozenset(c.__name__ for c in CAPABILITIES if caps.has_capability(learner, c))


def _label_config(strategy: str, learner: tuple[str, dict[str, Any]],
                  cache: Path | None = None) -> dict[str, Any]:
    name, params = learner
    return {"name": f"{strategy}-{name}", "seed": 1, "device": "cpu",
            "data": {"dataset": "digits", "classes": [3, 8]},
            "learner": {"name": name, **params},
            "strategy": {"name": strategy, **STRATEGY_SETTINGS.get(strategy, {})},
            "loop": {"initial": 4, "batch": 4, "budget": 12},
            "labeling": {"background": False},
            **({} if cache is None else {"cache_dir": str(cache)})}


def _pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    allowed, refused = [], []
    for strategy in BUILT_IN_STRATEGIES:
        for label, learner in REPRESENTATIVES.items():
            try:
                parse_label_config(_label_config(strategy, learner))
            except ConfigError:
                refused.append((strategy, label))
            else:
                allowed.append((strategy, label))
    return allowed, refused


ALLOWED, REFUSED = _pairs()


def test_the_representatives_cover_every_capability_set() -> None:
    """Each built-in learner, plain and with each option that adds a capability, has the
    capability set of a representative; and every strategy runs with one of them."""
    sets = {capability_set(*learner) for learner in REPRESENTATIVES.values()}
    assert len(sets) == len(REPRESENTATIVES)  # one representative per set
    variants = [(n, {}) for n in BUILT_IN_LEARNERS if n not in ("sklearn", "torch-module")]
    variants += [REPRESENTATIVES["sklearn"], REPRESENTATIVES["torch-module"]]
    variants += [(n, {**TORCH, option: value}) for n in ("small-cnn", "resnet18")
                 for option, value in (("loss_head", {}), ("dropout", 0.5))]
    for name, params in variants:
        have = capability_set(name, params)
        assert any(have <= s for s in sets), (name, params, sorted(have))
        if name != "small-cnn" or params:  # plain small-cnn: torch-module's set
            assert have in sets, (name, params, sorted(have))
    assert {s for s, _ in ALLOWED} == set(BUILT_IN_STRATEGIES)
    for pair in [("margin", "self-taught"), ("vae-learning-loss", "cnn-loss-head"),
                 ("bald", "cnn-dropout"), ("gaal", "torch-module"), ("badge", "sklearn")]:
        assert pair in ALLOWED, pair


@pytest.mark.parametrize("strategy,learner", REFUSED, ids=[f"{s}+{m}" for s, m in REFUSED])
def test_a_pair_without_the_capability_is_refused_naming_it(strategy: str,
                                                            learner: str) -> None:
    built = STRATEGIES.build(strategy, STRATEGY_SETTINGS.get(strategy, {}))
    have = capability_set(*REPRESENTATIVES[learner])
    missing = [c.__name__ for c in built.requires if c.__name__ not in have]
    assert missing, (strategy, learner)
    with pytest.raises(ConfigError, match=missing[0]):
        parse_label_config(_label_config(strategy, REPRESENTATIVES[learner]))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("matrix-cache")


def _answer_round(session, truth: np.ndarray) -> int:  # type: ignore[no-untyped-def]
    rows = session.batch("m").queries
    for j, row in enumerate(rows):
        label = int(truth[row.pool_index]) if row.pool_index is not None else j % 2
        session.label(row.id, label, "m")
    return len(rows)


def one_round(strategy: str, learner: tuple[str, dict[str, Any]], cache: Path,
              tmp_path: Path) -> None:
    config = parse_label_config(_label_config(strategy, learner, cache))
    torch_grow = learner[0] in ("small-cnn", "resnet18")
    # -- the labeling session: round 0 is a random draw, round 1 the strategy's choice
    session, pool = make_session(tmp_path / "s.sqlite", config)
    try:
        assert session.worker is not None
        assert _answer_round(session, pool.y) == 4
        assert session.worker.error is None, session.worker.error
        assert session.store.open_round() == 1 and not session.finished
        assert session.learner is not None and session.learner.is_fitted
        if torch_grow:  # `grow`: epochs + round * increment; round 1 -> 2 epochs
            assert len(session.learner.history) == 2  # type: ignore[attr-defined]
        assert 1 <= _answer_round(session, pool.y) <= 4
        assert session.worker.error is None, session.worker.error
        assert session.store.open_round() == 2 or session.finished
        fits = session.store.fits()
        assert [f["round"] for f in fits] == [1, 2] and fits[0]["n_labels"] == 4
    finally:
        session.close()

    # -- the experiment loop: the same pair, one strategy round after the initial set
    built = STRATEGIES.build(config.strategy.name, config.strategy.params)
    built.prepare(PrepareContext(pool=pool, cache_dir=cache, device="cpu", artifact_seed=1))
    oracle = (ORACLES.build("expert", {}, BuildContext(pool=pool, cache_dir=cache))
              if built.synthesizes else PoolOracle(pool))
    records = ActiveLearningLoop(
        pool, session_learner_factory(config, 2), built, oracle,
        LoopSettings(initial_size=4, batch_size=4, budget=8), seed=1, test_sets={},
        cache_dir=cache).run()
    assert [r.round for r in records] == [0, 1] and records[-1].n_labels == 8


@pytest.mark.parametrize("strategy,learner", ALLOWED, ids=[f"{s}+{m}" for s, m in ALLOWED])
def test_one_round_through_the_session_and_the_loop(strategy: str, learner: str, cache: Path,
                                                    tmp_path: Path) -> None:
    one_round(strategy, REPRESENTATIVES[learner], cache, tmp_path)


@pytest.mark.slow
def test_one_round_with_resnet18(cache: Path, tmp_path: Path) -> None:
    one_round("vae-learning-loss", ("resnet18", {**TORCH, "loss_head": {}}), cache, tmp_path)
