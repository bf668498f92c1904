"""Learning-loss sampling and its VAE-augmented variant, in the real loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activegen.data.registry import load_dataset
from activegen.errors import ConfigError
from activegen.loop import ActiveLearningLoop, LoopSettings
from activegen.models import LinearSVM, SmallCNN
from activegen.oracles.base import PoolOracle
from activegen.strategies import STRATEGIES, PrepareContext, QueryState
from activegen.strategies.learning_loss import LearningLoss


@pytest.fixture(scope="module")
def pool():
    return load_dataset("digits").subset(500, seed=0)


def make_learner(seed: int) -> SmallCNN:
    return SmallCNN(10, seed=seed, schedule="fixed", epochs=4, lr=0.05, batch_size=32, width=8,
                    device="cpu", loss_head={})


def run_picks(pool, strategy, tmp_path: Path) -> list[np.ndarray]:
    picks: list[np.ndarray] = []
    strategy.prepare(PrepareContext(pool=pool, cache_dir=tmp_path / "cache"))
    loop = ActiveLearningLoop(pool, make_learner, strategy, PoolOracle(pool),
                              LoopSettings(40, 20, 80), seed=0, test_sets={},
                              query_sink=lambda r, q, y: picks.append(q.indices))
    loop.run()
    return picks


def test_picks_are_the_highest_predicted_losses(pool) -> None:
    X = pool.to_float()
    learner = make_learner(0).fit(X[:60], pool.y[:60])
    queried = np.zeros(len(X), bool)
    queried[:60] = True
    state = QueryState(X, queried, np.arange(60), learner, 10, np.random.default_rng(0))
    query = LearningLoss(subsample=None).query(state, 15)
    predicted = learner.predict_loss(X[60:])
    expected = 60 + np.argsort(-predicted)[:15]
    assert set(query.indices) == set(expected)
    np.testing.assert_allclose(np.sort(query.scores), np.sort(predicted[expected - 60]))
    sub = LearningLoss(subsample=50).query(state, 10)
    assert len(sub.indices) == 10 and not queried[sub.indices].any()


def test_needs_a_learner_with_a_loss_head(pool) -> None:
    X = pool.to_float()
    learner = LinearSVM(10).fit(X[:60], pool.y[:60])
    queried = np.zeros(len(X), bool)
    queried[:60] = True
    state = QueryState(X, queried, np.arange(60), learner, 10, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="needs a learner that is LossPredicting"):
        LearningLoss().query(state, 5)
    with pytest.raises(ConfigError, match="subsample: Input should be greater than or equal to 1"):
        STRATEGIES.build("learning-loss", {"subsample": 0})
    # Refused with the config, before any training.
    from activegen.experiments.config import parse_config

    config = {"data": {"dataset": "digits", "test_fraction": 0.3},
              "learner": {"name": "small-cnn"}, "loop": {"initial": 10, "batch": 5, "budget": 20},
              "strategies": [{"name": "random"}, {"name": "vae-learning-loss"}]}
    with pytest.raises(ConfigError, match=r"strategies\[1\]: strategy 'vae-learning-loss' needs"):
        parse_config(config)
    config["learner"] = {"name": "small-cnn", "loss_head": {}}
    parse_config(config)


def test_vae_augmentation_with_alpha_zero_selects_exactly_the_plain_picks(
    pool, tmp_path: Path
) -> None:
    vae = {"vae": {"latent_dim": 4, "width": 4, "epochs": 1}}
    plain = run_picks(pool, STRATEGIES.build("learning-loss", {}), tmp_path)
    zero = run_picks(pool, STRATEGIES.build("vae-learning-loss", {"alpha": 0.0, **vae}),
                     tmp_path)
    assert len(plain) == 2
    for a, b in zip(plain, zero):
        np.testing.assert_array_equal(a, b)
    # With alpha > 0 the VAE features reach the head and change what is picked.
    strong = run_picks(pool, STRATEGIES.build("vae-learning-loss", {"alpha": 5.0, **vae}),
                       tmp_path)
    assert any(not np.array_equal(a, b) for a, b in zip(plain, strong))
