"""The active-learning loop: labels, budgets, initial sets, determinism and resuming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activegen.data import load_dataset
from activegen.data.dataset import Dataset
from activegen.errors import ConfigError
from activegen.loop import (
    ActiveLearningLoop,
    Checkpoint,
    LoopSettings,
    LoopState,
    RoundRecord,
    initial_labeled_indices,
    records_to_rows,
)
from activegen.models import LinearSVM
from activegen.oracles import ABSTAIN, PoolOracle
from activegen.strategies import STRATEGIES, Query, QueryState, Strategy


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Dataset]:
    ds = load_dataset("digits").select_classes([5, 7])
    return ds.split(0.3, seed=0)


class _Recorder:
    """A query sink that keeps every query and its labels."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, np.ndarray, np.ndarray]] = []

    def __call__(self, round_: int, query: Query, labels: np.ndarray) -> None:
        self.calls.append((round_, query.indices.copy(), labels.copy()))


def _loop(data, strategy: str | Strategy, settings: LoopSettings, seed: int = 0, **kw):
    pool, test = data
    if isinstance(strategy, str):
        strategy = STRATEGIES.build(strategy, {})
    oracle = kw.pop("oracle", PoolOracle(pool))
    return ActiveLearningLoop(
        pool=pool,
        make_learner=lambda s: LinearSVM(n_classes=2, seed=s),
        strategy=strategy,
        oracle=oracle,
        settings=settings,
        seed=seed,
        test_sets={"test": test},
        **kw,
    )


def _accuracies(records: list[RoundRecord]) -> list[tuple[int, int, float]]:
    return [(r.round, r.n_labels, r.accuracy["test"]) for r in records]


SETTINGS = LoopSettings(initial_size=6, batch_size=4, budget=30)


@pytest.mark.parametrize("strategy", ["random", "svm-active", "entropy"])
def test_no_pool_index_is_labeled_twice_and_labels_are_the_pool_labels(data, strategy) -> None:
    pool, _ = data
    sink = _Recorder()
    records = _loop(data, strategy, SETTINGS, seed=3, query_sink=sink).run()
    asked = np.concatenate([idx for _, idx, _ in sink.calls])
    initial = initial_labeled_indices(pool.y, SETTINGS.initial_size, 3)
    everything = np.concatenate([initial, asked])
    assert len(np.unique(everything)) == len(everything) == SETTINGS.budget
    for _, idx, labels in sink.calls:
        assert labels.tolist() == pool.y[idx].tolist()
    assert [r.n_labels for r in records] == SETTINGS.label_counts
    assert [r.n_train for r in records] == SETTINGS.label_counts


def test_label_counts_as_configured_with_a_last_partial_batch(data) -> None:
    settings = LoopSettings(initial_size=5, batch_size=4, budget=15)
    assert settings.label_counts == [5, 9, 13, 15]
    sink = _Recorder()
    records = _loop(data, "svm-active", settings, query_sink=sink).run()
    assert [r.n_labels for r in records] == [5, 9, 13, 15]
    assert [len(idx) for _, idx, _ in sink.calls] == [4, 4, 2]
    assert [r.round for r in records] == [0, 1, 2, 3]
    assert LoopSettings(3, 2, 3).label_counts == [3]  # budget = initial: one evaluation


def test_initial_set_is_shared_by_strategies_and_differs_across_seeds(data, tmp_path) -> None:
    pool, _ = data
    settings = LoopSettings(initial_size=8, batch_size=4, budget=12)
    firsts = {}
    for strategy in ("random", "svm-active"):
        for seed in (0, 1):
            path = tmp_path / f"{strategy}{seed}.npz"
            _loop(data, strategy, settings, seed=seed, checkpoint=path).run()
            firsts[strategy, seed] = _state(path, pool).labeled_indices[:8]
    assert firsts["random", 0].tolist() == firsts["svm-active", 0].tolist()
    assert firsts["random", 1].tolist() == firsts["svm-active", 1].tolist()
    assert firsts["random", 0].tolist() != firsts["random", 1].tolist()
    assert firsts["random", 0].tolist() == initial_labeled_indices(pool.y, 8, 0).tolist()


def test_initial_set_holds_both_classes_and_is_checked(data) -> None:
    pool, _ = data
    for seed in range(30):
        idx = initial_labeled_indices(pool.y, 2, seed)
        assert len(set(pool.y[idx].tolist())) == 2
    with pytest.raises(ConfigError, match=r"initial_size \(9999\) exceeds the pool"):
        initial_labeled_indices(pool.y, 9999, 0)


def test_same_seed_same_run_and_strategies_differ(data) -> None:
    a = _accuracies(_loop(data, "svm-active", SETTINGS, seed=5).run())
    b = _accuracies(_loop(data, "svm-active", SETTINGS, seed=5).run())
    assert a == b
    sink_r, sink_u = _Recorder(), _Recorder()
    _loop(data, "random", SETTINGS, seed=5, query_sink=sink_r).run()
    _loop(data, "svm-active", SETTINGS, seed=5, query_sink=sink_u).run()
    assert sink_r.calls[0][1].tolist() != sink_u.calls[0][1].tolist()


def _state(path: Path, pool) -> LoopState:
    """The state a checkpoint file holds, replayed."""
    return Checkpoint.read(path).replay(len(pool), pool.to_float().shape[1:], pool.n_classes)


class _Interrupt(Exception):
    pass


def test_resume_after_a_crash_gives_the_uninterrupted_rows(data, tmp_path: Path) -> None:
    full = _loop(data, "svm-active", SETTINGS, seed=2).run()
    checkpoint = tmp_path / "run.npz"

    def crash_after_round_3(record: RoundRecord) -> None:
        if record.round == 3:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        _loop(data, "svm-active", SETTINGS, seed=2, checkpoint=checkpoint,
              on_round=crash_after_round_3).run()
    saved = _state(checkpoint, data[0])
    assert saved.round == 3 and not saved.finished  # round 3 was not saved
    seen: list[int] = []
    resumed = _loop(data, "svm-active", SETTINGS, seed=2, checkpoint=checkpoint,
                    on_round=lambda r: seen.append(r.round)).run()
    assert _accuracies(resumed) == _accuracies(full)
    assert seen == list(range(len(full)))  # every round reported once, old and new
    assert _state(checkpoint, data[0]).finished
    # A finished checkpoint runs nothing more.
    again = _loop(data, "svm-active", SETTINGS, seed=2, checkpoint=checkpoint).run()
    assert _accuracies(again) == _accuracies(full)


def test_checkpoint_of_another_pool_is_refused(data, tmp_path: Path) -> None:
    pool, test = data
    checkpoint = tmp_path / "run.npz"
    _loop(data, "random", LoopSettings(4, 2, 6), checkpoint=checkpoint).run()
    smaller = (pool.take(np.arange(50)), test)
    with pytest.raises(ConfigError, match="checkpoint is for another pool"):
        _loop(smaller, "random", LoopSettings(4, 2, 6), checkpoint=checkpoint).run()


class _AbstainOnOdd(PoolOracle):
    """Abstains on odd pool indices."""

    def label(self, query: Query) -> np.ndarray:
        labels = super().label(query)
        labels[query.indices % 2 == 1] = ABSTAIN
        return labels


@pytest.mark.parametrize("charged", [True, False])
def test_abstentions_are_counted_and_charged_as_configured(data, charged: bool) -> None:
    pool, _ = data
    settings = LoopSettings(6, 4, 22, abstain_costs_budget=charged)
    sink = _Recorder()
    records = _loop(data, "random", settings, seed=1, oracle=_AbstainOnOdd(pool),
                    query_sink=sink).run()
    abstained = sum(int((labels == ABSTAIN).sum()) for _, _, labels in sink.calls)
    assert abstained > 0 and records[-1].n_abstained == abstained
    asked = sum(len(idx) for _, idx, _ in sink.calls)
    assert records[-1].n_train == 6 + asked - abstained
    assert records[-1].n_labels == (6 + asked if charged else 6 + asked - abstained) == 22


class _Greedy(Strategy):
    name = "greedy"

    def query(self, state: QueryState, k: int) -> Query:
        return Query.from_pool(state.available_indices[: k + 1])


class _Repeats(Strategy):
    name = "repeats"

    def query(self, state: QueryState, k: int) -> Query:
        return Query.from_pool(state.labeled_indices[:1])


def test_a_strategy_that_overspends_or_repeats_is_stopped(data) -> None:
    with pytest.raises(RuntimeError, match="returned 5 queries, more than the 4 asked for"):
        _loop(data, _Greedy(), SETTINGS).run()
    with pytest.raises(RuntimeError, match="asked for a pool point twice"):
        _loop(data, _Repeats(), SETTINGS).run()


def test_the_pool_runs_out_before_the_budget(data) -> None:
    pool, test = data
    small = (pool.take(np.arange(20)), test)
    y = small[0].y
    assert len(set(y.tolist())) == 2
    records = _loop(small, "svm-active", LoopSettings(4, 8, 30)).run()  # budget > pool
    assert [r.n_labels for r in records] == [4, 12, 20]


def test_loop_settings_refuse_impossible_budgets(data) -> None:
    with pytest.raises(ConfigError, match=r"budget \(3\) is below the initial labeled set \(5\)"):
        LoopSettings(5, 2, 3)
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        LoopSettings(5, 0, 10)
    with pytest.raises(ConfigError, match="initial_size must be >= 1"):
        LoopSettings(0, 1, 10)
    pool, _ = data
    with pytest.raises(ConfigError, match="exceeds the pool"):
        _loop(data, "random", LoopSettings(len(pool) + 1, 1, len(pool) + 1))


def test_records_to_rows_is_tidy() -> None:
    rec = RoundRecord(round=2, n_labels=10, n_train=9, n_abstained=1,
                      accuracy={"a": 0.5, "b": 0.75}, fit_seconds=0.1, eval_seconds=0.0)
    rows = records_to_rows([rec], dataset="d", strategy="s", seed=4)
    assert [(r["test_set"], r["accuracy"]) for r in rows] == [("a", 0.5), ("b", 0.75)]
    assert all(r["round"] == 2 and r["n_labels"] == 10 and r["seed"] == 4 for r in rows)
