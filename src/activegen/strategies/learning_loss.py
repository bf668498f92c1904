"""Learning-loss sampling (Yoo & Kweon, CVPR 2019): label the points of highest predicted loss.

The loss-prediction head is trained jointly with the task learner (a deep learner with a
``loss_head``; see :mod:`activegen.models.torch_learner`); this strategy only
ranks. As in the paper, each round ranks a random subset of the unlabeled pool (10,000 points
by default), which keeps the cost bounded on big pools and adds some diversity.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from activegen.models.capabilities import LossPredicting, check_compatible
from activegen.strategies.base import Query, QueryState, Strategy, top_k
from activegen.strategies.feature_maps import VAEAugmented
from activegen.strategies.subsample import SubsampleSettings, SubsampleSize, restrict


class LearningLossSettings(SubsampleSettings):
    """Learning loss ranks a random subset of the unlabeled pool, as the paper does."""

    subsample: SubsampleSize = Field(10_000, ge=1, description=(
        "rank only a seeded random subset of this many available points each round "
        "(none: all; the paper's 10,000 by default)"))


class LearningLoss(Strategy):
    """Highest predicted loss among a random unlabeled subset (Yoo & Kweon 2019).

    ``head_features`` is what the loss head reads besides its block features, in training
    (:meth:`fit_features`) and ranking: nothing here; the VAE part ``alpha·V(x)`` of a
    :class:`~activegen.strategies.feature_maps.VAEAugmented` map for ``vae-learning-loss``.
    """

    name: ClassVar[str] = "learning-loss"
    requires: tuple[type, ...] = (LossPredicting,)
    Settings = LearningLossSettings
    settings: LearningLossSettings

    def __init__(self, settings: Any = None, **values: Any) -> None:
        super().__init__(settings, **values)
        self.head_features: VAEAugmented | None = None

    def fit_features(self, X_train: np.ndarray) -> np.ndarray | None:
        return None if self.head_features is None else self.head_features.fit_features(X_train)

    def query(self, state: QueryState, k: int) -> Query:
        learner = state.learner
        check_compatible(self, learner)  # a learner handed in directly, not by a config
        assert isinstance(learner, LossPredicting)
        state = restrict(state, k, self.settings.subsample)
        candidates = state.available_indices
        extra = (None if self.head_features is None
                 else self.head_features.vae_part(state, state.X_pool)[candidates])
        predicted = learner.predict_loss(state.X_pool[candidates], extra=extra)
        picks = top_k(predicted, candidates, k, state.rng)
        scores = predicted[np.searchsorted(candidates, picks)]
        return Query.from_pool(picks, scores=scores)
