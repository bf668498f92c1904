"""The labeling session *tells* the engine each round's answers (``ActiveLearner.tell``), and
a session reopened from its store (``load``) continues exactly as one that never stopped:
the engine kept in memory and the engine rebuilt from the SQLite store hold the same state.
Checked for a pool strategy and for a synthesizing one (whose images the store keeps as the
8-bit PNGs the person saw), with abstentions among the answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from activegen.engine import ActiveLearner
from activegen.strategies import STRATEGIES
from label_support import FakeSynthesis, digits_config, make_session

ROUNDS = 5


def _answer_round(session, truth: np.ndarray, abstain_every: int = 5) -> None:
    rows = session.batch("t")
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


@pytest.mark.parametrize("name", ["margin", "fake-synthesis"])
def test_told_rounds_equal_rounds_rebuilt_from_the_store(tmp_path: Path, name: str,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    config = digits_config(classes=[3, 8], batch=5, budget=5 * (ROUNDS + 1))
    told = []
    tell = ActiveLearner.tell

    def spy(self, query, labels, label_seconds=0.0):  # type: ignore[no-untyped-def]
        told.append(len(query))
        return tell(self, query, labels, label_seconds)

    monkeypatch.setattr(ActiveLearner, "tell", spy)
    # one session that never stops: every closed round is told to the engine in memory
    kept, pool = make_session(tmp_path / "kept.sqlite", config, strategy=_strategy(name))
    try:
        for _ in range(ROUNDS):
            _answer_round(kept, pool.y)
        assert told == [5] * ROUNDS, told  # every closed round, the first batch's included
        # the state the engine was told equals the state read back from the store, exactly
        # (synthesized images included: the engine keeps the pixels the store keeps)
        in_memory = kept._asked[2].state  # type: ignore[index]
        from_store = kept._engine().state
        assert in_memory.round == from_store.round == ROUNDS
        open_round = [i for (i,) in kept.store.read(
            "SELECT pool_index FROM queries WHERE round = ? AND kind = 'pool'", (ROUNDS + 1,))]
        from_store.queried[open_round] = False  # asked in round 6, not told yet
        for field in ("labeled_indices", "labeled_y", "queried", "X_extra", "y_extra"):
            np.testing.assert_array_equal(getattr(in_memory, field), getattr(from_store, field),
                                          err_msg=field)
        for field in ("n_spent", "n_abstained", "empty_rounds"):
            assert getattr(in_memory, field) == getattr(from_store, field), field
        if name == "fake-synthesis":
            assert len(in_memory.X_extra) > 0
        kept_rounds, kept_accuracy = _rounds(kept), kept.store.read(
            "SELECT round, n_labels, accuracy FROM fits ORDER BY round")
    finally:
        kept.close()
    # the same answers, the session closed and reopened after every round: rebuilt each time
    told.clear()
    store = tmp_path / "reopened.sqlite"
    for _ in range(ROUNDS):
        session, _ = make_session(store, config, strategy=_strategy(name))
        try:
            _answer_round(session, pool.y)
        finally:
            session.close()
    # only the first session answered a round it had asked itself; every later one answered a
    # round asked before it was reopened, so rebuilt its engine from the store
    assert told == [5], told
    session, _ = make_session(store, config, strategy=_strategy(name))
    try:
        assert _rounds(session) == kept_rounds
        assert session.store.read("SELECT round, n_labels, accuracy FROM fits ORDER BY round") \
            == kept_accuracy
    finally:
        session.close()
