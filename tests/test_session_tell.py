"""The labeling session's engine is *told* each round's answers live (``ActiveLearner.tell``,
by the worker that owns it), and a session reopened from its store folds the same stored
events (``replay``): the live state and the replayed one are identical, and a session closed
and reopened after every round asks exactly what one that never stopped asks. Checked for a
pool strategy and for a synthesizing one (whose images the store keeps as the 8-bit PNGs the
person saw), with abstentions among the answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activegen.engine import ActiveLearner, replay
from activegen.strategies import STRATEGIES
from label_support import FakeSynthesis, digits_config, make_session

ROUNDS = 5


def _answer_round(session, truth: np.ndarray, abstain_every: int = 5) -> None:
    rows = session.batch("t").queries
    assert rows, "no open batch"
    for j, row in enumerate(rows):
        if j % abstain_every == abstain_every - 1:
            label = -1  # can't tell
        elif row.pool_index is not None:
            label = int(truth[row.pool_index])
        else:
            label = int(row.id) % session.n_classes  # a synthesized image: any fixed answer
        session.label(row.id, label, "t")


def _rounds(session) -> list[tuple]:
    return session.store.read(
        "SELECT round, position, kind, pool_index, image FROM queries WHERE source='session' "
        "ORDER BY id")


def _strategy(name: str):  # type: ignore[no-untyped-def]
    return FakeSynthesis() if name == "fake-synthesis" else STRATEGIES.build(name, {})


def _same_event(a, b) -> None:  # type: ignore[no-untyped-def]
    assert (a.kind, a.round, a.charged, a.reason) == (b.kind, b.round, b.charged, b.reason)
    np.testing.assert_array_equal(a.indices, b.indices)
    for field in ("labels", "samples"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=field)


@pytest.mark.parametrize("name", ["margin", "fake-synthesis"])
def test_told_rounds_equal_rounds_replayed_from_the_store(tmp_path: Path, name: str,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    config = digits_config(classes=[3, 8], batch=5, budget=5 * (ROUNDS + 1))
    told = []
    tell = ActiveLearner.tell

    def spy(self, query, labels, label_seconds=0.0):  # type: ignore[no-untyped-def]
        told.append(len(query))
        return tell(self, query, labels, label_seconds)

    monkeypatch.setattr(ActiveLearner, "tell", spy)
    # one session that never stops: every closed round is told to its one engine, live
    kept, pool = make_session(tmp_path / "kept.sqlite", config, strategy=_strategy(name))
    try:
        engine = kept.worker.engine
        for _ in range(ROUNDS):
            _answer_round(kept, pool.y)
        assert told == [5] * ROUNDS, told  # every closed round, the first batch's included
        assert kept.worker.engine is engine  # no rebuild: the answers were applied live
        # the live engine's events are the stored ones, and its state their fold, exactly
        # (synthesized images included: the engine keeps the pixels the store keeps)
        stored = [event for _, event in kept.store.events()]
        assert len(engine.events) == len(stored) == 2 * ROUNDS + 1
        for a, b in zip(engine.events, stored, strict=True):
            _same_event(a, b)
        live = engine.state
        replayed = replay(stored, len(kept.X_pool), kept.X_pool.shape[1:], kept.n_classes)
        assert live.round == replayed.round == ROUNDS
        for field in ("labeled_indices", "labeled_y", "queried", "X_extra", "y_extra"):
            np.testing.assert_array_equal(getattr(live, field), getattr(replayed, field),
                                          err_msg=field)
        for field in ("n_spent", "n_abstained", "empty_rounds", "finished"):
            assert getattr(live, field) == getattr(replayed, field), field
        _same_event(live.pending, replayed.pending)  # the open round, asked
        if name == "fake-synthesis":
            assert len(live.X_extra) > 0
        kept_rounds = _rounds(kept)
        kept_fits = kept.store.read("SELECT round, n_labels, accuracy FROM fits ORDER BY round")
    finally:
        kept.close()
    # the same answers, the session closed and reopened after every round: each reopened
    # engine folds the stored events, then is told the round answered in it, live
    told.clear()
    store = tmp_path / "reopened.sqlite"
    for _ in range(ROUNDS):
        session, _ = make_session(store, config, strategy=_strategy(name))
        try:
            _answer_round(session, pool.y)
        finally:
            session.close()
    assert told == [5] * ROUNDS, told
    session, _ = make_session(store, config, strategy=_strategy(name))
    try:
        assert _rounds(session) == kept_rounds
        assert session.store.read("SELECT round, n_labels, accuracy FROM fits ORDER BY round") \
            == kept_fits
    finally:
        session.close()
