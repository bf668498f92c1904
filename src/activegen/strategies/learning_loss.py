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
from activegen.strategies.base import Query, QueryState, Strategy, top_k
from activegen.strategies.feature_maps import VAEAugmented
from activegen.strategies.subsample import check_subsample, restrict


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
    """Highest predicted loss among a random unlabeled subset (Yoo & Kweon 2019).

    Args:
        subsample: rank only a random subset of this many unlabeled points (``None``: all).

    ``head_features`` is what the loss head reads besides its block features, in training
    (:meth:`fit_features`) and ranking: nothing here; the VAE part ``alpha·V(x)`` of a
    :class:`~activegen.strategies.feature_maps.VAEAugmented` map for ``vae-learning-loss``.
    """

    name: ClassVar[str] = "learning-loss"
    requires: ClassVar[tuple[type, ...]] = (LossPredicting,)

    def __init__(self, subsample: int | None = 10_000) -> None:
        self.subsample = check_subsample(subsample)
        self.head_features: VAEAugmented | None = None

    def fit_features(self, X_train: np.ndarray) -> np.ndarray | None:
        return None if self.head_features is None else self.head_features.fit_features(X_train)

    def query(self, state: QueryState, k: int) -> Query:
        learner = loss_head_learner(state, self.name)
        state = restrict(state, k, self.subsample)
        candidates = state.available_indices
        extra = (None if self.head_features is None
                 else self.head_features.vae_part(state, state.X_pool)[candidates])
        predicted = learner.predict_loss(state.X_pool[candidates], extra=extra)
        picks = top_k(predicted, candidates, k, state.rng)
        scores = predicted[np.searchsorted(candidates, picks)]
        return Query.from_pool(picks, scores=scores)
