"""Every strategy × every learner a labeling-session config allows runs one round through the
labeling session and through the experiment loop, on the embedded digits with tiny settings.

Both stand on the engine, so a pair that works in a run and fails in the session (a prepare
hook not called, a fit context not passed, the ``grow`` schedule not told the round) fails
here. Torch learners get the loss head or dropout a strategy needs, as a user would write it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from activegen.engine import LoopSettings
from activegen.errors import ConfigError
from activegen.loop import ActiveLearningLoop
from activegen.models import LEARNERS
from activegen.models.capabilities import LossPredicting, MCDropout
from activegen.oracles import ORACLES
from activegen.oracles.base import PoolOracle
from activegen.server.config import parse_label_config
from activegen.server.session import session_learner_factory
from activegen.strategies import STRATEGIES, PrepareContext
from label_support import make_session

GAN = {"gan_epochs": 2, "latent_dim": 4, "gan_width": 4}
VAE = {"vae_latent_dim": 4, "vae_width": 4, "vae_epochs": 1}
#: Tiny settings per strategy (the defaults train big generators and VAEs).
STRATEGY_SETTINGS: dict[str, dict[str, Any]] = {
    "gaal": {**GAN, "steps": 3}, "gaal-retrieve": {**GAN, "steps": 3}, "simple-gan": GAN,
    "mixed": {"primary_params": {**GAN, "steps": 3}},
    "vae-coreset": VAE, "vae-medal": VAE, "vae-learning-loss": VAE,
    "probcover": {"vae_latent_dim": 4, "vae_epochs": 1},
    "typiclust": {"vae_latent_dim": 4, "vae_epochs": 1},
    "bald": {"n_samples": 3}, "batchbald": {"n_samples": 3, "n_configs": 50},
    "mc-entropy": {"n_samples": 3}, "mean-std": {"n_samples": 3},
    "variation-ratios": {"n_samples": 3},
}
TORCH = {"schedule": "grow", "epochs": 1, "epochs_increment": 1, "batch_size": 32}
#: Tiny settings per learner.
LEARNER_SETTINGS: dict[str, dict[str, Any]] = {
    "linear-svm": {}, "logistic-regression": {},
    "self-taught-svm": {"n_components": 8, "basis_iterations": 2},
    "small-cnn": {**TORCH, "width": 4, "feature_dim": 8},
    "resnet18": TORCH,
    "sklearn": {"estimator": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 200}},
    "torch-module": {"module": "label_support.tiny_net", "epochs": 1},
}
TORCH_LEARNERS = ("small-cnn", "resnet18")

BUILT_IN_STRATEGIES = sorted(n for n in STRATEGIES.names()
                             if STRATEGIES.get(n).__module__.startswith("activegen.strategies"))
BUILT_IN_LEARNERS = sorted(n for n in LEARNERS.names()
                           if LEARNERS.get(n).__module__.startswith("activegen.models"))


def _label_config(strategy: str, learner: str, cache: Path | None = None) -> dict[str, Any]:
    params = dict(LEARNER_SETTINGS[learner])
    requires = STRATEGIES.build(strategy, STRATEGY_SETTINGS.get(strategy, {})).requires
    if learner in TORCH_LEARNERS and LossPredicting in requires:
        params["loss_prediction"] = True
    if learner in TORCH_LEARNERS and MCDropout in requires:
        params["dropout"] = 0.5
    return {"name": f"{strategy}-{learner}", "seed": 1, "device": "cpu",
            "data": {"dataset": "digits", "classes": [3, 8]},
            "learner": {"name": learner, **params},
            "strategy": {"name": strategy, **STRATEGY_SETTINGS.get(strategy, {})},
            "labeling": {"batch": 4, "budget": 12, "background": False},
            **({} if cache is None else {"cache_dir": str(cache)})}


def _allowed() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    allowed, refused = [], []
    for strategy in BUILT_IN_STRATEGIES:
        for learner in BUILT_IN_LEARNERS:
            try:
                parse_label_config(_label_config(strategy, learner))
            except ConfigError:
                refused.append((strategy, learner))
            else:
                allowed.append((strategy, learner))
    return allowed, refused


ALLOWED, REFUSED = _allowed()


def test_the_matrix_covers_every_strategy_and_learner() -> None:
    assert set(LEARNER_SETTINGS) == set(BUILT_IN_LEARNERS)
    assert {s for s, _ in ALLOWED} == set(BUILT_IN_STRATEGIES)  # each runs with some learner
    assert {learner for _, learner in ALLOWED} == set(BUILT_IN_LEARNERS)
    for pair in [("margin", "self-taught-svm"), ("vae-learning-loss", "small-cnn"),
                 ("vae-learning-loss", "resnet18"), ("entropy", "resnet18"),
                 ("gaal", "small-cnn")]:
        assert pair in ALLOWED, pair
    # A refused pair is one whose strategy needs a capability the learner lacks.
    for strategy, learner in REFUSED:
        assert STRATEGIES.build(strategy, STRATEGY_SETTINGS.get(strategy, {})).requires, \
            (strategy, learner)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("matrix-cache")


def _answer_round(session, truth: np.ndarray) -> int:
    rows = session.batch("m")
    for j, row in enumerate(rows):
        label = int(truth[row.pool_index]) if row.pool_index is not None else j % 2
        session.label(row.id, label, "m")
    return len(rows)


def _check_grow(learner, config, run_round: int) -> None:
    if config.learner.name in TORCH_LEARNERS:  # `grow`: epochs + round * increment
        assert len(learner.history) == 1 + run_round


@pytest.mark.slow
@pytest.mark.parametrize("strategy,learner", ALLOWED, ids=[f"{s}+{m}" for s, m in ALLOWED])
def test_one_round_through_the_session_and_the_loop(strategy: str, learner: str, cache: Path,
                                                    tmp_path: Path) -> None:
    config = parse_label_config(_label_config(strategy, learner, cache))
    # -- the labeling session: round 1 is a random draw, round 2 the strategy's choice
    session, pool = make_session(tmp_path / "s.sqlite", config)
    try:
        assert _answer_round(session, pool.y) == 4
        assert session.store.current_round() == 2 and not session.finished
        assert session.learner is not None and session.learner.is_fitted
        _check_grow(session.learner, config, run_round=1)  # session round 2 = run round 1
        assert 1 <= _answer_round(session, pool.y) <= 4
        assert session.store.current_round() == 3 or session.finished
        fits = session.store.fits()
        assert [f["round"] for f in fits] == [2, 3] and fits[0]["n_labels"] == 4
    finally:
        session.close()

    # -- the experiment loop: the same pair, one strategy round after the initial set
    built = STRATEGIES.build(config.strategy.name, config.strategy.params)
    built.prepare(PrepareContext(pool=pool, cache_dir=cache, device="cpu", artifact_seed=1))
    oracle = (ORACLES.build("expert", {}, pool=pool, cache_dir=cache) if built.synthesizes
              else PoolOracle(pool))
    records = ActiveLearningLoop(
        pool, session_learner_factory(config, 2), built, oracle,
        LoopSettings(initial_size=4, batch_size=4, budget=8), seed=1, test_sets={},
        cache_dir=cache).run()
    assert [r.round for r in records] == [0, 1] and records[-1].n_labels == 8
