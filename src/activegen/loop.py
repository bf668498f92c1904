"""One active-learning run (Algorithm 1 of both papers): fit, evaluate, query, label, repeat.

The loop is deterministic given its seed: every random draw of round ``r`` comes from a
generator seeded with ``(seed, r)``, and the learner is retrained from scratch each round. So
a run killed after round ``r`` and resumed from its checkpoint produces exactly the rows an
uninterrupted run produces, and strategies compared at one seed start from one initial set.
"""

from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from activegen._atomic import atomic_write_bytes
from activegen.data.dataset import Dataset
from activegen.errors import ConfigError, DataError, EmptyPoolError
from activegen.models.base import Learner
from activegen.oracles.base import ABSTAIN, Oracle
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


#: Called after each labeling step with the round, the query and the oracle's labels, so the
#: caller can persist every query (synthesized images are data no dataset holds).
QuerySink = Callable[[int, Query, np.ndarray], None]


class ActiveLearningLoop:
    """Runs one strategy at one seed until the budget is spent.

    Args:
        pool: the unlabeled pool (its labels are used only by a pool oracle).
        make_learner: builds a fresh learner from a seed; called every round.
        strategy: chooses the queries.
        oracle: labels them.
        settings: initial size, batch size, budget.
        seed: the run's seed.
        test_sets: named test sets evaluated after every round.
        checkpoint: file to which the state is written atomically after every round.
        on_round: called with each :class:`RoundRecord` as it is finished.
        query_sink: called with every labeled query.
        device: the experiment's device.
        fsync: fsync each round's checkpoint (survives a power cut); ``False`` keeps the
            write atomic (a killed process still leaves a whole checkpoint) but skips the
            fsync, whose cost on a slow disk can exceed a small round's compute.
    """

    def __init__(
        self,
        pool: Dataset,
        make_learner: Callable[[int], Learner],
        strategy: Strategy,
        oracle: Oracle,
        settings: LoopSettings,
        seed: int,
        test_sets: Mapping[str, Dataset],
        checkpoint: Path | None = None,
        on_round: Callable[[RoundRecord], None] | None = None,
        query_sink: QuerySink | None = None,
        device: str = "cpu",
        fsync: bool = True,
        initial_selector: Callable[[], np.ndarray] | None = None,
        on_fitted: Callable[[RoundRecord, Learner], None] | None = None,
    ) -> None:
        if settings.initial_size > len(pool):
            raise ConfigError(
                f"initial_size ({settings.initial_size}) exceeds the pool ({len(pool)} images)"
            )
        self.pool = pool
        self.X_pool = pool.to_float()
        self.make_learner = make_learner
        self.strategy = strategy
        self.oracle = oracle
        self.settings = settings
        self.seed = seed
        self.test_sets = {name: (ds.to_float(), ds.y) for name, ds in test_sets.items()}
        self.checkpoint = checkpoint
        self.on_round = on_round
        self.query_sink = query_sink
        self.device = device
        self.fsync = fsync
        #: chooses the initial labeled set (cold start); None: uniform random
        self.initial_selector = initial_selector
        #: sees each round's fitted learner (stopping criteria); never on replayed rounds
        self.on_fitted = on_fitted

    # -- state ----------------------------------------------------------------------------
    def _initial_state(self) -> LoopState:
        idx = (initial_labeled_indices(self.pool.y, self.settings.initial_size, self.seed)
               if self.initial_selector is None else self.initial_selector())
        queried = np.zeros(len(self.pool), dtype=bool)
        queried[idx] = True
        c, h, w = self.X_pool.shape[1:]
        return LoopState(
            round=0,
            labeled_indices=idx,
            labeled_y=self.pool.y[idx].copy(),
            queried=queried,
            X_extra=np.empty((0, c, h, w), dtype=np.float32),
            y_extra=np.empty(0, dtype=np.int64),
            n_spent=len(idx),
            n_abstained=0,
        )

    def _load_or_init(self) -> LoopState:
        if self.checkpoint is not None and self.checkpoint.exists():
            state = LoopState.from_file(self.checkpoint)
            if len(state.queried) != len(self.pool):
                raise ConfigError(
                    f"{self.checkpoint}: checkpoint is for a pool of {len(state.queried)} "
                    f"images, not {len(self.pool)}"
                )
            return state
        return self._initial_state()

    def _save(self, state: LoopState) -> None:
        if self.checkpoint is not None:
            # Atomic and fsynced: a kill leaves the previous or this round's checkpoint, whole.
            # The directory is not fsynced each round: after a power cut the run may resume a
            # round or two earlier, and recomputes them exactly (the loop is deterministic).
            atomic_write_bytes(self.checkpoint, state.to_bytes(), durable_rename=False,
                               sync=self.fsync)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> list[RoundRecord]:
        """Run (or resume) until the budget is spent; returns every round's record."""
        state = self._load_or_init()
        for record in state.records:
            if self.on_round is not None:
                self.on_round(record)
        while not state.finished:
            self._step(state)
            self._save(state)
        return state.records

    def _training_set(self, state: LoopState) -> tuple[np.ndarray, np.ndarray]:
        X = self.X_pool[state.labeled_indices]
        y = state.labeled_y
        if len(state.y_extra):
            X = np.concatenate([X, state.X_extra])
            y = np.concatenate([y, state.y_extra])
        return X, y

    def _step(self, state: LoopState) -> None:
        r = state.round
        torch.manual_seed(derive_seed(self.seed, r, 1))
        learner = self.make_learner(derive_seed(self.seed, r, 2))
        X_train, y_train = self._training_set(state)
        fit_kwargs = self.strategy.learner_fit_kwargs(X_train)
        t0 = time.perf_counter()
        learner.fit(X_train, y_train, **fit_kwargs)
        t1 = time.perf_counter()
        accuracy = {name: learner.score(X, y) for name, (X, y) in self.test_sets.items()}
        t2 = time.perf_counter()
        record = RoundRecord(
            round=r,
            n_labels=state.n_spent,
            n_train=len(y_train),
            n_abstained=state.n_abstained,
            accuracy=accuracy,
            fit_seconds=t1 - t0,
            eval_seconds=t2 - t1,
        )
        if self.on_fitted is not None:
            self.on_fitted(record, learner)
        remaining = self.settings.budget - state.n_spent
        if remaining <= 0 or state.empty_rounds >= MAX_EMPTY_ROUNDS:
            if state.empty_rounds >= MAX_EMPTY_ROUNDS:
                log.warning("stopping: %d rounds in a row brought no label", MAX_EMPTY_ROUNDS)
            self._finish_round(state, record, finished=True)
            return
        k = min(self.settings.batch_size, remaining)
        query_state = QueryState(
            X_pool=self.X_pool,
            queried=state.queried.copy(),
            labeled_indices=state.labeled_indices.copy(),
            learner=learner,
            n_classes=self.pool.n_classes,
            rng=np.random.default_rng(derive_seed(self.seed, r, 3)),
            round=r,
            X_extra=state.X_extra,
            y_extra=state.y_extra,
        )
        torch.manual_seed(derive_seed(self.seed, r, 4))
        t3 = time.perf_counter()
        try:
            query = self.strategy.query(query_state, k)
        except EmptyPoolError:
            log.info("round %d: the pool is exhausted; stopping", r)
            self._finish_round(state, record, finished=True)
            return
        t4 = time.perf_counter()
        labels = np.asarray(self.oracle.label(query), dtype=np.int64)
        t5 = time.perf_counter()
        self._check_answer(query, labels, state, k)
        record.query_seconds, record.label_seconds = t4 - t3, t5 - t4
        if self.query_sink is not None:
            self.query_sink(r, query, labels)
        self._apply(state, query, labels)
        self._finish_round(state, record, finished=False)

    def _check_answer(self, query: Query, labels: np.ndarray, state: LoopState, k: int) -> None:
        if len(query) == 0:
            raise RuntimeError(f"strategy {self.strategy.name!r} returned an empty query")
        if len(query) > k:  # more would overspend the budget
            raise RuntimeError(
                f"strategy {self.strategy.name!r} returned {len(query)} queries, more than the "
                f"{k} asked for"
            )
        if labels.shape != (len(query),):
            raise RuntimeError(
                f"oracle {self.oracle.name!r} returned {labels.shape} labels for "
                f"{len(query)} queries"
            )
        bad = (labels != ABSTAIN) & ((labels < 0) | (labels >= self.pool.n_classes))
        if bad.any():
            raise RuntimeError(f"oracle returned labels outside 0..{self.pool.n_classes - 1}")
        if not query.is_synthesized:
            idx = query.indices
            if len(np.unique(idx)) != len(idx) or state.queried[idx].any():
                raise RuntimeError(
                    f"strategy {self.strategy.name!r} asked for a pool point twice"
                )

    def _apply(self, state: LoopState, query: Query, labels: np.ndarray) -> None:
        got = labels != ABSTAIN
        if query.is_synthesized:
            assert query.samples is not None
            state.X_extra = np.concatenate([state.X_extra, query.samples[got]])
            state.y_extra = np.concatenate([state.y_extra, labels[got]])
        else:
            state.queried[query.indices] = True
            state.labeled_indices = np.concatenate([state.labeled_indices, query.indices[got]])
            state.labeled_y = np.concatenate([state.labeled_y, labels[got]])
        n_abstained = int((~got).sum())
        state.n_abstained += n_abstained
        state.n_spent += len(query) if self.settings.abstain_costs_budget else int(got.sum())
        state.empty_rounds = 0 if got.any() else state.empty_rounds + 1

    def _finish_round(self, state: LoopState, record: RoundRecord, finished: bool) -> None:
        state.records.append(record)
        state.round += 1
        state.finished = finished
        if self.on_round is not None:
            self.on_round(record)


def records_to_rows(records: list[RoundRecord], **columns: Any) -> list[dict[str, Any]]:
    """Tidy rows, one per (round, test set), with ``columns`` (dataset, strategy, seed) added."""
    rows: list[dict[str, Any]] = []
    for rec in records:
        for test_set, acc in rec.accuracy.items():
            rows.append({
                **columns,
                "round": rec.round,
                "n_labels": rec.n_labels,
                "test_set": test_set,
                "accuracy": acc,
                "n_train": rec.n_train,
                "n_abstained": rec.n_abstained,
                "fit_seconds": rec.fit_seconds,
                "query_seconds": rec.query_seconds,
                "label_seconds": rec.label_seconds,
            })
    return rows
