"""Query strategies, registered by name for configs; see :mod:`activegen.strategies.base`."""

from activegen.strategies.badge import BADGE
from activegen.strategies.base import (
    STRATEGIES,
    PrepareContext,
    Query,
    QueryState,
    Strategy,
    check_batch,
    top_k,
)
from activegen.strategies.bayesian import BALD, BatchBALD, MCEntropy, MeanStd, VariationRatios
from activegen.strategies.cold_start import ProbCover, TypiClust
from activegen.strategies.coreset import CoreSet, MedAL, kcenter_greedy, medal_select
from activegen.strategies.feature_maps import TaskFeatures, VAEAugmented, VAEAugmentedSettings
from activegen.strategies.gaal import GAAL, GAALRetrieve, MixedSchedule, SimpleGAN, synthesize
from activegen.strategies.learning_loss import LearningLoss
from activegen.strategies.subsample import Subsample
from activegen.strategies.uncertainty import (
    EntropySampling,
    LeastConfidence,
    MarginSampling,
    RandomSampling,
    SVMActive,
    UncertaintySampling,
)
from activegen.strategies.vae_augmented import VAECoreSet, VAELearningLoss, VAEMedAL

for _cls in (
    # pool uncertainty (GAAL paper's SVMactive among them)
    RandomSampling, UncertaintySampling, SVMActive, LeastConfidence, MarginSampling,
    EntropySampling,
    # query synthesis (GAAL)
    GAAL, SimpleGAN, GAALRetrieve, MixedSchedule,
    # feature-space and task-based (VAE paper), plain and VAE-augmented
    CoreSet, MedAL, BADGE, LearningLoss, VAECoreSet, VAEMedAL, VAELearningLoss,
    # Bayesian (MC dropout)
    BALD, BatchBALD, MeanStd, VariationRatios, MCEntropy,
    # cold start
    TypiClust, ProbCover,
):
    STRATEGIES.register(_cls.name)(_cls)

__all__ = [
    "BADGE",
    "BALD",
    "GAAL",
    "STRATEGIES",
    "BatchBALD",
    "CoreSet",
    "EntropySampling",
    "GAALRetrieve",
    "LearningLoss",
    "LeastConfidence",
    "MarginSampling",
    "MedAL",
    "MixedSchedule",
    "PrepareContext",
    "ProbCover",
    "Query",
    "QueryState",
    "RandomSampling",
    "SVMActive",
    "SimpleGAN",
    "Strategy",
    "Subsample",
    "TaskFeatures",
    "TypiClust",
    "UncertaintySampling",
    "VAEAugmented",
    "VAEAugmentedSettings",
    "VAECoreSet",
    "VAELearningLoss",
    "VAEMedAL",
    "check_batch",
    "kcenter_greedy",
    "medal_select",
    "synthesize",
    "top_k",
]
