"""Stopping criteria: when has active learning stopped paying for its labels?

Each criterion is a small stateful object fed one round at a time (:class:`Observation`: the
round, the labels so far, and the current model's predictions and probabilities on a fixed
unlabeled *stop set*); :meth:`StoppingCriterion.update` returns whether it fires now, and
``fired_round`` keeps the first round at which it did.

- ``stabilizing-predictions`` (Bloodgood & Vijay-Shanker 2009): Cohen's κ between successive
  models' predictions on the stop set is ≥ ``threshold`` (0.99) for ``window`` consecutive
  checks;
- ``max-uncertainty`` (Zhu et al. 2008): the largest predictive entropy on the stop set is at
  most ``threshold`` (the most uncertain point, which uncertainty sampling would ask next);
- ``overall-uncertainty`` (Zhu et al. 2008): the mean predictive entropy is at most
  ``threshold``;
- ``classification-change`` (Zhu et al. 2008): at most ``threshold`` (a fraction; 0 = none) of
  the stop set changes its predicted class between successive rounds;
- ``budget``: the labels reach ``budget``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from activegen.errors import ConfigError


@dataclass(frozen=True)
class Observation:
    """One round, as a stopping criterion sees it."""

    round: int
    n_labels: int
    predictions: np.ndarray
    proba: np.ndarray | None = None


def cohens_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's κ of two label vectors: ``(p_o - p_e) / (1 - p_e)``; 1.0 when both are one
    identical constant (``p_e = 1``)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"kappa needs two equal-length 1-D label vectors, got {a.shape}, "
                         f"{b.shape}")
    observed = float(np.mean(a == b))
    labels = np.union1d(a, b)
    expected = float(sum(np.mean(a == c) * np.mean(b == c) for c in labels))
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def _entropy(proba: np.ndarray) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    return -(p * np.log(np.clip(p, 1e-300, 1.0))).sum(axis=1)


class StoppingCriterion(ABC):
    """Fed one :class:`Observation` per round; remembers the first round it fired."""

    name: ClassVar[str] = "criterion"

    def __init__(self) -> None:
        self.fired_round: int | None = None
        self.fired_labels: int | None = None

    def update(self, obs: Observation) -> bool:
        """Whether the criterion fires at this round (records the first firing)."""
        fired = self._check(obs)
        if fired and self.fired_round is None:
            self.fired_round, self.fired_labels = obs.round, obs.n_labels
        return fired

    @abstractmethod
    def _check(self, obs: Observation) -> bool: ...


class _Successive(StoppingCriterion):
    """Compares each round's predictions with the previous round's."""

    def __init__(self) -> None:
        super().__init__()
        self._previous: np.ndarray | None = None

    def _pair(self, obs: Observation) -> tuple[np.ndarray, np.ndarray] | None:
        previous, self._previous = self._previous, np.asarray(obs.predictions).copy()
        if previous is None:
            return None
        if previous.shape != self._previous.shape:
            raise ValueError(f"{self.name}: the stop set changed size ({previous.shape} → "
                             f"{self._previous.shape})")
        return previous, self._previous


class StabilizingPredictions(_Successive):
    """κ between successive models ≥ ``threshold`` for ``window`` consecutive checks."""

    name: ClassVar[str] = "stabilizing-predictions"

    def __init__(self, threshold: float = 0.99, window: int = 3) -> None:
        super().__init__()
        if not -1.0 <= threshold <= 1.0 or window < 1:
            raise ValueError(f"need threshold in [-1, 1] and window >= 1, got {threshold}, "
                             f"{window}")
        self.threshold, self.window = threshold, window
        self._streak = 0
        self.kappas: list[float] = []

    def _check(self, obs: Observation) -> bool:
        pair = self._pair(obs)
        if pair is None:
            return False
        kappa = cohens_kappa(*pair)
        self.kappas.append(kappa)
        self._streak = self._streak + 1 if kappa >= self.threshold else 0
        return self._streak >= self.window


class ClassificationChange(_Successive):
    """At most ``threshold`` of the stop set changes class between successive rounds."""

    name: ClassVar[str] = "classification-change"

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a fraction in [0, 1], got {threshold}")
        self.threshold = threshold

    def _check(self, obs: Observation) -> bool:
        pair = self._pair(obs)
        return pair is not None and float(np.mean(pair[0] != pair[1])) <= self.threshold


class _Uncertainty(StoppingCriterion):
    def __init__(self, threshold: float) -> None:
        super().__init__()
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0 (an entropy in nats), got {threshold}")
        self.threshold = threshold

    def _entropies(self, obs: Observation) -> np.ndarray:
        if obs.proba is None:
            raise ValueError(f"{self.name} needs the stop set's class probabilities")
        return _entropy(obs.proba)


class MaxUncertainty(_Uncertainty):
    """The largest entropy on the stop set is at most ``threshold``."""

    name: ClassVar[str] = "max-uncertainty"

    def __init__(self, threshold: float = 0.1) -> None:
        super().__init__(threshold)

    def _check(self, obs: Observation) -> bool:
        return float(self._entropies(obs).max()) <= self.threshold


class OverallUncertainty(_Uncertainty):
    """The mean entropy on the stop set is at most ``threshold``."""

    name: ClassVar[str] = "overall-uncertainty"

    def __init__(self, threshold: float = 0.05) -> None:
        super().__init__(threshold)

    def _check(self, obs: Observation) -> bool:
        return float(self._entropies(obs).mean()) <= self.threshold


class Budget(StoppingCriterion):
    """The labels reach ``budget``."""

    name: ClassVar[str] = "budget"

    def __init__(self, budget: int) -> None:
        super().__init__()
        if budget < 1:
            raise ValueError(f"budget must be >= 1, got {budget}")
        self.budget = budget

    def _check(self, obs: Observation) -> bool:
        return obs.n_labels >= self.budget


CRITERIA: dict[str, type[StoppingCriterion]] = {
    cls.name: cls for cls in (StabilizingPredictions, MaxUncertainty, OverallUncertainty,
                              ClassificationChange, Budget)
}


def build_criterion(name: str, params: dict[str, Any] | None = None) -> StoppingCriterion:
    """A criterion by name, its parameters checked (a :class:`ConfigError` names the bad one)."""
    if name not in CRITERIA:
        raise ConfigError(f"unknown stopping criterion {name!r}; known: {', '.join(CRITERIA)}")
    try:
        return CRITERIA[name](**(params or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"stopping criterion {name!r}: {exc}") from None
