"""activegen: active learning with generative models."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: The library API, imported on first use (``import activegen`` stays light for the CLI).
_LAZY = {
    "ActiveLearner": "activegen.engine",
    "FitContext": "activegen.models.capabilities",
    "SklearnLearner": "activegen.models.sklearn_learner",
    "TorchModuleLearner": "activegen.models.torch_module",
    "STRATEGIES": "activegen.strategies",
    "LEARNERS": "activegen.models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'activegen' has no attribute {name!r}")
