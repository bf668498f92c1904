"""Task models (learners) behind one contract; see :mod:`activegen.models.base`."""

from activegen._registry import Registry
from activegen.models.base import Learner, NotFittedError
from activegen.models.linear import LinearSVM, LogisticRegression

LEARNERS: Registry[Learner] = Registry("learner")
LEARNERS.register(LinearSVM.name)(LinearSVM)
LEARNERS.register(LogisticRegression.name)(LogisticRegression)

__all__ = ["LEARNERS", "Learner", "LinearSVM", "LogisticRegression", "NotFittedError"]

# Deep learners (issue #4).
from activegen.models.cnn import SmallCNN  # noqa: E402
from activegen.models.resnet import ResNet18  # noqa: E402
from activegen.models.torch_learner import TorchLearner  # noqa: E402

LEARNERS.register(SmallCNN.name)(SmallCNN)
LEARNERS.register(ResNet18.name)(ResNet18)
__all__ += ["ResNet18", "SmallCNN", "TorchLearner"]
