"""Bring your own torch network: an nn.Module classifier as a learner, with an embedding hook."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from activegen.data import load_dataset
from activegen.errors import ConfigError
from activegen.experiments.config import parse_config
from activegen.experiments.results import read_results
from activegen.experiments.runner import run_experiment
from activegen.models import TorchModuleLearner
from activegen.models.capabilities import Differentiable, Embedding, FitContext, has_capability


def tiny_net(hidden: int = 16, classes: int = 2) -> nn.Module:
    """A module-level factory, importable by a config as tests.test_torch_module_learner."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    ds = load_dataset("digits").select_classes([3, 8])
    return ds.to_float(), ds.y


def test_trains_embeds_and_differentiates(data) -> None:
    X, y = data
    learner = TorchModuleLearner(2, seed=1, module=tiny_net, epochs=20, device="cpu")
    learner.fit(X[:200], y[:200])
    assert learner.score(X[200:], y[200:]) > 0.85
    assert learner.embed(X[:7]).shape == (7, 16)  # the input of the last Linear
    d = learner.decision_function(X[:10])
    torch_d = learner.torch_decision(torch.from_numpy(X[:10])).detach().numpy()
    np.testing.assert_allclose(torch_d, d, rtol=1e-4, atol=1e-4)
    assert has_capability(learner, Differentiable) and has_capability(learner, Embedding)
    again = TorchModuleLearner(2, seed=1, module=tiny_net, epochs=20, device="cpu")
    np.testing.assert_allclose(again.fit(X[:200], y[:200]).decision_function(X[:10]), d,
                               rtol=1e-5, atol=1e-6)  # seeded: the same network
    assert pickle.loads(pickle.dumps(learner)).predict(X[:5]).shape == (5,)


def test_named_embedding_and_grow_schedule(data) -> None:
    X, y = data
    net = tiny_net()
    learner = TorchModuleLearner(2, module=net, embedding="2", epochs=1, epochs_increment=1,
                                 schedule="grow", device="cpu")
    learner.fit(X[:50], y[:50], FitContext(round=3))
    assert learner.embed(X[:4]).shape == (4, 16)  # the ReLU's output
    assert learner.network is not net  # the given module is copied, never trained in place


def test_bad_modules_are_refused() -> None:
    with pytest.raises(ConfigError, match="cannot import"):
        TorchModuleLearner(2, module="nowhere.at_all", allow_imports=["nowhere"])
    with pytest.raises(ConfigError, match="needs module"):
        TorchModuleLearner(2)
    with pytest.raises(ConfigError, match="neither"):
        TorchModuleLearner(2, module="math.pi", allow_imports=["math"])


def test_from_a_config_with_gaal(tmp_path: Path) -> None:
    config = parse_config({
        "name": "tm", "seeds": [0], "supervised": False,
        "data": {"dataset": "digits", "classes": [3, 8], "test_fraction": 0.3},
        "learner": {"name": "torch-module", "module": "test_torch_module_learner.tiny_net",
                    "allow_imports": ["test_torch_module_learner"],
                    "params": {"hidden": 8}, "epochs": 5},
        "oracle": {"name": "expert", "threshold": 0.5},
        "loop": {"initial": 10, "batch": 4, "budget": 18},
        "strategies": [{"name": "gaal", "generator": {"epochs": 2, "latent_dim": 4},
                        "synthesis": {"steps": 3}},
                       {"name": "coreset"}]})
    results = read_results(run_experiment(config, tmp_path / "out", progress=False))
    assert set(results["strategy"]) == {"gaal", "coreset"}
