"""The oracle contract: label a query, or abstain (``-1``), never choose and never train.

The same contract serves the pool's ground truth (benchmarks), an expert model, and a person
in a browser, so a strategy can be moved from a benchmark to a labeling session unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Self

import numpy as np

from activegen._labels import ABSTAIN
from activegen._registry import Registry
from activegen._settings import BuildContext, NoSettings, Settings
from activegen.data.dataset import Dataset
from activegen.errors import ActivegenError
from activegen.strategies.base import Query

__all__ = ["ABSTAIN", "ORACLES", "Oracle", "OracleError", "PoolOracle"]


class OracleError(ActivegenError):
    """An oracle cannot label this kind of query."""


class Oracle(ABC):
    """Labels queries."""

    name: ClassVar[str] = "oracle"
    Settings: ClassVar[type[Settings]] = NoSettings

    @classmethod
    def from_settings(cls, settings: Settings, context: BuildContext) -> Self:
        """Build from validated settings and the context (its ``pool``, seed, cache)."""
        if not isinstance(context.pool, Dataset):
            raise ValueError(f"oracle {cls.name!r} needs the pool (BuildContext.pool)")
        return cls._build(settings, context)

    @classmethod
    def _build(cls, settings: Settings, context: BuildContext) -> Self:
        return cls(context.pool)  # type: ignore[call-arg]

    @abstractmethod
    def label(self, query: Query) -> np.ndarray:
        """Labels ``int64 [len(query)]``; ``ABSTAIN`` (-1) where the oracle cannot tell."""


class PoolOracle(Oracle):
    """The pool's ground truth: the oracle of every pool-based benchmark."""

    name: ClassVar[str] = "pool"

    def __init__(self, pool: Dataset | np.ndarray) -> None:
        labels = pool.y if isinstance(pool, Dataset) else pool
        self.y_pool = np.asarray(labels, dtype=np.int64)

    def label(self, query: Query) -> np.ndarray:
        if query.is_synthesized:
            raise OracleError(
                "the pool oracle knows only the pool's labels and cannot label synthesized "
                "images; use an expert-model or human oracle for synthesis strategies"
            )
        idx = np.asarray(query.indices, dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self.y_pool)):
            raise OracleError(f"query indices outside the pool of {len(self.y_pool)}")
        return self.y_pool[idx].copy()


#: Oracles by name (filled by :mod:`activegen.oracles`; defined here so that an oracle that
#: wraps another by name, ``noisy``, needs no import of the package that registers it).
ORACLES: Registry[Oracle] = Registry("oracle")
