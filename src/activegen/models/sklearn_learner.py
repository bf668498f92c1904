"""Bring your own model: any scikit-learn classifier as an activegen learner.

:class:`SklearnLearner` wraps an estimator given as an object or as a dotted import path
(``"sklearn.svm.SVC"``, or a class of your own), so a config can name it:
``learner = { name = "sklearn", estimator = "sklearn.svm.SVC", params = { C = 2.0 } }``.
It reads examples as rows: feature rows ``[N, d]`` as given, images ``[N, C, H, W]`` flattened
to ``[N, C·H·W]``. Margins come from the estimator's ``decision_function`` (or
log-probabilities when it has none), probabilities from its ``predict_proba`` (or a softmax of
its margins). Features for distance-based strategies (``embed``) are what the classifier
itself sees: its input, or, for a :class:`~sklearn.pipeline.Pipeline`, the output of every
step before the final estimator (a ``StandardScaler + SVC`` pipeline's core-set measures in
standardised units, not in the raw ones where the largest feature decides every distance).
It is not differentiable in torch, so synthesis strategies (GAAL) refuse it at config time.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from activegen._settings import Settings
from activegen.errors import ConfigError
from activegen.models.base import WithEmbedding, WithMargins, WithProba, proba_from_margins
from activegen.models.capabilities import FitContext


def resolve_estimator(estimator: Any, params: dict[str, Any] | None = None) -> Any:
    """An unfitted scikit-learn classifier from an object, a class or a dotted path.

    Raises:
        ConfigError: the path does not import, the object is not a classifier, or it offers
            neither ``decision_function`` nor ``predict_proba``.
    """
    from sklearn.base import clone, is_classifier

    obj = estimator
    if isinstance(estimator, str):
        module_name, _, attr = estimator.rpartition(".")
        if not module_name:
            raise ConfigError(f"learner 'sklearn': estimator {estimator!r} must be a dotted "
                              "path such as 'sklearn.svm.SVC'")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"learner 'sklearn': cannot import estimator {estimator!r} "
                              f"({exc})") from None
    try:
        if isinstance(obj, type):
            obj = obj(**(params or {}))
        else:
            obj = clone(obj)
            if params:
                obj.set_params(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"learner 'sklearn': estimator {estimator!r} with params "
                          f"{params or {}}: {exc}") from None
    if not is_classifier(obj):
        raise ConfigError(f"learner 'sklearn': {estimator!r} is not a scikit-learn classifier "
                          "(a learner must predict classes)")
    if not (hasattr(obj, "decision_function") or hasattr(obj, "predict_proba")):
        raise ConfigError(f"learner 'sklearn': {estimator!r} has neither decision_function "
                          "nor predict_proba")
    return obj


def _flat(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float32).reshape(len(X), -1)


class SklearnSettings(Settings):
    """Settings of a scikit-learn classifier as a learner."""

    estimator: Any = Field("sklearn.linear_model.LogisticRegression",
                           description="an estimator object or class, or a dotted import path")
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "constructor parameters (for a class or a path) or set_params values"))


class SklearnLearner(WithProba, WithMargins, WithEmbedding):
    """A scikit-learn classifier behind the learner contract (see the module docstring).

    ``seed`` is given to the estimator as ``random_state`` when it has one left unset. Not
    differentiable in torch, so synthesis strategies refuse it.
    """

    name: ClassVar[str] = "sklearn"
    Settings = SklearnSettings
    settings: SklearnSettings

    def __init__(self, n_classes: int, seed: int = 0, settings: Any = None,
                 **values: Any) -> None:
        super().__init__(n_classes, seed, settings, **values)
        estimator = self.settings.estimator
        self.template = resolve_estimator(estimator, self.settings.params)
        self.estimator_name = estimator if isinstance(estimator, str) else type(
            self.template).__name__
        self.estimator: Any = None

    def _fit(self, X: np.ndarray, y: np.ndarray, context: FitContext) -> None:
        from sklearn.base import clone

        est = clone(self.template)
        if est.get_params().get("random_state", 0) is None:
            est.set_params(random_state=self.seed)
        est.fit(_flat(X), y)
        self.estimator = est

    @property
    def _classes(self) -> np.ndarray:
        return np.asarray(self.estimator.classes_, dtype=np.int64)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(_flat(X)), dtype=np.int64)

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        classes = self._classes
        if hasattr(self.estimator, "decision_function"):
            d = np.asarray(self.estimator.decision_function(_flat(X)), dtype=np.float64)
            if d.ndim == 1:  # two fitted classes: the margin toward classes[1]
                if self.n_classes == 2:
                    return d
                d = np.stack([-d, d], axis=1)
            full = np.full((len(X), self.n_classes), d.min() - 1.0)
            full[:, classes] = d
            return full
        logp = np.log(np.clip(self._predict_proba(X), 1e-12, 1.0))
        return logp[:, 1] - logp[:, 0] if self.n_classes == 2 else logp

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self.estimator, "predict_proba"):
            return proba_from_margins(self._decision_function(X))
        proba = np.zeros((len(X), self.n_classes))
        proba[:, self._classes] = self.estimator.predict_proba(_flat(X))
        return proba

    def _embed(self, X: np.ndarray) -> np.ndarray:
        from sklearn.pipeline import Pipeline

        if isinstance(self.template, Pipeline) and len(self.template.steps) > 1:
            self._check_fitted()
            if self.estimator is not None:
                return np.asarray(self.estimator[:-1].transform(_flat(X)), dtype=np.float32)
        return _flat(X)
