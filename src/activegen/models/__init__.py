"""Task models (learners) behind one contract; see :mod:`activegen.models.base`."""

from activegen._registry import Registry
from activegen.models.base import Learner, NotFittedError
from activegen.models.cnn import SmallCNN
from activegen.models.linear import LinearSVM, LogisticRegression
from activegen.models.resnet import ResNet18
from activegen.models.self_taught import SelfTaughtSVM
from activegen.models.semi_supervised import LabelSpreadingLearner, LinearProbe
from activegen.models.sklearn_learner import SklearnLearner
from activegen.models.torch_learner import TorchLearner
from activegen.models.torch_module import TorchModuleLearner

LEARNERS: Registry[Learner] = Registry("learner")
for _cls in (LinearSVM, LogisticRegression, SelfTaughtSVM, SmallCNN, ResNet18, SklearnLearner,
             TorchModuleLearner, LinearProbe, LabelSpreadingLearner):
    LEARNERS.register(_cls.name)(_cls)

__all__ = [
    "LEARNERS",
    "LabelSpreadingLearner",
    "Learner",
    "LinearProbe",
    "LinearSVM",
    "LogisticRegression",
    "NotFittedError",
    "ResNet18",
    "SelfTaughtSVM",
    "SklearnLearner",
    "SmallCNN",
    "TorchLearner",
    "TorchModuleLearner",
]
