"""One active-learning run (Algorithm 1 of both papers): fit, evaluate, query, label, repeat.

The run is the engine's ask/tell (:class:`~activegen.engine.ActiveLearner`) with an oracle
answering: ``while not done: tell(q, oracle.label(q := ask()))``. It is deterministic given its
seed: every random draw of round ``r`` comes from a generator seeded with ``(seed, r)``, and the
learner is retrained from scratch each round. So a run killed after round ``r`` and resumed
from its checkpoint produces exactly the rows an uninterrupted run produces, and strategies
compared at one seed start from one initial set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from activegen.data.dataset import Dataset
from activegen.engine import (
    MAX_EMPTY_ROUNDS,
    ActiveLearner,
    Checkpoint,
    LoopSettings,
    LoopState,
    NpzStore,
    QuerySink,
    RoundRecord,
    derive_seed,
    initial_labeled_indices,
)
from activegen.errors import ConfigError, DataError, RunFinished
from activegen.models.base import Learner
from activegen.oracles.base import Oracle
from activegen.strategies.base import Strategy

__all__ = [
    "MAX_EMPTY_ROUNDS",
    "ActiveLearningLoop",
    "Checkpoint",
    "LoopSettings",
    "LoopState",
    "QuerySink",
    "RoundRecord",
    "derive_seed",
    "initial_labeled_indices",
    "records_to_rows",
]


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
        cache_dir: where a pool-prepared learner (self-taught) caches its basis.
        cold_start: chooses the first ``initial_size`` labels (TypiClust, ProbCover, core-set
            on features of their own); ``None``: a seeded uniform draw that depends on the
            pool and the seed only, so every strategy of a seed starts alike.
        on_fitted: sees each round's fitted learner (stopping criteria).
        stop_when: asked after each round's fit and evaluation; True ends the run there.
        inputs: what the learner and the strategy see instead of the pool's images: the pool's
            feature vectors and each test set's (a feature source's; ``None``: the images).
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
        fsync: bool = True,
        cache_dir: Path | None = None,
        cold_start: Strategy | None = None,
        on_fitted: Callable[[RoundRecord, Learner], None] | None = None,
        stop_when: Callable[[RoundRecord], bool] | None = None,
        inputs: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        if settings.initial_size > len(pool):
            raise ConfigError(
                f"initial_size ({settings.initial_size}) exceeds the pool ({len(pool)} images)"
            )
        self.pool = pool
        self.X_pool = pool.to_float() if inputs is None else inputs[0]
        self.make_learner = make_learner
        self.strategy = strategy
        self.oracle = oracle
        self.settings = settings
        self.seed = seed
        self.test_sets = {name: (ds.to_float() if inputs is None else inputs[1][name], ds.y)
                          for name, ds in test_sets.items()}
        self.checkpoint = checkpoint
        self.on_round = on_round
        self.query_sink = query_sink
        self.fsync = fsync
        self.cache_dir = cache_dir
        self.cold_start = cold_start
        self.on_fitted = on_fitted
        self.stop_when = stop_when

    def run(self) -> list[RoundRecord]:
        """Run (or resume) until the budget is spent; returns every round's record."""
        store = NpzStore(self.checkpoint, self.fsync) if self.checkpoint is not None else None
        initial = None
        if self.cold_start is None:
            idx = initial_labeled_indices(self.pool.y, self.settings.initial_size, self.seed)
            initial = (idx, self.pool.y[idx])
        engine = ActiveLearner(
            self.X_pool, self.pool.n_classes, self.make_learner, self.strategy, seed=self.seed,
            initial=initial, cold_start=self.cold_start, budget=self.settings.budget,
            abstain_costs_budget=self.settings.abstain_costs_budget,
            test_sets=self.test_sets, store=store, cache_dir=self.cache_dir,
            on_round=self.on_round, query_sink=self.query_sink, on_fitted=self.on_fitted)
        for record in engine.records:  # the rounds of a resumed run
            if self.on_round is not None:
                self.on_round(record)
        while not engine.done:
            if self.stop_when is not None and self.stop_when(engine.fit()):
                engine.stop()
                break
            # the cold start's batch is the initial set's size; the strategy's i-th batch
            # the schedule's i-th size (round 0 is the cold start's when there is one)
            first = self.cold_start is not None and engine.state.n_spent == 0
            later = engine.state.round - (self.cold_start is not None)
            try:
                query = engine.ask(self.settings.initial_size if first
                                   else self.settings.batch_at(later))
            except RunFinished:
                break
            t0 = time.perf_counter()
            labels = np.asarray(self.oracle.label(query))
            seconds = time.perf_counter() - t0
            try:
                engine.tell(query, labels, label_seconds=seconds)
            except DataError as exc:
                raise RuntimeError(f"oracle {self.oracle.name!r}: {exc}") from None
        return engine.records


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
