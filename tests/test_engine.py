"""The ask/tell engine: answers are checked, runs are seeded, capabilities are checked. That
the labeling session stands on the same engine (prepare hooks, fit context, extra features,
the `grow` schedule) for every strategy × learner is in test_session_matrix.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from activegen.data import load_dataset
from activegen.engine import ActiveLearner, MemoryStore
from activegen.errors import ConfigError, DataError, RunFinished
from activegen.experiments.config import parse_config
from activegen.models import LinearSVM
from activegen.models.capabilities import (
    Differentiable,
    Embedding,
    FitContext,
    LossPredicting,
    PoolPrepared,
    Probabilistic,
    check_compatible,
    has_capability,
)
from activegen.server.config import parse_label_config
from activegen.strategies import STRATEGIES, Query, QueryState, Strategy


@pytest.fixture(scope="module")
def pool() -> tuple[np.ndarray, np.ndarray]:
    ds = load_dataset("digits").select_classes([3, 8])
    return ds.to_float(), ds.y


def _engine(pool, strategy: str = "margin", seed: int = 0, **kw: Any) -> ActiveLearner:
    X, y = pool
    return ActiveLearner(X, 2, LinearSVM(2), STRATEGIES.build(strategy, {}), seed=seed,
                         initial=(np.array([0, 1, 2, 3]), y[[0, 1, 2, 3]]), **kw)


def _run(engine: ActiveLearner, y: np.ndarray, rounds: int) -> list[np.ndarray]:
    asked = []
    for _ in range(rounds):
        q = engine.ask(3)
        asked.append(q.indices.copy())
        engine.tell(q, y[q.indices])
    return asked


def test_same_seed_same_queries_and_labels_grow(pool) -> None:
    _, y = pool
    a, b = _engine(pool, seed=5), _engine(pool, seed=5)
    runs = _run(a, y, 4), _run(b, y, 4)
    for qa, qb in zip(*runs, strict=True):
        np.testing.assert_array_equal(qa, qb)
    assert len(a.state.labeled_indices) == 4 + 12
    assert len(np.unique(np.concatenate(runs[0]))) == 12  # never asked twice
    assert [r.n_train for r in a.records] == [4, 7, 10, 13]


def test_answers_are_checked(pool) -> None:
    _, y = pool
    engine = _engine(pool)
    q = engine.ask(3)
    with pytest.raises(DataError, match="2 labels for 3 examples"):
        engine.tell(q, y[q.indices][:2])
    with pytest.raises(DataError, match=r"classes 0\.\.1 or -1 .*got 2 at position 1"):
        engine.tell(q, np.array([0, 2, 1]))
    with pytest.raises(RuntimeError, match="last ask"):
        engine.tell(type(q).from_pool(q.indices), y[q.indices])
    engine.tell(q, np.array([-1, 0, 1]))  # an abstention is an answer
    assert engine.state.n_abstained == 1 and engine.state.queried[q.indices].all()
    with pytest.raises(RuntimeError, match="last ask"):
        engine.tell(q, y[q.indices])  # the same query twice


def test_nothing_labeled_starts_with_a_seeded_random_draw_and_the_budget_ends_it(pool) -> None:
    X, y = pool
    make = lambda: ActiveLearner(X, 2, LinearSVM(2), STRATEGIES.build("margin", {}),  # noqa: E731
                                 seed=1, budget=9, batch_size=4)
    a, b = make(), make()
    qa, qb = a.ask(), b.ask()
    np.testing.assert_array_equal(qa.indices, qb.indices)
    assert a.learner is None and len(qa) == 4
    a.tell(qa, y[qa.indices])
    q2 = a.ask()
    assert a.learner is not None and len(q2) == 4
    a.tell(q2, y[q2.indices])
    q3 = a.ask()
    assert len(q3) == 1  # the budget caps the batch
    a.tell(q3, y[q3.indices])
    with pytest.raises(RunFinished, match="budget of 9 labels is spent"):
        a.ask()
    assert a.done
    assert [r.n_labels for r in a.records] == [0, 4, 8, 9]


def test_a_stored_state_resumes_identically(pool) -> None:
    _, y = pool
    store = MemoryStore()
    first = _engine(pool, store=store)
    _run(first, y, 2)
    resumed = _engine(pool, store=store)
    full = _engine(pool)
    _run(full, y, 2)
    np.testing.assert_array_equal(_run(resumed, y, 2)[1], _run(full, y, 2)[1])


def test_capabilities_and_the_generic_check() -> None:
    from activegen.models import SelfTaughtSVM, SmallCNN

    svm = LinearSVM(2)
    for cap in (Probabilistic, Embedding, Differentiable):
        assert has_capability(svm, cap)
    assert not has_capability(svm, LossPredicting) and not has_capability(svm, PoolPrepared)
    assert has_capability(SelfTaughtSVM(2), PoolPrepared)
    assert not has_capability(SmallCNN(2, device="cpu"), LossPredicting)
    assert has_capability(SmallCNN(2, device="cpu", loss_head={}), LossPredicting)
    with pytest.raises(ConfigError, match=r"'learning-loss'.*LossPredicting.*'linear-svm'"):
        check_compatible(STRATEGIES.build("learning-loss", {}), svm)

    class NoEmbed:  # a user's object: probabilistic only
        name = "mine"

        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            return np.full((len(X), 2), 0.5)

    check_compatible(STRATEGIES.build("entropy", {}), NoEmbed())
    with pytest.raises(ConfigError, match=r"'coreset'.*Embedding.*'mine'"):
        check_compatible(STRATEGIES.build("coreset", {}), NoEmbed())
    with pytest.raises(ConfigError, match=r"'mixed'.*Differentiable"):
        check_compatible(STRATEGIES.build("mixed", {}), NoEmbed())


def test_configs_refuse_a_strategy_the_learner_cannot_serve() -> None:
    base = {"name": "x", "data": {"dataset": "digits", "test_fraction": 0.3},
            "learner": {"name": "linear-svm"},
            "loop": {"initial": 10, "batch": 5, "budget": 30}}
    with pytest.raises(ConfigError, match=r"strategies\[0\].*learning-loss.*LossPredicting"):
        parse_config({**base, "strategies": [{"name": "learning-loss"}]})
    with pytest.raises(ConfigError, match=r"learning-loss.*LossPredicting"):
        parse_label_config({"name": "x", "data": {"dataset": "digits"},
                            "strategy": {"name": "learning-loss"},
                            "loop": {"initial": 4, "batch": 4, "budget": 20}})


def test_fit_context_extra_must_match_the_labels() -> None:
    X = np.random.default_rng(0).random((6, 1, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="extra"):
        LinearSVM(2).fit(X, np.array([0, 1] * 3), FitContext(extra=np.zeros((5, 2))))


def test_an_active_learner_with_nothing_labeled_starts_with_its_cold_start(pool) -> None:
    """The engine runs the cold start while nothing is labeled: the first batch is
    TypiClust's on the pool (no learner), the second the strategy's."""
    from activegen.engine import derive_seed
    from activegen.strategies.cold_start import input_features, typiclust_select

    X, y = pool
    typiclust = STRATEGIES.build("typiclust", {"features": "pixels"})
    engine = ActiveLearner(X, 2, LinearSVM(2), STRATEGIES.build("margin", {}),
                           cold_start=typiclust, seed=4, batch_size=5)
    first = engine.ask(8)
    assert engine.learner is None  # chosen before any fit
    expected = typiclust_select(input_features(X), np.empty(0, np.int64), 8,
                                np.random.default_rng(derive_seed(4, 0, 3)))
    assert sorted(first.indices.tolist()) == sorted(expected.tolist())
    engine.tell(first, y[first.indices])
    second = engine.ask()
    assert engine.learner is not None and len(second) == 5
    state = engine.query_state()
    margin = STRATEGIES.build("margin", {}).query(
        QueryState(X, state.queried, state.labeled_indices, engine.learner, 2,
                   np.random.default_rng(derive_seed(4, 1, 3)), round=1), 5)
    np.testing.assert_array_equal(second.indices, margin.indices)


def test_teach_adds_labels_from_elsewhere_and_is_replayed(pool) -> None:
    _X, y = pool
    a = _engine(pool, seed=2)
    q = a.ask(3)
    a.teach(np.array([50, 51]), y[[50, 51]])  # while a round is open: fine
    with pytest.raises(DataError, match="asked or labeled twice"):
        a.teach(q.indices[:1], y[q.indices[:1]])  # the open query's own image: no
    a.tell(q, y[q.indices])
    assert {50, 51} <= set(a.state.labeled_indices.tolist())
    assert a.state.n_spent == 4 + 3  # taught labels are not charged unless asked to
    replayed = _engine(pool, seed=2, store=a.store)
    assert replayed.state.labeled_indices.tolist() == a.state.labeled_indices.tolist()
    with pytest.raises(DataError, match="labels must be integer classes"):
        a.teach(np.array([60]), np.array([0.5]))


class _Shifted(Strategy):
    """Synthesizes the first ``k`` unqueried pool images, darkened by the round (new images
    every round, no generator needed)."""

    name = "shifted"
    synthesizes = True

    def query(self, state: QueryState, k: int) -> Query:
        seen = state.X_refused
        assert seen is not None and len(seen) == 2 * state.round  # what the fold kept so far
        return Query.synthesized(state.X_pool[:k] * (0.9 - 0.1 * state.round))


def test_refused_synthesized_images_are_kept_and_replayed(pool) -> None:
    X, y = pool
    store = MemoryStore()
    engine = ActiveLearner(X, 2, LinearSVM(2), _Shifted(), seed=0,
                           initial=(np.array([0, 1, 2, 3]), y[[0, 1, 2, 3]]), store=store)
    asked = []
    for _ in range(3):
        q = engine.ask(3)
        asked.append(q.samples)
        engine.tell(q, np.array([-1, y[1], -1]))  # the first and last refused
    refused = np.concatenate([s[[0, 2]] for s in asked])
    np.testing.assert_array_equal(engine.state.X_refused, refused)
    np.testing.assert_array_equal(engine.state.X_extra, np.concatenate([s[[1]] for s in asked]))
    assert engine.query_state().X_refused is engine.state.X_refused
    replayed = ActiveLearner(X, 2, LinearSVM(2), _Shifted(), seed=0, store=store)
    np.testing.assert_array_equal(replayed.state.X_refused, refused)
