"""What a learner can do, as typed protocols, and the fit context it is trained with.

A capability is a method the learner's class *has*: a learner offers class probabilities by
defining ``predict_proba``, and one that cannot does not define it (a torch learner without a
loss head is another class than one with it). A strategy declares the capabilities it reads
(``Strategy.requires``); :func:`check_compatible` refuses a strategy × learner pair that cannot
work, at config time, naming both and saying how to get what is missing. The protocols are
runtime-checkable, so a user's own model needs no base class to be checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeGuard, TypeVar, runtime_checkable

import numpy as np
import torch

from activegen.errors import ConfigError


@dataclass(frozen=True)
class FitContext:
    """What a learner is told about the fit it is asked for (instead of inferring it).

    Attributes:
        round: the active-learning round, 0 for the fit on the initial labels (the ``grow``
            schedule trains longer each round).
        extra: per-example extra features ``float32 [N, e]`` of the training images (the
            VAE-augmented loss head reads them), or ``None``.
    """

    round: int = 0
    extra: np.ndarray | None = None


@runtime_checkable
class Probabilistic(Protocol):
    """Class probabilities ``[N, K]``."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Margins(Protocol):
    """Signed decision values: ``[N]`` for two classes (positive → class 1), else ``[N, K]``."""

    def decision_function(self, X: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Embedding(Protocol):
    """Features ``float32 [N, d]`` for distance-based strategies."""

    def embed(self, X: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Differentiable(Protocol):
    """A decision function torch can differentiate through (query synthesis follows it)."""

    def torch_decision(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class DifferentiableFeatures(Protocol):
    """The learner's features ``φ(x)`` ``[N, d]`` as a differentiable torch function (GAAL's
    manifold diversity spreads a batch in this space)."""

    def torch_features(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Linear(Protocol):
    """A linear model on its inputs: ``linear_weights() = (W [K', d], b [K'])`` with
    ``K' = 1`` for two classes (what a model file exports)."""

    def linear_weights(self) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class LossPredicting(Protocol):
    """A predicted training loss per point (Yoo & Kweon's loss head)."""

    def predict_loss(self, X: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray: ...


@runtime_checkable
class PoolPrepared(Protocol):
    """Learns something from the unlabeled pool once before its fits (a sparse-coding basis)."""

    def prepare(self, pool_images: np.ndarray, cache_dir: Path | None = None) -> None: ...


@runtime_checkable
class MCDropout(Protocol):
    """Posterior samples of class probabilities ``[n, T, K]`` from dropout kept active at query
    time (Gal et al. 2017) or a deep ensemble's members, chunk by chunk so memory stays
    bounded."""

    def iter_proba_samples(self, X: np.ndarray, n_samples: int, rng: np.random.Generator,
                           chunk_size: int = ...) -> Iterator[np.ndarray]: ...


CAPABILITIES: tuple[type, ...] = (Probabilistic, Margins, Embedding, Differentiable,
                                  DifferentiableFeatures, Linear, LossPredicting, PoolPrepared,
                                  MCDropout)

#: How to get each capability, for the refusal's message.
HOW_TO_GET: dict[type, str] = {
    Probabilistic: "every built-in learner has it",
    Margins: "every built-in learner has it",
    Embedding: "every built-in learner has it",
    Differentiable: "use a torch learner (linear-svm, logistic-regression, small-cnn, "
                    "resnet18, torch-module)",
    DifferentiableFeatures: "use small-cnn, resnet18 or torch-module (their penultimate "
                            "features), or a linear learner (its input)",
    Linear: "use linear-svm or logistic-regression",
    LossPredicting: "set loss_head = {} on small-cnn or resnet18",
    PoolPrepared: "use self-taught-svm",
    MCDropout: "set dropout = 0.5 (or ensemble = 5) on small-cnn or resnet18, or use "
               "torch-module with an nn.Dropout layer in the module",
}

C = TypeVar("C")


def has_capability(learner: object, capability: type[C]) -> TypeGuard[C]:
    """Whether ``learner`` offers ``capability`` (narrows its type for the checker)."""
    return isinstance(learner, capability)


def missing_capabilities(requires: tuple[type, ...], learner: object) -> list[type]:
    """The capabilities in ``requires`` that ``learner`` does not offer."""
    return [cap for cap in requires if not isinstance(learner, cap)]


def check_compatible(strategy: Any, learner: object) -> None:
    """Refuse a strategy that needs what the learner cannot do.

    Raises:
        ConfigError: naming the strategy, the learner, each missing capability and how to
            get it.
    """
    missing = missing_capabilities(tuple(strategy.requires), learner)
    if missing:
        names = "; ".join(f"{cap.__name__} ({_methods(cap)}: {HOW_TO_GET[cap]})"
                          if cap in HOW_TO_GET else f"{cap.__name__} ({_methods(cap)})"
                          for cap in missing)
        raise ConfigError(
            f"strategy {strategy.name!r} needs a learner that is {names}; learner "
            f"{_learner_name(learner)!r} is not"
        )


def _learner_name(learner: object) -> str:
    name = getattr(learner, "name", None)
    return name if isinstance(name, str) else type(learner).__name__


def _methods(capability: type) -> str:
    return ", ".join(sorted(n for n in vars(capability) if not n.startswith("_")))
