"""Learning-loss sampling (Yoo & Kweon, CVPR 2019): label the points of highest predicted loss.

The loss-prediction head is trained jointly with the task learner (a deep learner with
``loss_prediction = true``; see :mod:`activegen.models.torch_learner`); this strategy only
ranks. As in the paper, each round ranks a random subset of the unlabeled pool (10,000 points
by default), which keeps the cost bounded on big pools and adds some diversity.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from activegen.errors import ConfigError
from activegen.models.capabilities import LossPredicting, has_capability
from activegen.strategies.base import Query, QueryState, Strategy, check_batch, top_k


def loss_head_learner(state: QueryState, strategy: str) -> Any:
    """The state's learner, checked to have a loss-prediction head."""
    learner = state.learner
    if not has_capability(learner, LossPredicting):
        raise ConfigError(
            f"strategy {strategy!r} needs a learner with a loss-prediction head: use "
            f"'small-cnn' or 'resnet18' with loss_prediction = true (got "
            f"{type(learner).__name__})"
        )
    return learner


class LearningLoss(Strategy):
    """Highest predicted loss among a random unlabeled subset (Yoo & Kweon 2019)."""

    name: ClassVar[str] = "learning-loss"
    requires: ClassVar[tuple[type, ...]] = (LossPredicting,)

    def __init__(self, subsample: int | None = 10_000) -> None:
        if subsample is not None and subsample < 1:
            raise ValueError(f"subsample must be >= 1 (or omitted for all), got {subsample}")
        self.subsample = subsample

    def candidates(self, state: QueryState, k: int) -> np.ndarray:
        """The random unlabeled subset ranked this round (sorted pool indices)."""
        available = check_batch(state, k)
        if self.subsample is None or len(available) <= self.subsample:
            return available
        return np.sort(state.rng.choice(available, size=self.subsample, replace=False))

    def head_extra(self, state: QueryState, indices: np.ndarray) -> np.ndarray | None:
        """Extra features the loss head reads for these pool points (none here)."""
        return None

    def query(self, state: QueryState, k: int) -> Query:
        learner = loss_head_learner(state, self.name)
        candidates = self.candidates(state, k)
        predicted = learner.predict_loss(state.X_pool[candidates],
                                         extra=self.head_extra(state, candidates))
        picks = top_k(predicted, candidates, k, state.rng)
        scores = predicted[np.searchsorted(candidates, picks)]
        return Query.from_pool(picks, scores=scores)

    def params(self) -> dict[str, Any]:
        return {"subsample": self.subsample}
