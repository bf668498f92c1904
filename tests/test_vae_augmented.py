"""VAE-augmented core-set and MedAL: alpha = 0 is the plain strategy; alpha > 0 changes picks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activegen.data.registry import load_dataset
from activegen.errors import ConfigError
from activegen.loop import ActiveLearningLoop, LoopSettings
from activegen.models import SmallCNN
from activegen.oracles.base import PoolOracle
from activegen.strategies import STRATEGIES, PrepareContext, QueryState

VAE = {"vae": {"latent_dim": 4, "width": 4, "epochs": 1}}


@pytest.fixture(scope="module")
def pool():
    return load_dataset("digits").subset(400, seed=1)


def make_learner(seed: int) -> SmallCNN:
    return SmallCNN(10, seed=seed, schedule="fixed", epochs=3, lr=0.05, batch_size=32, width=8,
                    device="cpu")


def run_picks(pool, strategy, cache: Path) -> list[np.ndarray]:
    picks: list[np.ndarray] = []
    strategy.prepare(PrepareContext(pool=pool, cache_dir=cache))
    ActiveLearningLoop(pool, make_learner, strategy, PoolOracle(pool), LoopSettings(30, 15, 60),
                       seed=0, test_sets={},
                       query_sink=lambda r, q, y: picks.append(q.indices)).run()
    return picks


@pytest.mark.parametrize("plain_name", ["coreset", "medal"])
def test_alpha_zero_selects_exactly_what_the_plain_strategy_selects(
    pool, plain_name: str, tmp_path: Path
) -> None:
    plain = run_picks(pool, STRATEGIES.build(plain_name, {}), tmp_path)
    zero = run_picks(pool, STRATEGIES.build(f"vae-{plain_name}", {"alpha": 0.0, **VAE}),
                     tmp_path)
    assert len(plain) == 2
    for a, b in zip(plain, zero):
        np.testing.assert_array_equal(a, b)
    # The 1-epoch VAE's means spread by ~1e-3 against ~2 for the CNN's features (BatchNorm
    # recalibrated; with stale statistics they had collapsed to ~0.03): alpha must be large
    # for the VAE part to move the picks.
    strong = run_picks(pool, STRATEGIES.build(f"vae-{plain_name}", {"alpha": 1e4, **VAE}),
                       tmp_path)
    assert any(not np.array_equal(a, b) for a, b in zip(plain, strong))
    assert len(list(tmp_path.glob("vaes/*/model.pt"))) == 1  # one cached VAE served both runs


def test_features_are_task_features_then_scaled_vae_means(pool, tmp_path: Path) -> None:
    X = pool.to_float()
    strategy = STRATEGIES.build("vae-coreset", {"alpha": 2.0, **VAE})
    strategy.prepare(PrepareContext(pool=pool, cache_dir=tmp_path))
    learner = make_learner(0).fit(X[:50], pool.y[:50])
    queried = np.zeros(len(X), bool)
    queried[:50] = True
    state = QueryState(X, queried, np.arange(50), learner, 10, np.random.default_rng(0))
    from activegen.generative.vae import encode

    feats = strategy.features(state, X[:20])
    np.testing.assert_array_equal(feats[:, :128], learner.embed(X[:20]))
    np.testing.assert_allclose(feats[:, 128:], 2.0 * encode(strategy.feature_map.vae, X[:20]),
                               rtol=1e-6)


def test_class_conditional_variant_runs_and_bad_settings_are_refused(pool, tmp_path: Path
                                                                    ) -> None:
    picks = run_picks(pool, STRATEGIES.build("vae-coreset", {"vae_kind": "cvae", **VAE}),
                      tmp_path)
    assert all(len(p) == 15 for p in picks)
    with pytest.raises(ConfigError, match="alpha: Input should be greater than or equal to 0"):
        STRATEGIES.build("vae-medal", {"alpha": -1.0})
    with pytest.raises(ConfigError, match=r"vae_kind: Input should be .vae. or .cvae."):
        STRATEGIES.build("vae-coreset", {"vae_kind": "gan"})
    with pytest.raises(ConfigError, match="vae_kind = 'vae' only"):
        STRATEGIES.build("vae-learning-loss", {"vae_kind": "cvae"})
