"""Opening a version-1 label store: its history rewritten as version 2's events.

A version-1 store kept the queries and answers only; the session rebuilt the engine's state
from them with rules of its own, and numbered its rounds from 1 (its round ``r`` was the
engine's ``r - 1``). Version 2 keeps the events themselves and the engine's round numbers.
:func:`migrate_v1` rewrites a store in place, inside the caller's transaction (all of it or
nothing): every round number is lowered by one (queries, fits, the stopping notice's rows),
and the events are rebuilt in one canonical order: labels imported before the first round
taught first, then for each round its query asked, the labels imported during it taught, and
its answers told if every query of it is answered. Answers, leases, ids and images are kept.
The store is marked as migrated: version 1 hashed its settings differently, so the session
checks them by name when it first opens the store (``LabelSession``).
"""

from __future__ import annotations

import json
import sqlite3
import time

from activegen.errors import DataError
from activegen.server.core.schema import MIGRATED_KEY, STOPPING_KEY, TABLES_V2, VERSION

_COLUMNS = ("id, round, position, kind, source, pool_index, image, latent, generator_id, "
            "score, status, assigned_to, assigned_at, created")


def migrate_v1(conn: sqlite3.Connection, now: float | None = None) -> None:
    """Rewrite the version-1 store open on ``conn`` as version 2 (see the module docstring).

    Call inside a write transaction with foreign keys off (the queries table is rebuilt with
    the same ids, so the answers' references hold again; they are checked before returning).

    Raises:
        DataError: the store's answers refer to queries it does not hold.
    """
    now = time.time() if now is None else now
    rows = conn.execute(f"SELECT {_COLUMNS} FROM queries ORDER BY id").fetchall()
    answered = {int(qid) for (qid,) in conn.execute("SELECT query_id FROM labels")}
    session: dict[int, list[int]] = {}  # v1 round -> its query ids
    imports: dict[int, list[int]] = {}
    for row in rows:
        (session if row[4] == "session" else imports).setdefault(int(row[1]), []).append(
            int(row[0]))
    for name in ("queries_pool_once", "queries_round_position", "queries_status"):
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    conn.execute("DROP TABLE queries")
    for statement in TABLES_V2:
        conn.execute(statement)

    def add(kind: str, round_: int) -> int:
        cur = conn.execute("INSERT INTO events (kind, round, ts) VALUES (?, ?, ?)",
                           (kind, round_, now))
        assert cur.lastrowid is not None
        return cur.lastrowid

    taught_seq: dict[int, int] = {}
    if imports.get(0):
        taught_seq[0] = add("taught", 0)
    for r in range(1, max([*session, *imports], default=0) + 1):
        if session.get(r):
            add("asked", r - 1)
        if imports.get(r):
            taught_seq[r] = add("taught", r - 1)
        if session.get(r) and all(qid in answered for qid in session[r]):
            add("told", r - 1)
    conn.executemany(
        f"INSERT INTO queries ({_COLUMNS}, taught_seq) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(row[0], max(int(row[1]) - 1, 0), *row[2:],
          taught_seq[int(row[1])] if row[4] == "import" else None) for row in rows])
    conn.execute("DELETE FROM fits WHERE round < 1")
    conn.execute("UPDATE fits SET round = -round")  # two steps: no primary key is hit
    conn.execute("UPDATE fits SET round = -round - 1")
    stored = conn.execute("SELECT value FROM meta WHERE key = ?", (STOPPING_KEY,)).fetchone()
    if stored is not None:
        payload = json.loads(stored[0])
        for entry in payload.get("rows", []):
            entry["round"] = int(entry["round"]) - 1
        conn.execute("UPDATE meta SET value = ? WHERE key = ?",
                     (json.dumps(payload), STOPPING_KEY))
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (VERSION,))
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (MIGRATED_KEY,))
    dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
    if dangling:
        raise DataError(f"label store: {len(dangling)} answers refer to no stored query; "
                        "the store is damaged and was left as it was")
