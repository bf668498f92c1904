"""Bring your own model: any scikit-learn classifier as an activegen learner.

:class:`SklearnLearner` wraps an estimator given as an object or as a dotted import path
(``"sklearn.svm.SVC"``, or a class of your own), so a config can name it:
``learner = { name = "sklearn", estimator = "sklearn.svm.SVC", params = { C = 2.0 } }``; a
path outside scikit-learn needs its package in ``allow_imports`` (a config that runs code of
its own says so: :mod:`activegen.models.dotted`).
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

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from activegen._settings import Settings
from activegen.errors import ConfigError
from activegen.models.base import WithEmbedding, WithMargins, WithProba, proba_from_margins
from activegen.models.capabilities import FitContext
from activegen.models.dotted import check_arguments, check_prefixes, import_path

#: where an estimator's import path may point without ``allow_imports``
DEFAULT_ESTIMATOR_PACKAGES = ("sklearn",)
_OWNER = "learner 'sklearn'"


def resolve_estimator(estimator: Any, params: dict[str, Any] | None = None,
                      allow_imports: Sequence[str] = ()) -> Callable[[], Any]:
    """A maker of unfitted scikit-learn classifiers from an object, a class or a dotted path,
    checked without calling anything (:mod:`activegen.models.dotted`): a path is imported only
    inside scikit-learn or ``allow_imports``; a class must be a classifier
    (``ClassifierMixin``) with ``decision_function`` or ``predict_proba`` whose constructor
    takes ``params``; it is called only when the maker is.

    Raises:
        ConfigError: the path is not trusted or does not import, the class or object is not a
            classifier, offers neither ``decision_function`` nor ``predict_proba``, or its
            constructor does not take ``params``.
    """
    from sklearn.base import ClassifierMixin, clone, is_classifier

    params = dict(params or {})
    obj = estimator
    if isinstance(estimator, str):
        obj = import_path(estimator, DEFAULT_ESTIMATOR_PACKAGES, allow_imports, _OWNER,
                          "estimator")
    if isinstance(obj, type):
        if not issubclass(obj, ClassifierMixin):
            raise ConfigError(f"{_OWNER}: {estimator!r} is not a scikit-learn classifier "
                              "(a learner must predict classes)")
        if not (hasattr(obj, "decision_function") or hasattr(obj, "predict_proba")):
            raise ConfigError(f"{_OWNER}: {estimator!r} has neither decision_function nor "
                              "predict_proba")
        check_arguments(obj, params, _OWNER, f"estimator {estimator!r}")
        return functools.partial(_construct, obj, params, estimator)
    try:  # an object the caller built in Python: a copy, never the object itself
        template = clone(obj)
        if params:
            template.set_params(**params)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{_OWNER}: estimator {estimator!r} with params {params}: "
                          f"{exc}") from None
    if not is_classifier(template):
        raise ConfigError(f"{_OWNER}: {estimator!r} is not a scikit-learn classifier "
                          "(a learner must predict classes)")
    if not (hasattr(template, "decision_function") or hasattr(template, "predict_proba")):
        raise ConfigError(f"{_OWNER}: {estimator!r} has neither decision_function nor "
                          "predict_proba")
    return functools.partial(clone, template)


def _construct(cls: type, params: dict[str, Any], named: Any) -> Any:
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{_OWNER}: estimator {named!r} with params {params}: "
                          f"{exc}") from None


def _flat(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float32).reshape(len(X), -1)


class SklearnSettings(Settings):
    """Settings of a scikit-learn classifier as a learner."""

    estimator: Any = Field("sklearn.linear_model.LogisticRegression",
                           description="an estimator object or class, or a dotted import path")
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "constructor parameters (for a class or a path) or set_params values"))
    allow_imports: list[str] = Field(default_factory=list, description=(
        "packages besides sklearn that estimator's path may import (e.g. [\"mypackage\"]); "
        "importing runs their code and fitting calls the class: list only code you trust"))

    @field_validator("allow_imports")
    @classmethod
    def _trusted_prefixes(cls, value: list[str]) -> list[str]:
        return check_prefixes(value)


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
        # checked now, called at the first fit: building a learner (a config's validation
        # does) calls no estimator code
        self._make = resolve_estimator(estimator, self.settings.params,
                                       self.settings.allow_imports)
        self.estimator_name = estimator if isinstance(estimator, str) else getattr(
            estimator, "__name__", type(estimator).__name__)
        self.estimator: Any = None

    @functools.cached_property
    def template(self) -> Any:
        """The unfitted estimator each fit clones (made on first use)."""
        return self._make()

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
