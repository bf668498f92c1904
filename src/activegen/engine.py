"""The active-learning engine: one round of Algorithm 1 as ``ask`` / ``tell``, its state a fold
over the round's events.

:class:`ActiveLearner` is what the benchmark loop, the labeling app and a user's own code
stand on. ``ask(k)`` fits a fresh learner on everything labeled (seeded by ``(seed, round)``),
evaluates it on the test sets, and lets the strategy choose the next batch with this round's
seeded generator (while nothing is labeled, the cold-start strategy chooses, or a seeded
random draw); ``tell(query, labels)`` checks the answers (sizes, classes, abstentions ``-1``,
no pool point asked twice) and applies them; ``teach(indices, labels)`` applies labels known
from elsewhere (an import).

What happened is a list of :class:`Event` s (labels taught, a query asked, its answers told,
the run finished), and the state is their fold, :func:`replay`: a run's checkpoint and the
labeling app's label store hold the same events, and every reader (the run after a crash, the
labeling session after a restart, t-SNE of a finished run, an analysis) rebuilds the state with
that one function. Every random draw of round ``r`` comes from ``derive_seed(seed, r, …)``, so
a run is a pure function of its events and its seed, and a state replayed from its store
continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Protocol

import numpy as np
import torch

from activegen._atomic import atomic_write_bytes
from activegen._labels import class_labels
from activegen.errors import ConfigError, DataError, EmptyPoolError, RunFinished
from activegen.models.base import Learner
from activegen.models.capabilities import FitContext, PoolPrepared
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
        batch_size: queries per round, or the queries of successive rounds (the last one
            repeating: ``(10, 30, 50, 100)`` after 10 initial labels evaluates at 10, 20,
            50, 100, 200, ...).
        budget: total labels at the end, the initial ones included.
        abstain_costs_budget: whether a query the oracle could not label is charged.
    """

    initial_size: int
    batch_size: int | tuple[int, ...]
    budget: int
    abstain_costs_budget: bool = True

    def __post_init__(self) -> None:
        if self.initial_size < 1:
            raise ConfigError(f"initial_size must be >= 1, got {self.initial_size}")
        sizes = self.batch_sizes
        if not sizes or min(sizes) < 1:
            raise ConfigError(f"batch_size must be >= 1 (or a list of them), got "
                              f"{self.batch_size}")
        if self.budget < self.initial_size:
            raise ConfigError(
                f"budget ({self.budget}) is below the initial labeled set ({self.initial_size})"
            )

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return (self.batch_size,) if isinstance(self.batch_size, int) else tuple(self.batch_size)

    def batch_at(self, i: int) -> int:
        """The size of the ``i``-th batch after the initial labels (the last size repeats)."""
        sizes = self.batch_sizes
        return sizes[min(i, len(sizes) - 1)]

    @property
    def label_counts(self) -> list[int]:
        """The label counts at which the learner is evaluated, without abstentions."""
        counts = [self.initial_size]
        while counts[-1] < self.budget:
            counts.append(min(counts[-1] + self.batch_at(len(counts) - 1), self.budget))
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


EventKind = Literal["taught", "asked", "told", "finished"]


@dataclass(frozen=True)
class Event:
    """One thing that happened to a run.

    - ``taught``: labels known from elsewhere (an experiment's initial set, a session's
      import): ``indices`` and ``labels``; ``charged``: whether they count toward the budget.
    - ``asked``: round ``round``'s query: pool ``indices``, or synthesized ``samples``.
    - ``told``: the answers to the last ``asked`` query, ``labels`` aligned with it.
    - ``finished``: the run is over (``reason``: budget, pool, no labels, stopped).
    """

    kind: EventKind
    round: int
    indices: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    labels: np.ndarray | None = None
    samples: np.ndarray | None = None
    charged: bool = True
    reason: str = ""

    @classmethod
    def asked_query(cls, round_: int, query: Query) -> Event:
        return cls("asked", round_, np.asarray(query.indices, np.int64),
                   samples=None if query.samples is None
                   else np.asarray(query.samples, np.float32))


@dataclass
class LoopState:
    """The fold of a run's events (:func:`replay`): what is labeled, asked and spent."""

    round: int
    labeled_indices: np.ndarray
    labeled_y: np.ndarray
    queried: np.ndarray
    X_extra: np.ndarray
    y_extra: np.ndarray
    #: synthesized images the oracle refused: what a strategy can learn labelability from
    X_refused: np.ndarray
    n_spent: int = 0
    n_abstained: int = 0
    empty_rounds: int = 0
    finished: bool = False
    #: the ``asked`` event not told yet (a labeling session's open round after a restart)
    pending: Event | None = None

    @classmethod
    def empty(cls, n_pool: int, image_shape: tuple[int, ...]) -> LoopState:
        return cls(round=0, labeled_indices=np.empty(0, np.int64),
                   labeled_y=np.empty(0, np.int64), queried=np.zeros(n_pool, dtype=bool),
                   X_extra=np.empty((0, *image_shape), dtype=np.float32),
                   y_extra=np.empty(0, np.int64),
                   X_refused=np.empty((0, *image_shape), dtype=np.float32))


def apply_event(state: LoopState, event: Event, n_classes: int,
                abstain_costs_budget: bool = True) -> None:
    """Fold one event into ``state`` (in place).

    Raises:
        DataError: the event is impossible here (an index outside the pool or asked before,
            a label outside the classes, an answer to nothing asked, counts that disagree).
    """
    if state.finished:
        raise DataError(f"a {event.kind!r} event after the run finished")
    n_pool = len(state.queried)
    if event.kind == "finished":
        state.finished = True
        return
    if event.kind == "asked":
        if state.pending is not None:
            raise DataError(f"round {event.round} asked before round {state.pending.round} "
                            "was told")
        if event.round != state.round:
            raise DataError(f"round {event.round} asked at round {state.round}")
        if event.samples is None:
            _check_indices(event.indices, n_pool, state.queried, "asked")
        state.pending = event
        return
    labels = _checked_labels(event.labels, n_classes, event.kind)
    got = labels != ABSTAIN
    if event.kind == "taught":
        taken = state.queried.copy()
        if state.pending is not None and state.pending.samples is None:
            taken[state.pending.indices] = True  # the open query's images are answered there
        idx = _check_indices(event.indices, n_pool, taken, "taught")
        if len(labels) != len(idx):
            raise DataError(f"taught {len(idx)} indices but {len(labels)} labels")
        state.queried[idx] = True
        state.labeled_indices = np.concatenate([state.labeled_indices, idx[got]])
        state.labeled_y = np.concatenate([state.labeled_y, labels[got]])
        state.n_abstained += int((~got).sum())
        if event.charged:
            state.n_spent += len(idx) if abstain_costs_budget else int(got.sum())
        return
    asked = state.pending
    if asked is None or asked.round != event.round:
        raise DataError(f"round {event.round} told without being asked")
    size = len(asked.samples) if asked.samples is not None else len(asked.indices)
    if len(labels) != size:
        raise DataError(f"round {event.round}: {len(labels)} answers to {size} queries")
    if asked.samples is not None:
        state.X_extra = np.concatenate([state.X_extra, asked.samples[got]])
        state.y_extra = np.concatenate([state.y_extra, labels[got]])
        state.X_refused = np.concatenate([state.X_refused, asked.samples[~got]])
    else:
        state.queried[asked.indices] = True
        state.labeled_indices = np.concatenate([state.labeled_indices, asked.indices[got]])
        state.labeled_y = np.concatenate([state.labeled_y, labels[got]])
    state.n_abstained += int((~got).sum())
    state.n_spent += size if abstain_costs_budget else int(got.sum())
    state.empty_rounds = 0 if got.any() else state.empty_rounds + 1
    state.pending = None
    state.round += 1


def _check_indices(indices: np.ndarray, n_pool: int, queried: np.ndarray,
                   what: str) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise DataError(f"{what} pool indices are not integers")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_pool):
        raise DataError(f"{what}: a pool index is outside the pool of {n_pool} images")
    if len(np.unique(idx)) != len(idx) or queried[idx].any():
        raise DataError(f"{what}: a pool image is asked or labeled twice")
    return idx


def _checked_labels(labels: np.ndarray | None, n_classes: int, what: str) -> np.ndarray:
    if labels is None:
        raise DataError(f"a {what} event without labels")
    values = np.asarray(labels)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"{what} labels are not integers")
    values = values.astype(np.int64)
    bad = (values != ABSTAIN) & ((values < 0) | (values >= n_classes))
    if bad.any():
        raise DataError(f"{what}: label {values[bad][0]} is outside 0..{n_classes - 1} "
                        "(or -1 for can't tell)")
    return values


def replay(events: Sequence[Event], n_pool: int, image_shape: tuple[int, ...], n_classes: int,
           abstain_costs_budget: bool = True) -> LoopState:
    """The state after ``events``: the one fold every reader of a run's history uses."""
    state = LoopState.empty(n_pool, image_shape)
    for event in events:
        apply_event(state, event, n_classes, abstain_costs_budget)
    return state


@dataclass
class Checkpoint:
    """What a run keeps between rounds: its events and each finished round's record, and the
    fingerprint of the pool they index (a checkpoint of another pool is refused)."""

    events: list[Event] = field(default_factory=list)
    records: list[RoundRecord] = field(default_factory=list)
    pool: str = ""

    #: the file layout; another is refused (a checkpoint is never guessed at)
    FORMAT: ClassVar[int] = 2

    def to_bytes(self) -> bytes:
        meta = {
            "format": self.FORMAT,
            "pool": self.pool,
            "events": [{"kind": e.kind, "round": e.round, "charged": e.charged,
                        "reason": e.reason, "labels": e.labels is not None,
                        "samples": e.samples is not None} for e in self.events],
            # vars(), not dataclasses.asdict: asdict deep-copies every record, every round
            "records": [vars(r) for r in self.records],
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        for i, e in enumerate(self.events):
            arrays[f"indices_{i}"] = np.asarray(e.indices, np.int64)
            if e.labels is not None:
                arrays[f"labels_{i}"] = np.asarray(e.labels, np.int64)
            if e.samples is not None:
                arrays[f"samples_{i}"] = np.asarray(e.samples, np.float32)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        """Read a checkpoint file.

        Checkpoints are written atomically, so a damaged one was damaged after the fact (a
        failing disk, a copy cut short). It is refused, never silently discarded: with a
        human oracle it holds labels nobody can recompute.

        Raises:
            DataError: the file is not a readable checkpoint; the message names it and says
                how to restart that run.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                if meta.get("format") != cls.FORMAT:
                    raise ValueError(f"format {meta.get('format')!r}, expected {cls.FORMAT}")
                events = []
                for i, e in enumerate(meta["events"]):
                    events.append(Event(
                        kind=e["kind"], round=int(e["round"]), indices=data[f"indices_{i}"],
                        labels=data[f"labels_{i}"] if e["labels"] else None,
                        samples=data[f"samples_{i}"] if e["samples"] else None,
                        charged=bool(e["charged"]), reason=str(e["reason"])))
                records = [RoundRecord(**r) for r in meta["records"]]
                pool = str(meta["pool"])
        except (OSError, ValueError, KeyError, TypeError, EOFError,
                zipfile.BadZipFile) as exc:
            raise DataError(
                f"{path}: damaged checkpoint ({type(exc).__name__}: {exc}); delete this file to "
                "restart that run from its first round (other runs keep their progress), or "
                "run again with --fresh"
            ) from None
        return cls(events, records, pool)

    def replay(self, n_pool: int, image_shape: tuple[int, ...], n_classes: int,
               abstain_costs_budget: bool = True) -> LoopState:
        """The state after this checkpoint's events (:func:`replay`)."""
        return replay(self.events, n_pool, image_shape, n_classes, abstain_costs_budget)


#: Called after each answered query with the round, the query and its labels, so the caller can
#: persist every query (synthesized images are data no dataset holds).
QuerySink = Callable[[int, Query, np.ndarray], None]

#: Builds a fresh (unfitted) learner from a seed.
LearnerFactory = Callable[[int], Learner]


class StateStore(Protocol):
    """Where an :class:`ActiveLearner` keeps its events between rounds (``str(store)`` names
    it in error messages)."""

    def load(self) -> Checkpoint | None:
        """The saved events and records, or ``None`` when nothing was saved yet."""
        ...

    def save(self, checkpoint: Checkpoint) -> None:
        """Keep ``checkpoint`` (called after every finished round)."""
        ...


class MemoryStore:
    """Keeps the checkpoint in memory (a library user's loop, tests)."""

    def __init__(self) -> None:
        self.checkpoint: Checkpoint | None = None

    def load(self) -> Checkpoint | None:
        return self.checkpoint

    def save(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        return "the events kept in memory"


class NpzStore:
    """The run's checkpoint file, written atomically after every round.

    ``fsync=False`` keeps the write atomic (a killed process still leaves a whole checkpoint)
    but skips the fsync, whose cost on a slow disk can exceed a small round's compute.
    """

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync

    def load(self) -> Checkpoint | None:
        return Checkpoint.read(self.path) if self.path.exists() else None

    def __str__(self) -> str:
        return str(self.path)

    def save(self, checkpoint: Checkpoint) -> None:
        # Atomic and fsynced: a kill leaves the previous or this round's checkpoint, whole.
        # The directory is not fsynced each round: after a power cut the run may resume a
        # round or two earlier, and recomputes them exactly (the engine is deterministic).
        atomic_write_bytes(self.path, checkpoint.to_bytes(), durable_rename=False,
                           sync=self.fsync)


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
    if X_pool is not None and isinstance(learner, PoolPrepared):
        learner.prepare(X_pool, cache_dir)
    extra = strategy.fit_features(X) if strategy is not None else None
    if extra is not None:
        context = FitContext(context.round, extra)
    t0 = time.perf_counter()
    learner.fit(X, y, context)
    return learner, time.perf_counter() - t0


def choose_batch(strategy: Strategy | None, state: QueryState, k: int, seed: int) -> Query:
    """``strategy``'s batch of at most ``k`` for ``state`` (``None``: a seeded random draw),
    checked: not empty, at most ``k``, no pool point twice.

    Raises:
        EmptyPoolError: nothing is left to choose from.
    """
    if strategy is None:
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


def checked_examples(X: object, what: str) -> np.ndarray:
    """``X`` as ``float32`` examples, refused when it is not numeric or holds NaN or inf (a
    learner would fail on them much later, or a distance would silently be NaN).

    Raises:
        DataError: naming ``what`` and the first bad row.
    """
    try:
        array = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric examples (feature rows [N, d] or images "
                        f"[N, C, H, W]): {exc}") from None
    finite = (np.isfinite(array.reshape(len(array), -1)).all(axis=1)
              if array.ndim and array.size else None)
    if finite is not None and not finite.all():
        raise DataError(f"{what}: row {int(np.flatnonzero(~finite)[0])} holds NaN or "
                        "infinite values")
    return array


def checked_test_sets(test_sets: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      example_shape: tuple[int, ...], n_classes: int
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each named ``(X, y)`` checked against the pool: examples shaped like the pool's
    (``example_shape``), as many labels as examples, labels that are classes. Checked when
    the engine is built, so that a mistake is named there rather than surfacing at the first
    fit as a numpy error or an accuracy of 0.

    Raises:
        DataError: naming the test set and what is wrong.
    """
    out = {}
    for name, pair in test_sets.items():
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise DataError(f"test set {name!r} must be a pair (X, y)")
        X = checked_examples(pair[0], f"test set {name!r}")
        if X.shape[1:] != tuple(example_shape):
            raise DataError(f"test set {name!r}: examples of shape {list(X.shape[1:])}, but the "
                            f"pool's are {list(example_shape)}")
        if len(X) == 0:
            raise DataError(f"test set {name!r} is empty")
        y = class_labels(pair[1], n_classes, what=f"test set {name!r}'s labels",
                         abstain=False, size=len(X))
        out[str(name)] = (X, y)
    return out


class ActiveLearner:
    """One strategy and one learner on one pool, round by round (see the module docstring).

    Args:
        X_pool: the pool in the model scale: images ``float32 [N, C, H, W]`` in ``[0, 1]``,
            or feature rows ``float32 [N, d]``.
        n_classes: number of classes; labels are ``0..n_classes-1``, ``-1`` = abstained.
        learner: an unfitted learner (a template copied every round) or a factory
            ``seed -> Learner``.
        strategy: chooses the queries; prepared by the caller if it needs it.
        seed: the run's seed.
        initial: pool indices and labels known before the first round, charged to the budget
            (may be empty: the first batch is then the cold start's).
        cold_start: chooses the first batch while nothing is labeled (it gets no learner:
            TypiClust, ProbCover or core-set on features of their own); ``None``: a seeded
            random draw.
        budget: labels to spend in all, the initial ones included (``None``: no limit).
        batch_size: the ``k`` of ``ask()`` without an argument.
        abstain_costs_budget: whether a query the oracle could not label is charged.
        test_sets: named ``(X, y)`` evaluated after every fit.
        store: where the events are kept (default: memory); stored events are replayed.
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
        cold_start: Strategy | None = None,
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
        X_pool = checked_examples(X_pool, "X_pool")
        if X_pool.ndim not in (2, 4):
            raise DataError(f"X_pool must be feature rows [N, d] or images [N, C, H, W], got "
                            f"shape {X_pool.shape}")
        if len(X_pool) == 0:
            raise DataError("X_pool is empty: there is nothing to ask")
        if n_classes < 2:
            raise ConfigError(f"n_classes must be >= 2, got {n_classes}")
        self.X_pool = X_pool
        self.n_classes = n_classes
        self.make_learner = as_factory(learner)
        self.strategy = strategy
        self.cold_start = cold_start
        self.seed = seed
        self.budget = budget
        self.batch_size = batch_size
        self.abstain_costs_budget = abstain_costs_budget
        self.test_sets = checked_test_sets(test_sets or {}, X_pool.shape[1:], n_classes)
        self.store: StateStore = store if store is not None else MemoryStore()
        self.cache_dir = cache_dir
        self.on_round = on_round
        #: sees each round's fitted learner (stopping criteria); never on replayed rounds
        self.on_fitted = on_fitted
        self.query_sink = query_sink
        self.checkpoint = self._load_or_start(initial)
        self.state = self._replay(self.checkpoint.events)
        #: The learner fitted in the current round (``None`` before its fit).
        self.learner: Learner | None = None
        self._record: RoundRecord | None = None
        self._asked: Query | None = (None if self.state.pending is None
                                     else _query_of(self.state.pending))

    # -- state ----------------------------------------------------------------------------
    def _replay(self, events: Sequence[Event]) -> LoopState:
        where = str(self.store)
        try:
            return replay(events, len(self.X_pool), self.X_pool.shape[1:], self.n_classes,
                          self.abstain_costs_budget)
        except DataError as exc:
            raise DataError(f"{where}: impossible history ({exc}); it was not written by this "
                            "pool and configuration") from None

    def _load_or_start(self, initial: tuple[np.ndarray, np.ndarray] | None) -> Checkpoint:
        from activegen._cache import data_fingerprint

        pool = data_fingerprint(self.X_pool)
        stored = self.store.load()
        if stored is not None:
            if stored.pool and stored.pool != pool:
                raise ConfigError(f"{self.store}: the checkpoint is for another pool (of other "
                                  f"images or another size than these {len(self.X_pool)}); "
                                  "delete it to start that run again")
            return stored
        if initial is None or len(initial[0]) == 0:
            return Checkpoint(pool=pool)
        idx = np.asarray(initial[0])
        y = class_labels(initial[1], self.n_classes, what="initial labels", abstain=False,
                         size=len(idx))
        event = Event("taught", 0, idx, labels=y)
        try:  # checked by the fold, before anything else
            replay([event], len(self.X_pool), self.X_pool.shape[1:], self.n_classes)
        except DataError as exc:
            raise DataError(f"initial: {exc}") from None
        return Checkpoint([event], pool=pool)

    @property
    def done(self) -> bool:
        """Whether the run is over (budget spent, pool exhausted or no label for too long)."""
        return self.state.finished

    @property
    def records(self) -> list[RoundRecord]:
        return self.checkpoint.records

    @property
    def events(self) -> list[Event]:
        return self.checkpoint.events

    def training_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Every labeled example and its label: labeled pool points, then synthesized ones."""
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
            self.learner, fit_seconds = fit_learner(
                self.make_learner, X, y, seed=self.seed, round_=s.round,
                context=FitContext(round=s.round), strategy=self.strategy,
                X_pool=self.X_pool, cache_dir=self.cache_dir)
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
        fired): the round is recorded and the run saved as finished, so a resumed run does
        not continue. A query asked and not yet told is dropped."""
        if self.done:
            return
        if self._asked is not None:
            self.checkpoint.events.pop()  # the asked event of the dropped query
            self.state.pending, self._asked = None, None
        self._finish(self.fit(), "stopped")

    def ask(self, k: int | None = None) -> Query:
        """Fit, evaluate, and return the next batch of at most ``k`` (default: the batch size,
        capped by the budget left).

        Raises:
            RunFinished: nothing is left to ask: the budget is spent, the pool is exhausted,
                or ``MAX_EMPTY_ROUNDS`` rounds in a row brought no label (the run is then
                finished, :attr:`done`, its last fit recorded), or it finished before.
        """
        if self.done:
            raise RunFinished(self._finished_message())
        if self._asked is not None:
            return self._asked
        if k is None:
            if self.batch_size is None:
                raise ConfigError("ask() needs k, or a batch_size given to ActiveLearner")
            k = self.batch_size
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ConfigError(f"ask(k) needs an integer k >= 1, got {k!r}")
        s = self.state
        remaining = np.inf if self.budget is None else self.budget - s.n_spent
        if remaining <= 0 or s.empty_rounds >= MAX_EMPTY_ROUNDS:
            if s.empty_rounds >= MAX_EMPTY_ROUNDS:
                log.warning("stopping: %d rounds in a row brought no label", MAX_EMPTY_ROUNDS)
            self._finish(self.fit(), "budget" if remaining <= 0 else "no labels")
            raise RunFinished(self._finished_message())
        if not (~s.queried).any() and not self.strategy.synthesizes:
            log.info("round %d: the pool is exhausted; stopping", s.round)
            self._finish(self.fit(), "pool")
            raise RunFinished(self._finished_message())
        record = self.fit()
        k = int(min(k, remaining))
        query_state = self.query_state()
        chooser = self.strategy if self.learner is not None else self.cold_start
        t0 = time.perf_counter()
        try:
            query = choose_batch(chooser, query_state, k, self.seed)
        except EmptyPoolError:
            log.info("round %d: the pool is exhausted; stopping", s.round)
            self._finish(record, "pool")
            raise RunFinished(self._finished_message()) from None
        record.query_seconds = time.perf_counter() - t0
        self._asked = query
        event = Event.asked_query(s.round, query)
        self.checkpoint.events.append(event)
        apply_event(self.state, event, self.n_classes, self.abstain_costs_budget)
        return query

    def query_state(self) -> QueryState:
        """What a strategy reads this round: the state, the round's fitted learner (``fit``
        first), and the round's seeded generator."""
        s = self.state
        return QueryState(
            X_pool=self.X_pool, queried=s.queried.copy(),
            labeled_indices=s.labeled_indices.copy(), learner=self.learner,  # type: ignore[arg-type]
            n_classes=self.n_classes,
            rng=np.random.default_rng(derive_seed(self.seed, s.round, 3)), round=s.round,
            X_extra=s.X_extra, y_extra=s.y_extra, labels=s.labeled_y.copy(),
            X_refused=s.X_refused)

    def tell(self, query: Query, labels: np.ndarray, label_seconds: float = 0.0) -> None:
        """Apply the answers to the query of the last ``ask`` (``-1`` = abstained), which
        closes the round; ``label_seconds`` is recorded as the labeling time."""
        if self._asked is None or query is not self._asked:
            raise RuntimeError("tell() answers the query of the last ask(), once")
        labels = self._integer_labels(labels, len(query))
        event = Event("told", self.state.round, labels=labels)
        apply_event(self.state, event, self.n_classes, self.abstain_costs_budget)
        self.checkpoint.events.append(event)
        record = self.fit()
        record.label_seconds = label_seconds
        if self.query_sink is not None:
            self.query_sink(record.round, query, labels)
        self._close_round(record)

    def teach(self, indices: np.ndarray, labels: np.ndarray, charged: bool = False) -> None:
        """Apply labels known from elsewhere (an import): pool ``indices`` neither labeled nor
        in the open query, their ``labels`` (``-1`` = can't tell); ``charged``: whether they
        count toward the budget. The next fit trains on them; the open round (if any) keeps
        the learner that chose it."""
        idx = np.asarray(indices)
        labels = self._integer_labels(labels, len(idx))
        event = Event("taught", self.state.round, idx, labels=labels, charged=charged)
        apply_event(self.state, event, self.n_classes, self.abstain_costs_budget)
        self.checkpoint.events.append(event)
        if self._asked is None:
            self._record, self.learner = None, None  # refit on them at the next ask
        self.store.save(self.checkpoint)

    def _integer_labels(self, labels: np.ndarray, n: int) -> np.ndarray:
        return class_labels(labels, self.n_classes, size=n)

    def _finished_message(self) -> str:
        """Why the run is over, for :class:`RunFinished`."""
        s = self.state
        reason = next((e.reason for e in reversed(self.events) if e.kind == "finished"), "")
        why = {
            "budget": f"the budget of {self.budget} labels is spent ({s.n_spent} charged)",
            "pool": f"the pool is exhausted: all {len(self.X_pool)} examples are labeled or "
                    "were asked",
            "no labels": f"{MAX_EMPTY_ROUNDS} rounds in a row brought no label",
            "stopped": "a stopping criterion ended it",
        }.get(reason, reason or "it finished")
        return (f"the run is finished: {why}; nothing more to ask (fit() is the final model, "
                "records every round's)")

    def _finish(self, record: RoundRecord, reason: str) -> None:
        self.checkpoint.events.append(Event("finished", self.state.round, reason=reason))
        self.state.finished = True
        self._close_round(record)

    def _close_round(self, record: RoundRecord) -> None:
        self.checkpoint.records.append(record)
        self._record, self._asked = None, None
        if self.on_round is not None:  # before the save: a round whose report failed reruns
            self.on_round(record)
        self.store.save(self.checkpoint)


def _query_of(asked: Event) -> Query:
    """The query of a stored ``asked`` event (what the labeling app shows after a restart)."""
    if asked.samples is not None:
        return Query.synthesized(asked.samples)
    return Query.from_pool(asked.indices)
