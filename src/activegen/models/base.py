"""The learner contract: a thin base (fit / predict / score) and one mixin per capability.

A learner sees examples in the model scale: images ``float32 [N, C, H, W]`` in ``[0, 1]``, or
feature rows ``float32 [N, d]``. :class:`Learner` trains and predicts; what else it can do is
what its class adds (:mod:`activegen.models.capabilities`): probabilities, margins, features,
a differentiable decision function for query synthesis. Each ``With*`` mixin below adds one of
them with the shared handling of a learner fitted on a single class, so a class declares a
capability by inheriting it and never has a method it must refuse. Learners never choose
queries and strategies never train learners.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import torch

from activegen._labels import class_labels
from activegen._settings import BuildContext, NoSettings, Settings, resolve
from activegen.errors import ActivegenError
from activegen.models.capabilities import FitContext


def proba_from_margins(decision: np.ndarray) -> np.ndarray:
    """Probabilities ``[N, K]`` from margins: logistic for ``[N]`` (two classes), else softmax.

    Monotone in the margin, which is all uncertainty sampling needs from a margin classifier.
    """
    from scipy.special import expit, softmax

    if decision.ndim == 1:
        p1 = expit(decision)
        return np.stack([1.0 - p1, p1], axis=1)
    return softmax(decision, axis=1)


class NotFittedError(ActivegenError):
    """A learner was asked for predictions before :meth:`Learner.fit`."""


class Learner(ABC):
    """A task model: ``fit`` from scratch, ``predict``, ``score``.

    ``fit`` always trains from scratch, so that a run is a pure function of its labeled set and
    seed (the loop relies on this to resume and to compare strategies). With a single class
    present (possible with tiny initial sets) the learner predicts it everywhere instead of
    failing, and every point is equally uncertain.

    Args:
        n_classes: labels are ``0..n_classes-1``.
        seed: seeds whatever the fit draws.
        settings: the learner's :attr:`Settings` (or a mapping), or the same as keywords.
    """

    name: ClassVar[str] = "learner"
    Settings: ClassVar[type[Settings]] = NoSettings
    #: True for learners whose network needs images ``[N, C, H, W]`` (a CNN); the others take
    #: any examples, feature vectors ``[N, d]`` included
    needs_images: ClassVar[bool] = False

    def __init__(self, n_classes: int, seed: int = 0,
                 settings: Settings | Mapping[str, Any] | None = None,
                 **values: Any) -> None:
        if n_classes < 2:
            raise ValueError(f"a learner needs at least 2 classes, got {n_classes}")
        self.n_classes = n_classes
        self.seed = seed
        self.settings = resolve(type(self).Settings, settings, values, f"learner {self.name!r}")
        self._constant: int | None = None
        self._fitted = False

    @classmethod
    def from_settings(cls, settings: Settings, context: BuildContext) -> Self:
        """Build from validated settings and the framework's context."""
        return cls(context.n_classes, context.seed, settings)

    # -- training -------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, context: FitContext | None = None) -> Self:
        """Train from scratch on ``X`` and labels ``y``; ``context`` says which round this is
        and carries per-example extra features."""
        if len(X) == 0:
            raise ValueError("fit needs at least one labeled example")
        y = class_labels(y, self.n_classes, what=f"{type(self).__name__}.fit labels",
                         abstain=False, size=len(X))
        present = np.unique(y)
        self._constant = int(present[0]) if len(present) == 1 else None
        context = context if context is not None else FitContext()
        if context.extra is not None and len(context.extra) != len(y):
            raise ValueError(f"fit got {len(y)} labels but {len(context.extra)} rows of extra "
                             "features")
        if self._constant is None:
            self._fit(np.asarray(X, dtype=np.float32), y, context)
        self._fitted = True
        return self

    @abstractmethod
    def _fit(self, X: np.ndarray, y: np.ndarray, context: FitContext) -> None: ...

    # -- inference ------------------------------------------------------------------------
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels ``int64 [N]``."""
        self._check_fitted()
        if self._constant is not None:
            return np.full(len(X), self._constant, dtype=np.int64)
        return np.asarray(self._predict(np.asarray(X, dtype=np.float32)), dtype=np.int64)

    @abstractmethod
    def _predict(self, X: np.ndarray) -> np.ndarray: ...

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on ``(X, y)``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__} must be fitted before it predicts")


class WithProba(Learner):
    """Adds class probabilities ``[N, K]`` (:class:`~.capabilities.Probabilistic`)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, K]``."""
        self._check_fitted()
        if self._constant is not None:
            proba = np.zeros((len(X), self.n_classes))
            proba[:, self._constant] = 1.0
            return proba
        return self._predict_proba(np.asarray(X, dtype=np.float32))

    @abstractmethod
    def _predict_proba(self, X: np.ndarray) -> np.ndarray: ...


class WithMargins(Learner):
    """Adds signed margins (:class:`~.capabilities.Margins`)."""

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Signed margins: ``[N]`` for two classes (positive → class 1), else ``[N, K]``."""
        self._check_fitted()
        if self._constant is not None:
            return np.zeros(len(X)) if self.n_classes == 2 else np.zeros((len(X), self.n_classes))
        return self._decision_function(np.asarray(X, dtype=np.float32))

    @abstractmethod
    def _decision_function(self, X: np.ndarray) -> np.ndarray: ...


class WithEmbedding(Learner):
    """Adds features ``φ(x)`` for distance-based strategies (:class:`~.capabilities.Embedding`)."""

    def embed(self, X: np.ndarray) -> np.ndarray:
        """Features ``φ(x)`` ``float32 [N, d]``."""
        return self._embed(np.asarray(X, dtype=np.float32))

    @abstractmethod
    def _embed(self, X: np.ndarray) -> np.ndarray: ...


class WithTorchDecision(Learner):
    """Adds a differentiable decision function (:class:`~.capabilities.Differentiable`)."""

    def torch_decision(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable decision values of a batch: ``[N]`` or ``[N, K]``."""
        self._check_fitted()
        if self._constant is not None:
            zero = x.reshape(x.shape[0], -1).sum(dim=1) * 0.0  # keeps autograd callers working
            return zero if self.n_classes == 2 else zero[:, None].expand(-1, self.n_classes)
        return self._torch_decision(x)

    @abstractmethod
    def _torch_decision(self, x: torch.Tensor) -> torch.Tensor: ...
