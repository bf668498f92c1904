"""Tiny settings of every built-in strategy and learner, for tests that run them all: each
component keeps its behaviour, with generators, VAEs and networks small enough for seconds."""

from __future__ import annotations

from typing import Any

from activegen.models import LEARNERS
from activegen.strategies import STRATEGIES

GENERATOR = {"epochs": 2, "latent_dim": 4, "width": 4}
GAAL = {"generator": GENERATOR, "synthesis": {"steps": 3}}
VAE = {"vae": {"latent_dim": 4, "width": 4, "epochs": 1}}

#: strategy name → tiny settings (the defaults train big generators and VAEs)
STRATEGY_SETTINGS: dict[str, dict[str, Any]] = {
    "gaal": GAAL, "gaal-retrieve": GAAL, "simple-gan": {"generator": GENERATOR},
    "mixed": {"primary": {"name": "gaal", **GAAL}},
    "vae-coreset": VAE, "vae-medal": VAE, "vae-learning-loss": VAE,
    "probcover": VAE, "typiclust": VAE,
    "bald": {"n_samples": 3}, "batchbald": {"n_samples": 3, "n_configs": 50},
    "mc-entropy": {"n_samples": 3}, "mean-std": {"n_samples": 3},
    "variation-ratios": {"n_samples": 3},
}

TORCH = {"schedule": "grow", "epochs": 1, "epochs_increment": 1, "batch_size": 32}
#: learner name → tiny settings
LEARNER_SETTINGS: dict[str, dict[str, Any]] = {
    "linear-svm": {}, "logistic-regression": {},
    "self-taught-svm": {"n_components": 8, "basis_iterations": 2},
    "small-cnn": {**TORCH, "width": 4, "feature_dim": 8},
    "resnet18": TORCH,
    "sklearn": {"estimator": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 200}},
    "torch-module": {"module": "label_support.tiny_net", "allow_imports": ["label_support"],
                     "epochs": 1},
}

#: The package's own components (test modules register test doubles in the registries).
BUILT_IN_STRATEGIES = sorted(n for n in STRATEGIES.names()
                             if STRATEGIES.get(n).__module__.startswith("activegen."))
BUILT_IN_LEARNERS = sorted(n for n in LEARNERS.names()
                           if LEARNERS.get(n).__module__.startswith("activegen."))


def strategy_settings(name: str, **changes: Any) -> dict[str, Any]:
    """``name``'s tiny settings with ``changes``."""
    return {**STRATEGY_SETTINGS.get(name, {}), **changes}
