"""Linear learners on the examples as given: the linear SVM of the GAAL paper and logistic
regression, on feature rows ``[N, d]`` or on images' raw pixels (flattened).

Both wrap scikit-learn for fitting (well-tested solvers) and expose ``w`` and ``b`` as torch
tensors so that query synthesis can differentiate ``w·φ(x) + b`` with ``φ`` = the flattened
example (for images, the pixels in the shared ``[0, 1]`` scale).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import Field
from sklearn.linear_model import LogisticRegression as _SkLogisticRegression
from sklearn.svm import LinearSVC

from activegen._settings import Settings
from activegen.models.base import (
    WithEmbedding,
    WithMargins,
    WithProba,
    WithTorchDecision,
    proba_from_margins,
)
from activegen.models.capabilities import FitContext

#: rows per block of :meth:`_LinearLearner._decision_function`
_DECISION_BLOCK = 512


class LinearSettings(Settings):
    """Settings of a linear learner."""

    C: float = Field(1.0, gt=0, description="inverse regularisation strength")
    max_iter: int = Field(5000, ge=1, description="solver iterations at most")


class _LinearLearner(WithProba, WithMargins, WithEmbedding, WithTorchDecision):
    """Shared code of linear models ``f(x) = W·vec(x) + b``: margins, probabilities (a
    squashing of the margins), the input as features, a torch decision for synthesis (and
    ``torch_features``, the flattened input, for GAAL's manifold diversity), and the weights
    (what a model file exports)."""

    settings: LinearSettings

    coef_: np.ndarray  # [K', D] with K' = 1 for two classes
    intercept_: np.ndarray  # [K']

    def _flat(self, X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), -1)

    def _set_weights(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray) -> None:
        coef = np.asarray(coef, dtype=np.float64)
        intercept = np.asarray(intercept, dtype=np.float64)
        if self.n_classes > 2 and coef.shape[0] == 1:
            # Only two of several classes labeled so far: sklearn returns one hyperplane.
            coef, intercept = np.concatenate([-coef, coef]), np.concatenate([-intercept, intercept])
        if self.n_classes > 2 and len(classes) < self.n_classes:
            # Classes absent from the labeled set get a margin that never wins.
            full_coef = np.zeros((self.n_classes, coef.shape[1]))
            full_b = np.full(self.n_classes, -1e6)
            full_coef[classes] = coef
            full_b[classes] = intercept
            coef, intercept = full_coef, full_b
        self.coef_, self.intercept_ = coef, intercept
        self._w = torch.as_tensor(coef, dtype=torch.float32)
        self._b = torch.as_tensor(intercept, dtype=torch.float32)

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        # In float64 as always, but a block of rows at a time: a 10,000 x 12,288 pool is not
        # copied whole to float64 first (980 MB), which dominated a round's time.
        flat = self._flat(X)
        scores = np.empty((len(flat), self.coef_.shape[0]), dtype=np.float64)
        for start in range(0, len(flat), _DECISION_BLOCK):
            block = flat[start:start + _DECISION_BLOCK].astype(np.float64, copy=False)
            scores[start:start + _DECISION_BLOCK] = block @ self.coef_.T + self.intercept_
        return scores[:, 0] if self.n_classes == 2 else scores

    def _predict(self, X: np.ndarray) -> np.ndarray:
        # the argmax of the squashed margins, as the results have always been computed (a
        # margin within float epsilon of 0 squashes to 0.5 and goes to class 0)
        return self._predict_proba(X).argmax(axis=1)

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        return proba_from_margins(self._decision_function(X))

    def _embed(self, X: np.ndarray) -> np.ndarray:
        return self._flat(X).astype(np.float32, copy=False)

    def _torch_decision(self, x: torch.Tensor) -> torch.Tensor:
        w = self._w.to(device=x.device, dtype=x.dtype)
        b = self._b.to(device=x.device, dtype=x.dtype)
        scores = x.reshape(x.shape[0], -1) @ w.T + b
        return scores[:, 0] if self.n_classes == 2 else scores

    def torch_features(self, x: torch.Tensor) -> torch.Tensor:
        """``φ(x)``: the flattened input, the space the hyperplane lives in."""
        return x.reshape(x.shape[0], -1)

    def linear_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W [K', D], b [K'])`` of the fitted hyperplane(s)."""
        self._check_fitted()
        return self.coef_, self.intercept_


class LinearSVM(_LinearLearner):
    """Linear SVM (hinge loss, one-vs-rest for several classes), as in GAAL and SVMactive.

    The GAAL paper's "γ = 0.001" has no effect on a linear kernel; ``C = 1`` is what it ran.
    Probabilities are a logistic (two classes) or softmax (several) squashing of the margins:
    monotone in the margin, which is all uncertainty sampling needs.
    """

    name: ClassVar[str] = "linear-svm"
    Settings = LinearSettings

    def _fit(self, X: np.ndarray, y: np.ndarray, context: FitContext) -> None:
        model = LinearSVC(C=self.settings.C, loss="hinge", dual=True,
                          max_iter=self.settings.max_iter,
                          random_state=self.seed, tol=1e-4)
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(self._flat(X), y)
        self._set_weights(model.coef_, model.intercept_, model.classes_)
        if self.n_classes == 2 and list(model.classes_) != [0, 1]:  # pragma: no cover
            raise AssertionError("binary LinearSVC must see classes 0 and 1")


class LogisticSettings(LinearSettings):
    """Settings of the logistic regression."""

    max_iter: int = Field(1000, ge=1, description="solver iterations at most")


class LogisticRegression(_LinearLearner):
    """Multinomial logistic regression (L2, lbfgs) on the flattened examples."""

    name: ClassVar[str] = "logistic-regression"
    Settings = LogisticSettings

    def _fit(self, X: np.ndarray, y: np.ndarray, context: FitContext) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        model = _SkLogisticRegression(C=self.settings.C, max_iter=self.settings.max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(self._flat(X), y)
        self._set_weights(model.coef_, model.intercept_, model.classes_)
