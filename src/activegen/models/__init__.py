"""Task models (learners) behind one contract; see :mod:`activegen.models.base`."""

from activegen._registry import Registry
from activegen.models.base import Learner, NotFittedError
from activegen.models.linear import LinearSVM, LogisticRegression
from activegen.models.self_taught import SelfTaughtSVM

LEARNERS: Registry[Learner] = Registry("learner")
LEARNERS.register(LinearSVM.name)(LinearSVM)
LEARNERS.register(LogisticRegression.name)(LogisticRegression)
LEARNERS.register(SelfTaughtSVM.name)(SelfTaughtSVM)

__all__ = ["LEARNERS", "Learner", "LinearSVM", "LogisticRegression", "NotFittedError",
           "SelfTaughtSVM"]
