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


def dropout_net(p: float = 0.5) -> nn.Module:
    """A user's network with dropout and BatchNorm (importable by a config)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(),
                         nn.Dropout(p), nn.Linear(32, 2))


def test_a_module_with_dropout_offers_mc_dropout_samples(data) -> None:
    """BALD refused a user's module with nn.Dropout; the learner over such a module is the MC
    dropout variant: seeded samples with only the dropout layers active."""
    from activegen import STRATEGIES, ActiveLearner
    from activegen.models.capabilities import MCDropout, check_compatible
    from activegen.models.torch_module import TorchModuleMCDropout

    X, y = data
    plain = TorchModuleLearner(2, module=tiny_net, device="cpu")
    assert not has_capability(plain, MCDropout)
    with pytest.raises(ConfigError, match=r"MCDropout .*torch-module with an nn.Dropout layer"):
        check_compatible(STRATEGIES.build("bald", {}), plain)
    learner = TorchModuleLearner(2, seed=0, module=dropout_net, epochs=30, device="cpu")
    assert type(learner) is TorchModuleMCDropout and has_capability(learner, MCDropout)
    assert type(TorchModuleLearner(2, module=dropout_net(), device="cpu")) is TorchModuleMCDropout
    check_compatible(STRATEGIES.build("bald", {}), learner)
    learner.fit(X[:120], y[:120])
    state = torch.get_rng_state()
    first = np.concatenate(list(learner.iter_proba_samples(X[:40], 8,
                                                           np.random.default_rng(3), 16)))
    again = np.concatenate(list(learner.iter_proba_samples(X[:40], 8,
                                                           np.random.default_rng(3), 16)))
    assert torch.equal(state, torch.get_rng_state())  # the global random state is untouched
    assert first.shape == (40, 8, 2)
    np.testing.assert_array_equal(first, again)  # seeded by rng
    np.testing.assert_allclose(first.sum(axis=2), 1.0)
    assert first.std(axis=1).max() > 1e-3  # dropout varies the samples
    # afterwards the network predicts as before: eval mode everywhere, BatchNorm's statistics
    # untouched by the samples (they ran it in eval mode)
    running = learner.network[2].running_mean.clone()
    assert not any(m.training for m in learner.network.modules())
    np.testing.assert_allclose(learner.predict_proba(X[:5]), learner.predict_proba(X[:5]))
    assert torch.equal(running, learner.network[2].running_mean)
    # without dropout masks the samples are the prediction: only dropout differs
    no_drop = TorchModuleLearner(2, seed=0, module=dropout_net, params={"p": 0.0}, epochs=30,
                                 device="cpu").fit(X[:120], y[:120])
    samples = next(no_drop.iter_proba_samples(X[:10], 3, np.random.default_rng(0)))
    np.testing.assert_allclose(samples, np.repeat(no_drop.predict_proba(X[:10])[:, None], 3, 1),
                               rtol=1e-6, atol=1e-7)
    # BALD runs through the engine on it, copies (every round's learner) keep the variant
    engine = ActiveLearner(X, 2, learner, STRATEGIES.build("bald", {"n_samples": 5}), seed=0)
    for _ in range(2):
        query = engine.ask(6)
        engine.tell(query, y[query.indices])
    assert type(engine.learner) is TorchModuleMCDropout
    assert type(pickle.loads(pickle.dumps(learner))) is TorchModuleMCDropout
