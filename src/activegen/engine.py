"""The active-learning engine: one round of Algorithm 1 as ``ask`` / ``tell``.

:class:`ActiveLearner` is what the benchmark loop, the labeling app and a user's own code
stand on. ``ask(k)`` fits a fresh learner on everything labeled (seeded by ``(seed, round)``),
evaluates it on the test sets, and lets the strategy choose the next batch with this round's
seeded generator; ``tell(query, labels)`` checks the answers (sizes, classes, abstentions
``-1``, no pool point asked twice) and applies them. Every random draw of round ``r`` comes
from ``derive_seed(seed, r, …)``, so a run is a pure function of its labels and its seed, and
a state reloaded from its store continues exactly as an uninterrupted run would.

The state lives behind :class:`StateStore`: :class:`NpzStore` (the run's atomic checkpoint),
:class:`MemoryStore`, or the labeling app's SQLite store
(:class:`activegen.server.engine_state.LabelStoreState`), whose session calls ``ask`` when a
round's answers are in.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from activegen._atomic import atomic_write_bytes
from activegen.errors import ConfigError, DataError, EmptyPoolError
from activegen.models.base import Learner
from activegen.models.capabilities import FitContext, PoolPrepared, has_capability
from activegen.oracles.base import ABSTAIN
from activegen.strategies.base import Query, QueryState, Strategy

log = logging.getLogger(__name__)

#: Stop after this many rounds in a row that bring no label (an oracle abstaining on
#: everything when abstentions are free would otherwise never exhaust the budget).
MAX_EMPTY_ROUNDS = 10


@dataclass(frozen=True)
class LoopSettings:
    """How many labels, in which steps.

    Attributes:
        initial_size: labels drawn at random before the first query (shared per seed).
        batch_size: queries per round.
        budget: total labels at the end, the initial ones included.
        abstain_costs_budget: whether a query the oracle could not label is charged.
    """

    initial_size: int
    batch_size: int
    budget: int
    abstain_costs_budget: bool = True

    def __post_init__(self) -> None:
        if self.initial_size < 1:
            raise ConfigError(f"initial_size must be >= 1, got {self.initial_size}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.budget < self.initial_size:
            raise ConfigError(
                f"budget ({self.budget}) is below the initial labeled set ({self.initial_size})"
            )

    @property
    def label_counts(self) -> list[int]:
        """The label counts at which the learner is evaluated, without abstentions."""
        counts = [self.initial_size]
        while counts[-1] < self.budget:
            counts.append(min(counts[-1] + self.batch_size, self.budget))
        return counts


def derive_seed(*parts: int) -> int:
    """A 31-bit seed derived from integers (stable across runs and platforms)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def initial_labeled_indices(y_pool: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The seeded initial labeled set: depends only on the pool and ``seed``, never on the
    strategy, so every strategy of a seed starts alike.

    Draws uniformly at random; redraws (a bounded number of times) while the draw holds a
    single class, because no learner can be fitted on one class.
    """
    n = len(y_pool)
    if size > n:
        raise ConfigError(f"initial_size ({size}) exceeds the pool ({n} images)")
    rng = np.random.default_rng(derive_seed(seed, 0xA11))
    picks = rng.choice(n, size=size, replace=False)
    for _ in range(100):
        if size < 2 or len(np.unique(y_pool[picks])) > 1:
            break
        picks = rng.choice(n, size=size, replace=False)
    return np.sort(picks).astype(np.int64)


@dataclass
class RoundRecord:
    """What one round measured."""

    round: int
    n_labels: int  # labels charged to the budget so far (the x axis of learning curves)
    n_train: int  # labeled examples the learner was trained on
    n_abstained: int  # queries the oracle could not label, so far
    accuracy: dict[str, float]
    fit_seconds: float
    eval_seconds: float
    query_seconds: float = 0.0
    label_seconds: float = 0.0


@dataclass
class LoopState:
    """Everything needed to resume a run after its last finished round."""

    round: int
    labeled_indices: np.ndarray
    labeled_y: np.ndarray
    queried: np.ndarray
    X_extra: np.ndarray
    y_extra: np.ndarray
    n_spent: int
    n_abstained: int
    empty_rounds: int = 0
    finished: bool = False
    records: list[RoundRecord] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        meta = {
            "round": self.round,
            "n_spent": self.n_spent,
            "n_abstained": self.n_abstained,
            "empty_rounds": self.empty_rounds,
            "finished": self.finished,
            # vars(), not dataclasses.asdict: asdict deep-copies every record, every round
            "records": [vars(r) for r in self.records],
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            labeled_indices=self.labeled_indices,
            labeled_y=self.labeled_y,
            queried=self.queried,
            X_extra=self.X_extra,
            y_extra=self.y_extra,
        )
        return buffer.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> LoopState:
        """Read a checkpoint.

        Checkpoints are written atomically, so a damaged one was damaged after the fact (a
        failing disk, a copy cut short). It is refused, never silently discarded: with a
        human oracle it holds labels nobody can recompute.

        Raises:
            DataError: the file is not a readable checkpoint; the message names it and says
                how to restart that run.
        """
        try:
            return cls._read(path)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(
                f"{path}: damaged checkpoint ({type(exc).__name__}: {exc}); delete this file to "
                "restart that run from its first round (other runs keep their progress), or "
                "run again with --fresh"
            ) from None

    def problem(self, n_pool: int, n_classes: int) -> str | None:
        """What makes this state impossible for a pool of ``n_pool`` images and ``n_classes``
        classes (an index or label out of range, arrays that disagree), or ``None``."""
        idx, y = self.labeled_indices, self.labeled_y
        if idx.ndim != 1 or y.ndim != 1 or len(idx) != len(y):
            return "labeled indices and labels disagree in shape"
        if len(self.y_extra) != len(self.X_extra):
            return "synthesized images and their labels disagree in number"
        for name, values in (("labeled index", idx), ("label", y), ("synthesized label",
                                                                    self.y_extra)):
            if values.size and not np.issubdtype(values.dtype, np.integer):
                return f"{name}s are not integers"
        if idx.size and (idx.min() < 0 or idx.max() >= n_pool):
            return f"a labeled index is outside the pool of {n_pool} images"
        if len(np.unique(idx)) != len(idx):
            return "a pool image is labeled twice"
        for name, values in (("label", y), ("synthesized label", self.y_extra)):
            if values.size and (values.min() < 0 or values.max() >= n_classes):
                return f"a {name} is outside the {n_classes} classes"
        if self.round < 0 or self.n_spent < 0 or self.n_abstained < 0:
            return "a negative round or label count"
        return None

    @classmethod
    def _read(cls, path: Path) -> LoopState:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            return cls(
                round=meta["round"],
                labeled_indices=data["labeled_indices"],
                labeled_y=data["labeled_y"],
                queried=data["queried"],
                X_extra=data["X_extra"],
                y_extra=data["y_extra"],
                n_spent=meta["n_spent"],
                n_abstained=meta["n_abstained"],
                empty_rounds=meta["empty_rounds"],
                finished=meta["finished"],
                records=[RoundRecord(**r) for r in meta["records"]],
            )


#: Called after each answered query with the round, the query and its labels, so the caller can
#: persist every query (synthesized images are data no dataset holds).
QuerySink = Callable[[int, Query, np.ndarray], None]

#: Builds a fresh (unfitted) learner from a seed.
LearnerFactory = Callable[[int], Learner]


class StateStore(Protocol):
    """Where an :class:`ActiveLearner` keeps its state between rounds."""

    def load(self) -> LoopState | None:
        """The saved state, or ``None`` when nothing was saved yet."""
        ...

    def save(self, state: LoopState) -> None:
        """Keep ``state`` (called after every finished round)."""
        ...


class MemoryStore:
    """Keeps the state in memory (a library user's loop, tests)."""

    def __init__(self) -> None:
        self.state: LoopState | None = None

    def load(self) -> LoopState | None:
        return self.state

    def save(self, state: LoopState) -> None:
        self.state = state


class NpzStore:
    """The run's checkpoint file, written atomically after every round.

    ``fsync=False`` keeps the write atomic (a killed process still leaves a whole checkpoint)
    but skips the fsync, whose cost on a slow disk can exceed a small round's compute.
    """

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync

    def load(self) -> LoopState | None:
        return LoopState.from_file(self.path) if self.path.exists() else None

    def save(self, state: LoopState) -> None:
        # Atomic and fsynced: a kill leaves the previous or this round's checkpoint, whole.
        # The directory is not fsynced each round: after a power cut the run may resume a
        # round or two earlier, and recomputes them exactly (the engine is deterministic).
        atomic_write_bytes(self.path, state.to_bytes(), durable_rename=False, sync=self.fsync)


def as_factory(learner: Learner | LearnerFactory) -> LearnerFactory:
    """A learner factory from a factory or from an unfitted learner used as a template (each
    round gets a fresh copy with that round's seed)."""
    if isinstance(learner, Learner):
        template = learner

        def make(seed: int) -> Learner:
            fresh = copy.deepcopy(template)
            fresh.seed = seed
            return fresh

        return make
    return learner


def fit_learner(make_learner: LearnerFactory, X: np.ndarray, y: np.ndarray, *, seed: int,
                round_: int, context: FitContext, strategy: Strategy | None = None,
                X_pool: np.ndarray | None = None, cache_dir: Path | None = None
                ) -> tuple[Learner, float]:
    """Round ``round_``'s learner fitted on ``(X, y)``, and the seconds its fit took.

    The one fit path of runs, the fully supervised reference and the labeling app: seeds
    torch and the learner from ``(seed, round_)``, lets a :class:`PoolPrepared` learner learn
    from ``X_pool`` first, and hands it the strategy's per-example extra features.
    """
    torch.manual_seed(derive_seed(seed, round_, 1))
    learner = make_learner(derive_seed(seed, round_, 2))
    if X_pool is not None and has_capability(learner, PoolPrepared):
        learner.prepare(X_pool, cache_dir)  # type: ignore[attr-defined]
    extra = strategy.fit_features(X) if strategy is not None else None
    if extra is not None:
        context = FitContext(context.round, context.labels_initial, context.labels_per_round,
                             extra)
    t0 = time.perf_counter()
    learner.fit(X, y, context)
    return learner, time.perf_counter() - t0


def choose_batch(strategy: Strategy, state: QueryState, k: int, seed: int) -> Query:
    """The strategy's batch of at most ``k`` for ``state`` (a seeded random draw while no
    learner is fitted), checked: not empty, at most ``k``, no pool point twice.

    Raises:
        EmptyPoolError: nothing is left to choose from.
    """
    if state.learner is None:  # nothing labeled yet: a seeded random draw
        available = state.available_indices
        if len(available) == 0:
            raise EmptyPoolError("every pool image has been asked")
        picks = state.rng.choice(available, size=min(k, len(available)), replace=False)
        return Query.from_pool(np.sort(picks))
    torch.manual_seed(derive_seed(seed, state.round, 4))
    query = strategy.query(state, k)
    if len(query) == 0:
        raise RuntimeError(f"strategy {strategy.name!r} returned an empty query")
    if len(query) > k:  # more would overspend the budget
        raise RuntimeError(f"strategy {strategy.name!r} returned {len(query)} queries, more "
                           f"than the {k} asked for")
    if not query.is_synthesized:
        idx = query.indices
        if len(np.unique(idx)) != len(idx) or state.queried[idx].any():
            raise RuntimeError(f"strategy {strategy.name!r} asked for a pool point twice")
    return query


class ActiveLearner:
    """One strategy and one learner on one pool, round by round (see the module docstring).

    Args:
        X_pool: the pool images in the model scale, ``float32 [N, C, H, W]`` in ``[0, 1]``.
        n_classes: number of classes; labels are ``0..n_classes-1``, ``-1`` = abstained.
        learner: an unfitted learner (a template copied every round) or a factory
            ``seed -> Learner``.
        strategy: chooses the queries; prepared by the caller if it needs it.
        seed: the run's seed.
        initial: pool indices and labels known before the first round (may be empty: the
            first batch is then a seeded random draw).
        budget: labels to spend in all, the initial ones included (``None``: no limit).
        batch_size: the ``k`` of ``ask()`` without an argument.
        abstain_costs_budget: whether a query the oracle could not label is charged.
        test_sets: named ``(X, y)`` evaluated after every fit.
        store: where the state is kept (default: memory); a stored state is resumed.
        cache_dir: where a :class:`PoolPrepared` learner caches what it learns from the pool.
        on_round: called with each finished :class:`RoundRecord`.
        on_fitted: called with each round's record and its fitted learner, right after the
            evaluation (stopping criteria read the learner here).
        query_sink: called with every answered query.
    """

    def __init__(
        self,
        X_pool: np.ndarray,
        n_classes: int,
        learner: Learner | LearnerFactory,
        strategy: Strategy,
        *,
        seed: int = 0,
        initial: tuple[np.ndarray, np.ndarray] | None = None,
        budget: int | None = None,
        batch_size: int | None = None,
        abstain_costs_budget: bool = True,
        test_sets: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
        store: StateStore | None = None,
        cache_dir: Path | None = None,
        on_round: Callable[[RoundRecord], None] | None = None,
        on_fitted: Callable[[RoundRecord, Learner], None] | None = None,
        query_sink: QuerySink | None = None,
    ) -> None:
        X_pool = np.asarray(X_pool, dtype=np.float32)
        if X_pool.ndim != 4:
            raise DataError(f"X_pool must be float32 [N, C, H, W], got shape {X_pool.shape}")
        if n_classes < 2:
            raise ConfigError(f"n_classes must be >= 2, got {n_classes}")
        self.X_pool = X_pool
        self.n_classes = n_classes
        self.make_learner = as_factory(learner)
        self.strategy = strategy
        self.seed = seed
        self.budget = budget
        self.batch_size = batch_size
        self.abstain_costs_budget = abstain_costs_budget
        self.test_sets = dict(test_sets or {})
        self.store: StateStore = store if store is not None else MemoryStore()
        self.cache_dir = cache_dir
        self.on_round = on_round
        #: sees each round's fitted learner (stopping criteria); never on replayed rounds
        self.on_fitted = on_fitted
        self.query_sink = query_sink
        idx, y = initial if initial is not None else (np.empty(0, np.int64), np.empty(0, np.int64))
        self.labels_initial = len(idx) or None
        self.state = self._load_or_init(np.asarray(idx, np.int64), np.asarray(y, np.int64))
        #: The learner fitted in the current round (``None`` before its fit).
        self.learner: Learner | None = None
        self._record: RoundRecord | None = None
        self._asked: Query | None = None

    # -- state ----------------------------------------------------------------------------
    def _load_or_init(self, idx: np.ndarray, y: np.ndarray) -> LoopState:
        state = self.store.load()
        if state is not None:
            where = getattr(self.store, "path", "the stored state")
            if len(state.queried) != len(self.X_pool):
                raise ConfigError(f"{where}: checkpoint is for a pool of {len(state.queried)} "
                                  f"images, not {len(self.X_pool)}")
            problem = state.problem(len(self.X_pool), self.n_classes)
            if problem is not None:
                raise DataError(
                    f"{where}: damaged checkpoint ({problem}); delete this file to restart that "
                    "run from its first round (other runs keep their progress), or run again "
                    "with --fresh"
                )
            return state
        if len(idx) != len(y):
            raise DataError(f"initial: {len(idx)} indices but {len(y)} labels")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self.X_pool)
                         or len(np.unique(idx)) != len(idx)):
            raise DataError(f"initial: indices must be distinct and in 0..{len(self.X_pool) - 1}")
        self._check_labels(y, allow_abstain=False)
        queried = np.zeros(len(self.X_pool), dtype=bool)
        queried[idx] = True
        c, h, w = self.X_pool.shape[1:]
        return LoopState(round=0, labeled_indices=idx.copy(), labeled_y=y.copy(),
                         queried=queried, X_extra=np.empty((0, c, h, w), dtype=np.float32),
                         y_extra=np.empty(0, dtype=np.int64), n_spent=len(idx), n_abstained=0)

    @property
    def done(self) -> bool:
        """Whether the run is over (budget spent, pool exhausted or no label for too long)."""
        return self.state.finished

    @property
    def records(self) -> list[RoundRecord]:
        return self.state.records

    def training_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Every labeled image and its label: labeled pool points, then synthesized ones."""
        s = self.state
        X, y = self.X_pool[s.labeled_indices], s.labeled_y
        if len(s.y_extra):
            X, y = np.concatenate([X, s.X_extra]), np.concatenate([y, s.y_extra])
        return X, y

    # -- one round ------------------------------------------------------------------------
    def fit(self) -> RoundRecord:
        """Fit and evaluate this round's learner (once a round; ``ask`` calls it)."""
        if self._record is not None:
            return self._record
        s = self.state
        X, y = self.training_set()
        if len(y):
            context = FitContext(round=s.round, labels_initial=self.labels_initial,
                                 labels_per_round=self.batch_size)
            self.learner, fit_seconds = fit_learner(
                self.make_learner, X, y, seed=self.seed, round_=s.round, context=context,
                strategy=self.strategy, X_pool=self.X_pool, cache_dir=self.cache_dir)
        else:
            self.learner, fit_seconds = None, 0.0
        t1 = time.perf_counter()
        accuracy = ({} if self.learner is None else
                    {name: self.learner.score(Xt, yt) for name, (Xt, yt) in self.test_sets.items()})
        self._record = RoundRecord(round=s.round, n_labels=s.n_spent, n_train=len(y),
                                   n_abstained=s.n_abstained, accuracy=accuracy,
                                   fit_seconds=fit_seconds,
                                   eval_seconds=time.perf_counter() - t1)
        if self.on_fitted is not None and self.learner is not None:
            self.on_fitted(self._record, self.learner)
        return self._record

    def stop(self) -> None:
        """End the run at this round, after its fit and evaluation (a stopping criterion
        fired): the round is recorded and the state saved as finished, so a resumed run
        does not continue. A query asked and not yet told is dropped."""
        if self.done:
            return
        self._finish_round(self.fit(), finished=True)

    def ask(self, k: int | None = None) -> Query:
        """Fit, evaluate, and return the next batch of at most ``k`` (default: the batch size,
        capped by the budget left).

        Returns an empty query and ends the run when the budget is spent, the pool is
        exhausted, or ``MAX_EMPTY_ROUNDS`` rounds in a row brought no label.
        """
        if self.done:
            raise RuntimeError("the run is finished: nothing more to ask")
        if self._asked is not None:
            return self._asked
        if k is None:
            if self.batch_size is None:
                raise ConfigError("ask() needs k, or a batch_size given to ActiveLearner")
            k = self.batch_size
        if k < 1:
            raise ConfigError(f"ask(k) needs k >= 1, got {k}")
        record = self.fit()
        s = self.state
        remaining = np.inf if self.budget is None else self.budget - s.n_spent
        if remaining <= 0 or s.empty_rounds >= MAX_EMPTY_ROUNDS:
            if s.empty_rounds >= MAX_EMPTY_ROUNDS:
                log.warning("stopping: %d rounds in a row brought no label", MAX_EMPTY_ROUNDS)
            self._finish_round(record, finished=True)
            return Query.from_pool(np.empty(0, np.int64))
        k = int(min(k, remaining))
        query_state = QueryState(
            X_pool=self.X_pool, queried=s.queried.copy(),
            labeled_indices=s.labeled_indices.copy(), learner=self.learner,  # type: ignore[arg-type]
            n_classes=self.n_classes,
            rng=np.random.default_rng(derive_seed(self.seed, s.round, 3)), round=s.round,
            X_extra=s.X_extra, y_extra=s.y_extra, labels=s.labeled_y.copy())
        t0 = time.perf_counter()
        try:
            query = choose_batch(self.strategy, query_state, k, self.seed)
        except EmptyPoolError:
            log.info("round %d: the pool is exhausted; stopping", s.round)
            self._finish_round(record, finished=True)
            return Query.from_pool(np.empty(0, np.int64))
        record.query_seconds = time.perf_counter() - t0
        self._asked = query
        return query

    def tell(self, query: Query, labels: np.ndarray, label_seconds: float = 0.0) -> None:
        """Apply the answers to the query of the last ``ask`` (``-1`` = abstained), which
        closes the round; ``label_seconds`` is recorded as the labeling time."""
        if self.done and len(query) == 0:
            return  # the empty query of a finished run
        if self._asked is None or query is not self._asked:
            raise RuntimeError("tell() answers the query of the last ask(), once")
        labels = np.asarray(labels)
        if labels.shape != (len(query),):
            raise DataError(f"got {labels.shape} labels for {len(query)} queries")
        labels = labels.astype(np.int64)
        self._check_labels(labels, allow_abstain=True)
        assert self._record is not None
        self._record.label_seconds = label_seconds
        if self.query_sink is not None:
            self.query_sink(self.state.round, query, labels)
        self._apply(query, labels)
        self._finish_round(self._record, finished=False)

    def _check_labels(self, labels: np.ndarray, allow_abstain: bool) -> None:
        ok = (labels >= 0) & (labels < self.n_classes)
        if allow_abstain:
            ok |= labels == ABSTAIN
        if not ok.all():
            bad = labels[~ok][0]
            raise DataError(f"label {bad} is outside 0..{self.n_classes - 1}"
                            + (" (or -1 to abstain)" if allow_abstain else ""))

    def _apply(self, query: Query, labels: np.ndarray) -> None:
        s = self.state
        got = labels != ABSTAIN
        if query.is_synthesized:
            assert query.samples is not None
            s.X_extra = np.concatenate([s.X_extra, query.samples[got]])
            s.y_extra = np.concatenate([s.y_extra, labels[got]])
        else:
            s.queried[query.indices] = True
            s.labeled_indices = np.concatenate([s.labeled_indices, query.indices[got]])
            s.labeled_y = np.concatenate([s.labeled_y, labels[got]])
        s.n_abstained += int((~got).sum())
        s.n_spent += len(query) if self.abstain_costs_budget else int(got.sum())
        s.empty_rounds = 0 if got.any() else s.empty_rounds + 1

    def _finish_round(self, record: RoundRecord, finished: bool) -> None:
        s = self.state
        s.records.append(record)
        s.round += 1
        s.finished = finished
        self._record, self._asked = None, None
        if self.on_round is not None:  # before the save: a round whose report failed reruns
            self.on_round(record)
        self.store.save(s)
