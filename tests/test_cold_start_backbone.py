"""Cold-start features from a user-supplied backbone weights file (``backbone:<path>``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests._experiments import small_config

from activegen.errors import ConfigError
from activegen.models.features import FeatureExtractor
from activegen.strategies import STRATEGIES, QueryState
from activegen.strategies.base import PrepareContext
from activegen.strategies.cold_start import backbone_features, input_features, typiclust_select


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    """A randomly initialised ResNet-18 state dict, saved as a user's weights file would be."""
    from activegen.models.resnet import ResNet18Network

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("backbone") / "resnet18-random.pt"
    torch.save(ResNet18Network(3, n_classes=10).state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    """150 digits images, float [N, 1, 8, 8] in [0, 1]."""
    from activegen.data import load_dataset

    data = load_dataset("digits")
    return data.to_float()[np.random.default_rng(0).choice(len(data.y), 150, replace=False)]


def test_backbone_features_are_the_extractors_and_differ_from_pixels(weights, X) -> None:
    feats = backbone_features(X, f"backbone:{weights}")
    images = np.rint(X * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    direct = FeatureExtractor(f"backbone:{weights}", channels=1).fit(images)
    assert feats.shape == (len(X), 512)
    np.testing.assert_allclose(feats, direct, rtol=1e-5, atol=1e-5)
    # standardised over the pool, and not a function of the pixels' scale alone
    np.testing.assert_allclose(feats.mean(axis=0), 0.0, atol=1e-3)
    none = np.empty(0, dtype=np.int64)
    assert not np.array_equal(typiclust_select(feats, none, 10, np.random.default_rng(0)),
                              typiclust_select(input_features(X), none, 10,
                                               np.random.default_rng(0)))


def test_typiclust_and_probcover_per_round_use_the_backbone(weights, X, tmp_path) -> None:
    spec = f"backbone:{weights}"
    feats = backbone_features(X, spec)
    queried = np.zeros(len(X), dtype=bool)
    queried[:10] = True
    for name in ("typiclust", "probcover"):
        strategy = STRATEGIES.build(name, {"features": spec})
        with pytest.raises(RuntimeError, match="prepare"):
            strategy.query(QueryState(X, queried, np.arange(10), None, 10,
                                      np.random.default_rng(0)), 5)
        strategy.prepare(PrepareContext(pool=_Pool(X), cache_dir=tmp_path))  # type: ignore[arg-type]
        np.testing.assert_allclose(strategy._pool_features, feats, rtol=1e-5, atol=1e-5)
        q = strategy.query(QueryState(X, queried, np.arange(10), None, 10,
                                      np.random.default_rng(3)), 5)
        assert len(set(q.indices.tolist())) == 5 and (q.indices >= 10).all()
        if name == "typiclust":
            expected = typiclust_select(feats, np.arange(10), 5, np.random.default_rng(3))
            assert set(q.indices.tolist()) == set(expected.tolist())


class _Pool:
    def __init__(self, X: np.ndarray) -> None:
        self._X = X

    def to_float(self) -> np.ndarray:
        return self._X


def test_missing_weights_are_refused_before_any_work(tmp_path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(ConfigError, match=r"nope\.pt"):
        STRATEGIES.build("typiclust", {"features": f"backbone:{missing}"})
    with pytest.raises(ConfigError, match=r"nope\.pt"):
        small_config(loop={"initial": 20, "batch": 10, "budget": 40,
                           "cold_start": {"name": "typiclust",
                                          "features": f"backbone:{missing}"}})
    with pytest.raises(ConfigError, match="features must be one of"):
        small_config(loop={"initial": 20, "batch": 10, "budget": 40,
                           "cold_start": {"name": "typiclust", "features": "resnet"}})


def test_a_cold_start_on_backbone_features_end_to_end(weights, tmp_path) -> None:
    from activegen.engine import derive_seed
    from activegen.experiments.runner import load_experiment_data, run_experiment

    spec = f"backbone:{weights}"
    config = small_config(seeds=[0], strategies=[{"name": "random"}],
                          loop={"initial": 20, "batch": 10, "budget": 30,
                                "cold_start": {"name": "typiclust", "features": spec}})
    out = tmp_path / "out"
    run_experiment(config, out)
    pool, _ = load_experiment_data(config)
    rng = np.random.default_rng(derive_seed(0, 0, 3))
    expected = typiclust_select(backbone_features(pool.to_float(), spec),
                                np.empty(0, dtype=np.int64), 20, rng)
    first = np.load(out / "queries" / "random__seed0" / "round_0000.npz")["indices"]
    assert sorted(first.tolist()) == sorted(expected.tolist())
