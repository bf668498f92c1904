"""Subsampling: rank only a seeded random subset of the available pool (modelled on
small-text's ``SubsamplingQueryStrategy``).

Large pools are commonly ranked on a random subset per round (LL4AL ranks 10,000 points;
the GAAL paper mentions it for SVMactive). :func:`restrict` is the one implementation:
strategies with a ``subsample`` setting call it first, and :class:`Subsample` wraps any pool
strategy with it. The subset is drawn with the round's ``state.rng`` (after the batch is
checked, before anything else draws), sorted, and only when the pool holds more available
points than ``n``; the points outside it are hidden by marking them queried in a copy of the
state, so the inner strategy's pool indices need no mapping back. Strategies that read
queried points as covered (``typiclust``, ``probcover``) see the hidden ones as covered too.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import numpy as np
from pydantic import Field

from activegen._settings import Settings
from activegen.strategies.base import PrepareContext, Query, QueryState, Strategy, check_batch

#: The ``subsample`` setting of a pool strategy: rank only a seeded random subset of this many
#: available points each round (None: all of them).
SubsampleSize = Annotated[int | None, Field(ge=1, description=(
    "rank only a seeded random subset of this many available points each round (none: all)"))]


class SubsampleSettings(Settings):
    """The one setting every subsampling pool strategy shares."""

    subsample: SubsampleSize = None


def restrict(state: QueryState, k: int, n: int | None) -> QueryState:
    """``state`` with only a seeded random ``n`` of its available points left available.

    Validates ``k`` and raises ``EmptyPoolError`` on an empty pool first; returns ``state``
    itself when ``n`` is None or no larger than what is available (no draw is made then).
    """
    candidates = check_batch(state, k)
    if n is None or len(candidates) <= n:
        return state
    subset = np.sort(state.rng.choice(candidates, n, replace=False))
    queried = np.ones_like(state.queried)
    queried[subset] = False
    return dataclasses.replace(state, queried=queried)


class Subsample(Strategy):
    """Any pool strategy, ranking only a seeded random subset of ``n`` available points.

    Args:
        inner: the pool strategy wrapped (its ``prepare``, ``fit_features`` and ``requires``
            are its own).
        n: subset size per round.
    """

    def __init__(self, inner: Strategy, n: int) -> None:
        if inner.synthesizes:
            raise ValueError(f"subsample wraps pool strategies; {inner.name!r} synthesizes")
        if n < 1:
            raise ValueError(f"Subsample needs a subset size n >= 1, got {n}")
        super().__init__()
        self.inner = inner
        self.n = n
        self.name = inner.name  # type: ignore[misc]
        self.requires = inner.requires  # type: ignore[misc]

    def prepare(self, context: PrepareContext) -> None:
        self.inner.prepare(context)

    def fit_features(self, X_train: np.ndarray) -> np.ndarray | None:
        return self.inner.fit_features(X_train)

    def query(self, state: QueryState, k: int) -> Query:
        return self.inner.query(restrict(state, k, self.n), k)


__all__ = ["Subsample", "SubsampleSettings", "SubsampleSize", "restrict"]
