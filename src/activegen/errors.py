"""Named exceptions, so that callers can tell bad input from bugs.

Every error raised for bad user input derives from :class:`ActivegenError` and says what is
wrong and where (a file, a config key, a parameter) before any work starts.
"""

from __future__ import annotations


class ActivegenError(Exception):
    """Base class of every error activegen raises on purpose."""


class DataError(ActivegenError):
    """A data file is missing, truncated or malformed, or a data request cannot be met."""


class ConfigError(ActivegenError):
    """An experiment configuration is invalid."""


class EmptyPoolError(ActivegenError):
    """A strategy was asked for queries but the unlabeled pool has none left."""


class RunFinished(ActivegenError):
    """``ask`` was called on a run with nothing left to ask (budget spent, pool exhausted, no
    label for too many rounds, or stopped); the message says which. ``ActiveLearner.done`` is
    True from then on and ``fit()`` is the final model."""


class UnknownNameError(ConfigError):
    """A strategy, learner, oracle or dataset name is not registered."""
