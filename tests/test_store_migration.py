"""A version-1 label store (built here with that version's SQL) opens as version 2: rounds
renumbered from 0, its history rebuilt as events in the canonical order, in one transaction,
and a session continues it where it stopped."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from activegen.errors import ConfigError, DataError
from activegen.server.core.schema import SCRIPT_V1
from activegen.server.core.session import pool_fingerprint
from activegen.server.core.store import LabelStore, read_answers
from activegen.server.opening import load_session_data
from label_support import digits_config, make_session

ROUND_1 = [10, 11, 12, 13]  # v1 round 1: answered in full, one "can't tell"
ROUND_2 = [20, 21, 22, 23]  # v1 round 2: two answered, two open (one leased)
IMPORT_0, IMPORT_2 = 100, 200  # imported before round 1, and during round 2


def _v1_config() -> dict:
    """A labeling config as version 1 stored it (batch and budget under [labeling])."""
    return {"name": "test session", "seed": 3,
            "data": {"dataset": "digits", "test_fraction": 0.3},
            "learner": {"name": "linear-svm", "C": 1.0}, "strategy": {"name": "uncertainty"},
            "labeling": {"initial": None, "batch": 4, "budget": 24, "background": False}}


def build_v1_store(path: Path, truth: np.ndarray, pool_fp: str = "pool?") -> dict[int, int]:
    """A version-1 store mid-session; returns each answered pool image's label."""
    now = time.time()
    answers: dict[int, int] = {}
    conn = sqlite3.connect(path)
    conn.executescript(SCRIPT_V1)

    def query(round_: int, position: int, source: str, pool_index: int, status: str) -> int:
        cur = conn.execute(
            "INSERT INTO queries (round, position, kind, source, pool_index, status, "
            "assigned_to, assigned_at, created) VALUES (?, ?, 'pool', ?, ?, ?, ?, ?, ?)",
            (round_, position, source, pool_index, status,
             None if status == "pending" else "alice", None if status == "pending" else now,
             now))
        return int(cur.lastrowid)

    def answer(query_id: int, pool_index: int, label: int, labeler: str = "alice") -> None:
        conn.execute("INSERT INTO labels (query_id, label, labeler, ts) VALUES (?, ?, ?, ?)",
                     (query_id, label, labeler, now))
        answers[pool_index] = label

    answer(query(0, 0, "import", IMPORT_0, "labeled"), IMPORT_0, int(truth[IMPORT_0]), "import")
    for j, i in enumerate(ROUND_1):
        label = -1 if j == 1 else int(truth[i])
        answer(query(1, j, "session", i, "labeled" if label >= 0 else "abstained"), i, label)
    for j, i in enumerate(ROUND_2):
        if j < 2:
            answer(query(2, j, "session", i, "labeled"), i, int(truth[i]))
        else:
            query(2, j, "session", i, "assigned" if j == 2 else "pending")
    answer(query(2, 0, "import", IMPORT_2, "labeled"), IMPORT_2, int(truth[IMPORT_2]), "import")
    conn.executemany("INSERT INTO fits VALUES (?, ?, ?, ?, ?)",
                     [(1, 1, 4, json.dumps({"t": 0.5}), now), (2, 4, 8, json.dumps({"t": 0.6}),
                                                               now)])
    meta = {"session": json.dumps({"config": "v1-fingerprint", "pool": pool_fp}),
            "classes": json.dumps([str(c) for c in range(10)]),
            "config": json.dumps(_v1_config()),
            "stopping": json.dumps({"stop_set": 5, "rows": [
                {"round": 1, "n_labels": 1, "predictions": [0] * 5, "proba": None},
                {"round": 2, "n_labels": 4, "predictions": [1] * 5, "proba": None}]})}
    conn.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
    conn.commit()
    conn.close()
    return answers


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    pool, _ = load_session_data(digits_config())
    return pool.y


def test_a_v1_store_is_migrated_to_events(tmp_path: Path, truth: np.ndarray) -> None:
    path = tmp_path / "v1.sqlite"
    answers = build_v1_store(path, truth)
    with sqlite3.connect(path) as conn:
        before_labels = conn.execute("SELECT * FROM labels ORDER BY id").fetchall()
    store = LabelStore(path)
    try:
        assert store.get_meta("schema") == "2"
        events = store.events()
        # imports before round 0 taught first; then each round asked, its imports taught,
        # its answers told when all are in (v1 round 2 is open: not told)
        assert [(e.kind, e.round) for _, e in events] == [
            ("taught", 0), ("asked", 0), ("told", 0), ("asked", 1), ("taught", 1)]
        assert [seq for seq, _ in events] == list(range(1, 6))
        taught0, asked0, told0, asked1, taught1 = (e for _, e in events)
        assert taught0.indices.tolist() == [IMPORT_0] and not taught0.charged
        assert taught0.labels.tolist() == [answers[IMPORT_0]]
        assert asked0.indices.tolist() == ROUND_1
        assert told0.labels.tolist() == [answers[i] for i in ROUND_1]
        assert asked1.indices.tolist() == ROUND_2
        assert taught1.indices.tolist() == [IMPORT_2]
        # rounds from 0, the answers (ids, labelers, times) untouched, the round open
        assert store.round() == 1 and store.open_round() == 1
        assert store.read("SELECT * FROM labels ORDER BY id") == before_labels
        assert store.read("SELECT DISTINCT round FROM queries WHERE source = 'session' "
                          "ORDER BY round") == [(0,), (1,)]
        assert [f["round"] for f in store.fits()] == [0, 1]
        rows = json.loads(store.get_meta("stopping") or "{}")["rows"]
        assert [r["round"] for r in rows] == [0, 1]
        assert store.read("PRAGMA foreign_key_check") == []
    finally:
        store.close()


def test_a_failing_migration_leaves_the_v1_store_as_it_was(tmp_path: Path,
                                                           truth: np.ndarray) -> None:
    path = tmp_path / "v1.sqlite"
    build_v1_store(path, truth)
    with sqlite3.connect(path) as conn:  # an answer to no stored query: a damaged store
        conn.execute("INSERT INTO labels (query_id, label, labeler, ts) VALUES (999, 1, 'x', 0)")
        before = conn.execute("SELECT * FROM queries ORDER BY id").fetchall()
    with pytest.raises(DataError, match="refer to no stored query"):
        LabelStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("1",)
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'events'"
                            ).fetchone() is None
        assert conn.execute("SELECT * FROM queries ORDER BY id").fetchall() == before


def test_a_session_continues_a_migrated_store(tmp_path: Path, truth: np.ndarray) -> None:
    pool, _ = load_session_data(digits_config())
    path = tmp_path / "v1.sqlite"
    answers = build_v1_store(path, truth, pool_fingerprint(pool))
    assert [r["round"] for r in read_answers(path).rows] == [0, 0, 0, 0, 0, 1, 1, 1]
    session, _ = make_session(path, digits_config())
    try:
        assert session.worker is not None and session.worker.error is None
        engine = session.worker.engine.state
        assert engine.round == 1 and engine.n_spent == 4 and engine.n_abstained == 1
        assert sorted(engine.labeled_indices.tolist()) == sorted(
            i for i, y in answers.items() if y >= 0 and i not in ROUND_2)
        # the open round: its two unanswered queries, then round 2 is asked
        assert session.learner is not None
        rows = session.batch("alice").queries
        assert sorted(r.pool_index for r in rows) == ROUND_2[2:]
        for row in rows:
            session.label(row.id, int(truth[row.pool_index]), "alice")
        assert session.store.open_round() == 2 and session.store.n_asked() == 12
        assert session.worker.engine.state.n_spent == 8  # imports are not charged
    finally:
        session.close()
    # stamped with this version's fingerprint: a session of other settings is refused
    with pytest.raises(ConfigError, match="other settings"):
        make_session(path, digits_config(batch=5, budget=25))


def test_a_migrated_store_of_other_settings_is_refused(tmp_path: Path,
                                                       truth: np.ndarray) -> None:
    pool, _ = load_session_data(digits_config())
    path = tmp_path / "v1.sqlite"
    build_v1_store(path, truth, pool_fingerprint(pool))
    with pytest.raises(ConfigError, match="version-1 store"):
        make_session(path, digits_config(strategy="margin"))
