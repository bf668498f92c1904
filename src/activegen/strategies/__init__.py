"""Query strategies, registered by name for configs; see :mod:`activegen.strategies.base`."""

from activegen._registry import Registry
from activegen.strategies.badge import BADGE
from activegen.strategies.base import (
    PrepareContext,
    Query,
    QueryState,
    Strategy,
    check_batch,
    top_k,
)
from activegen.strategies.coreset import CoreSet, MedAL, kcenter_greedy, medal_select
from activegen.strategies.uncertainty import (
    EntropySampling,
    LeastConfidence,
    MarginSampling,
    RandomSampling,
    SVMActive,
    UncertaintySampling,
)

STRATEGIES: Registry[Strategy] = Registry("strategy")
for _cls in (RandomSampling, UncertaintySampling, SVMActive, LeastConfidence, MarginSampling,
             EntropySampling):
    STRATEGIES.register(_cls.name)(_cls)
for _cls in (CoreSet, MedAL, BADGE):
    STRATEGIES.register(_cls.name)(_cls)

__all__ = [
    "BADGE",
    "STRATEGIES",
    "CoreSet",
    "EntropySampling",
    "LeastConfidence",
    "MarginSampling",
    "MedAL",
    "PrepareContext",
    "Query",
    "QueryState",
    "RandomSampling",
    "SVMActive",
    "Strategy",
    "UncertaintySampling",
    "check_batch",
    "kcenter_greedy",
    "medal_select",
    "top_k",
]

# Learning loss and VAE-augmented strategies (issue #4).
from activegen.strategies.learning_loss import LearningLoss  # noqa: E402
from activegen.strategies.vae_augmented import (  # noqa: E402
    VAECoreSet,
    VAELearningLoss,
    VAEMedAL,
)

for _cls in (LearningLoss, VAELearningLoss, VAECoreSet, VAEMedAL):
    STRATEGIES.register(_cls.name)(_cls)
__all__ += ["LearningLoss", "VAECoreSet", "VAELearningLoss", "VAEMedAL"]
