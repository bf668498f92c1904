"""What a learner can do, as typed protocols, and the fit context it is trained with.

A strategy declares the capabilities it reads (``Strategy.requires``); one check,
:func:`check_compatible`, refuses a strategy × learner pair that cannot work, at config time,
naming both. ``isinstance(learner, Embedding)`` works on any object (the protocols are
runtime-checkable), so a user's own model needs no base class to be checked. A learner that has a
method but cannot use it with its settings (a torch learner without a loss head has
``predict_loss``) lists the protocol in its ``lacks`` attribute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from activegen.errors import ConfigError


@dataclass(frozen=True)
class FitContext:
    """What a learner is told about the fit it is asked for (instead of inferring it).

    Attributes:
        round: the active-learning round, 0 for the fit on the initial labels.
        labels_initial: labels of the initial set (the ``grow`` schedule's first round).
        labels_per_round: labels added per round (for learners that size themselves by it).
        extra: per-example extra features ``float32 [N, e]`` of the training images (the
            VAE-augmented loss head reads them), or ``None``.
    """

    round: int = 0
    labels_initial: int | None = None
    labels_per_round: int | None = None
    extra: np.ndarray | None = None


@runtime_checkable
class Probabilistic(Protocol):
    """Class probabilities ``[N, K]``."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Embedding(Protocol):
    """Features ``float32 [N, d]`` for distance-based strategies."""

    def embed(self, X: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Differentiable(Protocol):
    """A decision function torch can differentiate through (query synthesis follows it)."""

    def torch_decision(self, x: torch.Tensor) -> torch.Tensor: ...


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
    time (Gal et al. 2017), yielded chunk by chunk so memory stays bounded."""

    def iter_proba_samples(self, X: np.ndarray, n_samples: int, rng: np.random.Generator,
                           chunk_size: int = ...) -> Iterator[np.ndarray]: ...


CAPABILITIES: tuple[type, ...] = (Probabilistic, Embedding, Differentiable, LossPredicting,
                                  PoolPrepared, MCDropout)


def has_capability(learner: Any, capability: type) -> bool:
    """Whether ``learner`` offers ``capability`` (has the method and does not disown it)."""
    return isinstance(learner, capability) and capability not in getattr(learner, "lacks", ())


def missing_capabilities(strategy: Any, learner: Any) -> list[type]:
    """The capabilities ``strategy`` requires that ``learner`` lacks."""
    return [cap for cap in getattr(strategy, "requires", ()) if not has_capability(learner, cap)]


def check_compatible(strategy: Any, learner: Any) -> None:
    """Refuse a strategy that needs what the learner cannot do.

    Raises:
        ConfigError: naming the strategy, the learner and each missing capability.
    """
    missing = missing_capabilities(strategy, learner)
    if missing:
        names = ", ".join(f"{cap.__name__} ({_methods(cap)})" for cap in missing)
        raise ConfigError(
            f"strategy {getattr(strategy, 'name', type(strategy).__name__)!r} needs a learner "
            f"that is {names}; learner {getattr(learner, 'name', type(learner).__name__)!r} "
            "is not"
        )


def _methods(capability: type) -> str:
    return ", ".join(sorted(n for n in vars(capability) if not n.startswith("_")))
