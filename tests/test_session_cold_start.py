"""Cold start: while nothing is labeled, the engine's first batch is the cold-start
strategy's (TypiClust, ProbCover) on features of its own, in a labeling session as in a
library user's ``ActiveLearner``; the first batch is exactly what the strategy's selection
function gives on the same features with the engine's seeded generator of round 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activegen.engine import ActiveLearner, derive_seed
from activegen.models.linear import LinearSVM
from activegen.strategies import STRATEGIES
from activegen.strategies.cold_start import input_features, select_cold_start, typiclust_select
from label_support import digits_config, make_session

SEED = 3  # digits_config's seed
FIRST = 10


def _first_batch(session) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(r[0]) for r in session.store.read(
        "SELECT pool_index FROM queries WHERE round = 0 AND source = 'session' "
        "ORDER BY position")]


def test_a_labeling_session_whose_first_batch_is_typiclust(tmp_path: Path) -> None:
    config = digits_config(initial=FIRST, batch=5, budget=30,
                           cold_start={"name": "typiclust", "features": "pixels"})
    session, pool = make_session(tmp_path / "s.sqlite", config)
    try:
        first = _first_batch(session)
        expected = typiclust_select(input_features(session.X_pool), np.empty(0, np.int64),
                                    FIRST, np.random.default_rng(derive_seed(SEED, 0, 3)))
        assert first == expected.tolist()
        # the engine asked it: the store's first event is round 0's query, the cold start's
        (_, asked), = session.store.events()
        assert asked.kind == "asked" and asked.indices.tolist() == first
        # its answers make the learner; round 1 is the strategy's (uncertainty), not TypiClust's
        for row in session.batch("t").queries:
            session.label(row.id, int(pool.y[row.pool_index]), "t")
        assert session.learner is not None and session.store.open_round() == 1
    finally:
        session.close()
    # reopened, the same first batch (stored), and the same second one (replayed)
    again, _ = make_session(tmp_path / "s.sqlite", config)
    try:
        assert _first_batch(again) == first
        assert again.store.n_asked() == FIRST + 5
    finally:
        again.close()


def test_a_labeling_session_whose_first_batch_is_probcover(tmp_path: Path) -> None:
    config = digits_config(initial=FIRST, batch=5, budget=30,
                           cold_start={"name": "probcover", "features": "pixels"})
    session, _ = make_session(tmp_path / "s.sqlite", config)
    try:
        expected = select_cold_start("probcover", input_features(session.X_pool),
                                     np.empty(0, np.int64), FIRST,
                                     np.random.default_rng(derive_seed(SEED, 0, 3)),
                                     session.n_classes)
        assert _first_batch(session) == expected.tolist()
    finally:
        session.close()


def test_without_a_cold_start_the_first_batch_is_a_seeded_draw(tmp_path: Path) -> None:
    a, _ = make_session(tmp_path / "a.sqlite", digits_config(initial=FIRST, batch=5,
                                                             budget=30))
    typiclust = digits_config(initial=FIRST, batch=5, budget=30,
                              cold_start={"name": "typiclust", "features": "pixels"})
    b, _ = make_session(tmp_path / "b.sqlite", typiclust)
    try:
        assert _first_batch(a) != _first_batch(b)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("name", ["typiclust", "probcover"])
def test_an_active_learner_whose_first_batch_is_the_cold_starts(name: str) -> None:
    from activegen.data import load_dataset

    ds = load_dataset("digits").select_classes([3, 8])
    X, y = ds.to_float(), ds.y
    engine = ActiveLearner(X, 2, LinearSVM(2), STRATEGIES.build("margin", {}), seed=7,
                           cold_start=STRATEGIES.build(name, {"features": "pixels"}),
                           budget=20)
    first = engine.ask(FIRST)
    expected = select_cold_start(name, input_features(X), np.empty(0, np.int64), FIRST,
                                 np.random.default_rng(derive_seed(7, 0, 3)), 2)
    assert first.indices.tolist() == expected.tolist()
    engine.tell(first, y[first.indices])
    second = engine.ask(5)  # now the strategy's, by the learner fitted on the first batch
    assert engine.learner is not None and len(second) == 5
    assert not set(second.indices.tolist()) & set(first.indices.tolist())
