"""Random sampling and uncertainty sampling (SVMactive, least confidence, margin, entropy).

Each measure is a pure function from the learner's outputs to a score where higher means
more uncertain; the strategy ranks the available pool points by it (score, then rank).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from activegen.models.capabilities import Margins, Probabilistic
from activegen.strategies.base import Query, QueryState, Strategy, check_batch, top_k
from activegen.strategies.subsample import SubsampleSettings, restrict

Measure = Literal["auto", "distance", "least-confidence", "margin", "entropy"]
MEASURES: tuple[str, ...] = ("auto", "distance", "least-confidence", "margin", "entropy")


def hyperplane_distance_scores(decision: np.ndarray) -> np.ndarray:
    """SVMactive: ``-|w·φ(x) + b|``, so the point nearest the hyperplane scores highest."""
    if decision.ndim != 1:
        raise ValueError("distance to the hyperplane needs binary decision values [N]")
    return -np.abs(decision)


def least_confidence_scores(proba: np.ndarray) -> np.ndarray:
    """``1 - max_c p(c|x)``."""
    return 1.0 - proba.max(axis=1)


def margin_scores(proba: np.ndarray) -> np.ndarray:
    """``-(p_top1 - p_top2)``: a small gap between the two likeliest classes is uncertain."""
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    return -(top2[:, 1] - top2[:, 0])


def entropy_scores(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-Σ p log p`` (natural log; 0·log 0 = 0)."""
    p = np.clip(proba, 1e-12, 1.0)
    return -(proba * np.log(p)).sum(axis=1)


def uncertainty_scores(learner: Any, X: np.ndarray, measure: str, n_classes: int) -> np.ndarray:
    """Score ``X`` by ``measure``; ``auto`` = hyperplane distance for two classes, else margin."""
    if measure == "auto":
        measure = "distance" if n_classes == 2 else "margin"
    if measure == "distance":
        decision = learner.decision_function(X)
        if decision.ndim == 2:  # several classes: distance between the two best margins
            top2 = np.partition(decision, -2, axis=1)[:, -2:]
            return -(top2[:, 1] - top2[:, 0])
        return hyperplane_distance_scores(decision)
    proba = learner.predict_proba(X)
    if measure == "least-confidence":
        return least_confidence_scores(proba)
    if measure == "margin":
        return margin_scores(proba)
    if measure == "entropy":
        return entropy_scores(proba)
    raise ValueError(f"unknown uncertainty measure {measure!r}; known: {', '.join(MEASURES)}")


class RandomSampling(Strategy):
    """Passive baseline: a uniform random batch of the unlabeled pool."""

    name: ClassVar[str] = "random"

    def query(self, state: QueryState, k: int) -> Query:
        available = check_batch(state, k)
        picks = state.rng.choice(available, size=min(k, len(available)), replace=False)
        return Query.from_pool(picks)


class UncertaintySettings(SubsampleSettings):
    """Which uncertainty to rank by."""

    measure: Measure = Field("auto", description=(
        "distance (to the hyperplane; SVMactive), least-confidence, margin, entropy, or auto "
        "(distance for two classes, margin for more)"))


#: what each measure reads from the learner
_READS: dict[str, tuple[type, ...]] = {
    "auto": (Margins, Probabilistic), "distance": (Margins,),
    "least-confidence": (Probabilistic,), "margin": (Probabilistic,),
    "entropy": (Probabilistic,)}


class UncertaintySampling(Strategy):
    """Query the pool points the learner is least sure of (SVMactive for a binary SVM).

    ``subsample`` ranks only a random subset of the available points (the common practice the
    GAAL paper mentions for large pools).
    """

    name: ClassVar[str] = "uncertainty"
    Settings = UncertaintySettings
    settings: UncertaintySettings
    #: the measure of the subclasses that fix one
    measure: ClassVar[str | None] = None

    @property
    def requires(self) -> tuple[type, ...]:  # type: ignore[override]
        return _READS[self._measure]

    @property
    def _measure(self) -> str:
        return type(self).measure or self.settings.measure

    def query(self, state: QueryState, k: int) -> Query:
        state = restrict(state, k, self.settings.subsample)
        candidates = state.available_indices
        scores = uncertainty_scores(state.learner, state.X_pool[candidates], self._measure,
                                    state.n_classes)
        picks = top_k(scores, candidates, k, state.rng)
        order = np.searchsorted(candidates, picks)
        return Query.from_pool(picks, scores=scores[order])


class SVMActive(UncertaintySampling):
    """SVMactive (Tong & Koller): the pool points nearest the SVM's hyperplane."""

    name: ClassVar[str] = "svm-active"
    Settings = SubsampleSettings
    measure = "distance"


class LeastConfidence(UncertaintySampling):
    """Uncertainty sampling by least confidence, ``1 - max p``."""

    name: ClassVar[str] = "least-confidence"
    Settings = SubsampleSettings
    measure = "least-confidence"


class MarginSampling(UncertaintySampling):
    """Uncertainty sampling by the gap between the two likeliest classes."""

    name: ClassVar[str] = "margin"
    Settings = SubsampleSettings
    measure = "margin"


class EntropySampling(UncertaintySampling):
    """Uncertainty sampling by predictive entropy."""

    name: ClassVar[str] = "entropy"
    Settings = SubsampleSettings
    measure = "entropy"
