"""The strategy contract: read the state, return a :class:`Query`; never train, never label.

A pool strategy returns indices into the pool; a synthesis strategy returns new images (with
the latent codes that made them). The loop owns training, labeling and bookkeeping, so every
strategy can be tested on its own against brute force.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from activegen._registry import Registry
from activegen._settings import BuildContext, NoSettings, Settings, resolve
from activegen.data.dataset import Dataset
from activegen.errors import EmptyPoolError
from activegen.models.base import Learner


@dataclass
class QueryState:
    """What a strategy may read when it chooses a batch.

    Attributes:
        X_pool: every pool example in the model scale: feature rows ``float32 [N, d]``, or
            images ``float32 [N, C, H, W]`` in ``[0, 1]``.
        queried: ``bool [N]``, True for pool points already asked (labeled or abstained).
        labeled_indices: pool indices with a label, in the order they were labeled.
        learner: the learner fitted on everything labeled so far.
        n_classes: number of classes.
        rng: this round's random generator (derived from the run's seed and the round).
        round: the round number, 0 for the first query.
        X_extra: labeled examples that are not in the pool (synthesized queries), shaped like
            ``X_pool``'s rows.
        y_extra: their labels ``[M]``.
        labels: the labels of ``labeled_indices`` (``int64``, aligned with them; abstentions
            are not labeled, so never here). ``None`` where the caller has none to give;
            a strategy that needs them (the class-conditional VAE) refuses that.
        X_refused: synthesized queries the oracle refused, ``[R, C, H, W]`` (with ``X_extra``,
            every answer a synthesizing strategy got: which of its images could be named).
    """

    X_pool: np.ndarray
    queried: np.ndarray
    labeled_indices: np.ndarray
    learner: Learner
    n_classes: int
    rng: np.random.Generator
    round: int = 0
    X_extra: np.ndarray | None = None
    y_extra: np.ndarray | None = None
    labels: np.ndarray | None = None
    X_refused: np.ndarray | None = None

    @property
    def available_indices(self) -> np.ndarray:
        """Pool indices that may still be queried."""
        return np.flatnonzero(~self.queried)


@dataclass(frozen=True)
class Query:
    """A batch to be labeled: pool indices, or synthesized samples with their latents."""

    indices: np.ndarray
    samples: np.ndarray | None = None
    latents: np.ndarray | None = None
    scores: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_pool(cls, indices: np.ndarray, scores: np.ndarray | None = None, **meta: Any) -> Query:
        return cls(np.asarray(indices, dtype=np.int64), None, None, scores, dict(meta))

    @classmethod
    def synthesized(
        cls,
        samples: np.ndarray,
        latents: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        **meta: Any,
    ) -> Query:
        return cls(np.empty(0, dtype=np.int64), np.asarray(samples, dtype=np.float32),
                   latents, scores, dict(meta))

    @property
    def is_synthesized(self) -> bool:
        return self.samples is not None

    def __len__(self) -> int:
        return len(self.samples) if self.samples is not None else len(self.indices)


@dataclass(frozen=True)
class PrepareContext:
    """What a strategy may use once, before the first round (e.g. to train a generator).

    ``artifact_seed`` is shared by every run of an experiment, so that one generator or VAE
    (cached under ``cache_dir``) serves every strategy and seed.
    """

    pool: Dataset
    cache_dir: Path
    device: str = "cpu"
    artifact_seed: int = 0
    show_progress: bool = False


class Strategy(ABC):
    """Chooses what to label next.

    Args:
        settings: the strategy's :attr:`Settings` (or a mapping), or the same as keywords.
    """

    name: ClassVar[str] = "strategy"
    Settings: ClassVar[type[Settings]] = NoSettings
    #: True for strategies whose queries are synthesized images (they need an oracle that can
    #: label images no dataset holds).
    synthesizes: ClassVar[bool] = False
    #: The learner capabilities (protocols of :mod:`activegen.models.capabilities`) this
    #: strategy reads (an instance may need more with some settings);
    #: :func:`~activegen.models.capabilities.check_compatible` refuses a learner without them
    #: before any work.
    requires: tuple[type, ...] = ()
    #: True for strategies that work on the pool's images themselves (a generator or a VAE
    #: trained on them): they cannot run on feature vectors
    needs_images: ClassVar[bool] = False

    def __init__(self, settings: Settings | Mapping[str, Any] | None = None,
                 **values: Any) -> None:
        self.settings = resolve(type(self).Settings, settings, values, f"strategy {self.name!r}")

    @classmethod
    def from_settings(cls, settings: Settings, context: BuildContext) -> Self:
        """Build from validated settings and the framework's context."""
        return cls(settings)

    def prepare(self, context: PrepareContext) -> None:  # noqa: B027 - optional hook
        """Build what the strategy needs once per run (default: nothing)."""

    @abstractmethod
    def query(self, state: QueryState, k: int) -> Query:
        """Return a batch of at most ``k`` queries.

        Raises:
            EmptyPoolError: a pool strategy has nothing left to choose from.
        """

    def provenance(self) -> list[dict[str, Any]]:
        """The trained artefacts this strategy uses after :meth:`prepare` (default: none),
        each ``{"kind", "key"}`` plus ``"trained_on"`` (the machine record of its trainer)
        where known. A run's manifest keeps them: a cached artefact reused on another kind of
        machine gives its runs float results neither machine computes alone."""
        return []

    def fit_features(self, X_train: np.ndarray) -> np.ndarray | None:
        """Per-example extra features the engine hands the learner's fit as
        ``FitContext.extra`` (default: none).

        The VAE-augmented learning loss gives the loss head the VAE features of the training
        images, so that the head is trained on them jointly (as in the paper).
        """
        return None


#: Strategies by name (filled by :mod:`activegen.strategies`; defined here so that a strategy
#: composed of others by name, ``mixed``, needs no import of the package that registers it).
STRATEGIES: Registry[Strategy] = Registry("strategy")

def check_batch(state: QueryState, k: int) -> np.ndarray:
    """Validate ``k`` and return the available pool indices (raising on an empty pool)."""
    if k < 1:
        raise ValueError(f"a query needs k >= 1, got {k}")
    available = state.available_indices
    if len(available) == 0:
        raise EmptyPoolError("the unlabeled pool is empty: every pool point has been queried")
    return available


def top_k(
    scores: np.ndarray, candidates: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """The ``k`` candidates of highest score; exact ties broken at random (seeded).

    ``scores[i]`` belongs to ``candidates[i]``. Random tie-breaking matters: with a constant
    learner every score ties, and a stable sort would always pick the lowest indices.
    """
    k = min(k, len(candidates))
    jitter = rng.random(len(candidates))
    order = np.lexsort((jitter, -np.asarray(scores, dtype=np.float64)))
    return np.asarray(candidates, dtype=np.int64)[order[:k]]
