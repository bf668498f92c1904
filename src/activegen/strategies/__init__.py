"""Query strategies, registered by name for configs; see :mod:`activegen.strategies.base`."""

from activegen._registry import Registry
from activegen.strategies.base import (
    PrepareContext,
    Query,
    QueryState,
    Strategy,
    check_batch,
    top_k,
)
from activegen.strategies.gaal import GAAL, GAALRetrieve, MixedSchedule, SimpleGAN, synthesize
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
for _cls in (GAAL, SimpleGAN, GAALRetrieve, MixedSchedule):
    STRATEGIES.register(_cls.name)(_cls)

__all__ = [
    "GAAL",
    "STRATEGIES",
    "EntropySampling",
    "GAALRetrieve",
    "LeastConfidence",
    "MarginSampling",
    "MixedSchedule",
    "PrepareContext",
    "Query",
    "QueryState",
    "RandomSampling",
    "SVMActive",
    "SimpleGAN",
    "Strategy",
    "UncertaintySampling",
    "check_batch",
    "synthesize",
    "top_k",
]
