"""The learner contract shared by every task model.

A learner sees images in the one model scale (``float32 [N, C, H, W]`` in ``[0, 1]``) and
offers what strategies need: decision values, probabilities, features for distance-based
strategies, and a differentiable torch decision function so that query synthesis can follow
``∇_x`` of the margin. Learners never choose queries and strategies never train learners.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch

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
    """A task model.

    Subclasses implement ``_fit``, ``decision_function``, ``predict_proba``, ``embed`` and
    ``torch_decision``. ``fit`` always trains from scratch, so that a run is a pure function of
    its labeled set and seed (the loop relies on this to resume and to compare strategies).
    """

    name: ClassVar[str] = "learner"

    def __init__(self, n_classes: int, seed: int = 0) -> None:
        if n_classes < 2:
            raise ValueError(f"a learner needs at least 2 classes, got {n_classes}")
        self.n_classes = n_classes
        self.seed = seed
        self._constant: int | None = None
        self._fitted = False

    # -- training -------------------------------------------------------------------------
    #: Capabilities (:mod:`activegen.models.capabilities`) this learner has the method for
    #: but cannot honour with its settings.
    lacks: tuple[type, ...] = ()

    def fit(self, X: np.ndarray, y: np.ndarray, context: FitContext | None = None) -> Learner:
        """Train from scratch on ``X`` (``float32 [N, C, H, W]``) and labels ``y``;
        ``context`` says which round this is and carries per-example extra features.

        With a single class present (possible with tiny initial sets) the learner predicts it
        everywhere instead of failing, and every point is equally uncertain.
        """
        y = np.asarray(y, dtype=np.int64)
        if len(X) != len(y):
            raise ValueError(f"fit got {len(X)} images but {len(y)} labels")
        if len(y) == 0:
            raise ValueError("fit needs at least one labeled example")
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
        """Predicted label values ``int64 [N]``."""
        self._check_fitted()
        if self._constant is not None:
            return np.full(len(X), self._constant, dtype=np.int64)
        return np.asarray(self.predict_proba(X).argmax(axis=1), dtype=np.int64)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on ``(X, y)``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Signed margins: ``[N]`` for two classes (positive → class 1), else ``[N, K]``."""
        self._check_fitted()
        if self._constant is not None:
            return np.zeros(len(X)) if self.n_classes == 2 else np.zeros((len(X), self.n_classes))
        return self._decision_function(np.asarray(X, dtype=np.float32))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, K]``."""
        self._check_fitted()
        if self._constant is not None:
            proba = np.zeros((len(X), self.n_classes))
            proba[:, self._constant] = 1.0
            return proba
        return self._predict_proba(np.asarray(X, dtype=np.float32))

    def embed(self, X: np.ndarray) -> np.ndarray:
        """Features ``φ(x)`` ``float32 [N, d]`` for distance-based strategies."""
        return self._embed(np.asarray(X, dtype=np.float32))

    def torch_decision(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable decision values of a ``[N, C, H, W]`` batch: ``[N]`` or ``[N, K]``."""
        self._check_fitted()
        if self._constant is not None:
            zero = x.reshape(x.shape[0], -1).sum(dim=1) * 0.0  # keeps autograd callers working
            return zero if self.n_classes == 2 else zero[:, None].expand(-1, self.n_classes)
        return self._torch_decision(x)

    @abstractmethod
    def _decision_function(self, X: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _predict_proba(self, X: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _embed(self, X: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _torch_decision(self, x: torch.Tensor) -> torch.Tensor: ...

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__} must be fitted before it predicts")
