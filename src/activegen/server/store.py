"""The durable label store: one SQLite file per labeling session.

Every label is committed (WAL journal, ``synchronous=FULL``: the commit has reached the disk)
before the web app acknowledges it, so a label a person saw acknowledged survives a crash or a
power cut. The schema makes the two promises of the session hold by construction:

- ``labels.query_id`` is UNIQUE: a label is stored at most once, however often it is posted;
- ``queries.pool_index`` is UNIQUE where set: no pool image is ever asked twice.

Synthesized queries keep their image (PNG, exactly as the person saw it), their latent vector
(``numpy.save`` bytes) and the identity of the generator that made them.

One process owns a store at a time (an exclusive ``flock`` on ``<store>-lock``, released by
the kernel when the process dies, even by SIGKILL); threads of that process share one
connection behind a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activegen.errors import DataError

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queries (
    id           INTEGER PRIMARY KEY,
    round        INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('pool', 'synth')),
    source       TEXT NOT NULL CHECK (source IN ('session', 'import')),
    pool_index   INTEGER,
    image        BLOB,
    latent       BLOB,
    generator_id TEXT,
    score        REAL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'assigned', 'labeled', 'abstained')),
    assigned_to  TEXT,
    assigned_at  REAL,
    created      REAL NOT NULL,
    CHECK ((kind = 'pool') = (pool_index IS NOT NULL)),
    CHECK ((kind = 'synth') = (image IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS queries_pool_once ON queries (pool_index)
    WHERE pool_index IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS queries_round_position ON queries (round, position)
    WHERE source = 'session';
CREATE INDEX IF NOT EXISTS queries_status ON queries (status, round);
CREATE TABLE IF NOT EXISTS labels (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    query_id INTEGER NOT NULL UNIQUE REFERENCES queries (id),
    label    INTEGER NOT NULL,
    labeler  TEXT NOT NULL,
    ts       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS fits (
    round    INTEGER PRIMARY KEY,
    n_labels INTEGER NOT NULL,
    n_asked  INTEGER NOT NULL,
    accuracy TEXT NOT NULL,
    ts       REAL NOT NULL
);
"""

OPEN_STATUSES = ("pending", "assigned")


@dataclass(frozen=True)
class QueryRow:
    """One stored query (without its image bytes)."""

    id: int
    round: int
    position: int
    kind: str
    source: str
    pool_index: int | None
    generator_id: str | None
    score: float | None
    status: str
    assigned_to: str | None
    assigned_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "round": self.round, "position": self.position, "kind": self.kind,
            "source": self.source, "pool_index": self.pool_index,
            "generator_id": self.generator_id, "score": self.score, "status": self.status,
        }


_QUERY_COLUMNS = ("id, round, position, kind, source, pool_index, generator_id, score, status, "
                  "assigned_to, assigned_at")


@dataclass(frozen=True)
class NewQuery:
    """A query about to be stored."""

    kind: str
    pool_index: int | None = None
    image: bytes | None = None
    latent: bytes | None = None
    generator_id: str | None = None
    score: float | None = None


class LabelStore:
    """The SQLite store of one labeling session (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(f"{self.path}-lock", "a+")  # noqa: SIM115 - held for life
        except OSError as exc:
            raise DataError(f"{self.path}: cannot create the label store there "
                            f"({exc.strerror or exc})") from None
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise DataError(
                f"{self.path}: another process (an 'activegen label' server?) is using this "
                "store; stop it first, or use another --store"
            ) from None
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False, timeout=30.0)
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DataError(f"{self.path}: SQLite refused WAL journaling (got {mode!r})")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._release_file_lock()
            raise DataError(f"{self.path}: not a usable label store ({exc})") from None
        self._lock = threading.RLock()
        with self.transaction() as conn:
            stored = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if stored is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif stored[0] != SCHEMA_VERSION:
                raise DataError(f"{self.path}: store schema {stored[0]}, expected "
                                f"{SCHEMA_VERSION}")

    # -- plumbing -------------------------------------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        """The lock every reader and writer of this store holds."""
        return self._lock

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write) transaction, committed durably when the block exits cleanly."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self._release_file_lock()

    def _release_file_lock(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
        self._lock_file.close()

    # -- meta -----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self.read("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- queries --------------------------------------------------------------------------
    def current_round(self) -> int:
        """The newest round of session queries (0 before the first batch)."""
        return int(self.read("SELECT COALESCE(MAX(round), 0) FROM queries "
                             "WHERE source='session'")[0][0])

    def open_count(self, round_: int) -> int:
        """Session queries of ``round_`` still waiting for an answer."""
        return int(self.read(
            "SELECT COUNT(*) FROM queries WHERE source='session' AND round=? "
            "AND status IN ('pending', 'assigned')", (round_,))[0][0])

    def n_asked(self) -> int:
        """Session queries generated so far (what the budget counts)."""
        return int(self.read("SELECT COUNT(*) FROM queries WHERE source='session'")[0][0])

    def counts(self, source: str | None = None) -> dict[str, int]:
        """Queries by status (of one ``source``, session or import, if given)."""
        if source is None:
            rows = self.read("SELECT status, COUNT(*) FROM queries GROUP BY status")
        else:
            rows = self.read("SELECT status, COUNT(*) FROM queries WHERE source=? "
                             "GROUP BY status", (source,))
        out = {s: 0 for s in ("pending", "assigned", "labeled", "abstained")}
        out.update({status: int(n) for status, n in rows})
        return out

    def insert_round(self, round_: int, queries: Sequence[NewQuery]) -> None:
        """Store one round's queries in one transaction (all of them or none)."""
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO queries (round, position, kind, source, pool_index, image, latent, "
                "generator_id, score, status, created) "
                "VALUES (?, ?, ?, 'session', ?, ?, ?, ?, ?, 'pending', ?)",
                [(round_, i, q.kind, q.pool_index, q.image, q.latent, q.generator_id, q.score, now)
                 for i, q in enumerate(queries)],
            )

    def query(self, query_id: int) -> QueryRow | None:
        rows = self.read(f"SELECT {_QUERY_COLUMNS} FROM queries WHERE id=?", (query_id,))
        return QueryRow(*rows[0]) if rows else None

    def image_source(self, query_id: int) -> tuple[int | None, bytes | None] | None:
        """``(pool_index, png)`` of a query (one of them set), or None if there is no such id."""
        rows = self.read("SELECT pool_index, image FROM queries WHERE id=?", (query_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def queried_pool_indices(self) -> list[int]:
        return [int(r[0]) for r in self.read(
            "SELECT pool_index FROM queries WHERE pool_index IS NOT NULL")]

    def training_rows(self, before_round: int) -> list[tuple[str, int | None, bytes | None, int]]:
        """``(kind, pool_index, image, label)`` of every answered query of rounds before
        ``before_round`` (abstentions excluded), in query-id order: the learner's data."""
        return self.read(
            "SELECT q.kind, q.pool_index, q.image, l.label FROM labels l "
            "JOIN queries q ON q.id = l.query_id "
            "WHERE q.round < ? AND l.label >= 0 ORDER BY q.id", (before_round,))

    def assign(self, labeler: str, round_: int, limit: int, lease_seconds: float,
               now: float | None = None) -> list[QueryRow]:
        """Hand ``labeler`` the open queries of ``round_`` it already holds, topped up to
        ``limit`` with pending ones (and ones whose lease expired); in one transaction, so two
        labelers never hold the same query."""
        now = time.time() if now is None else now
        expired = now - lease_seconds
        with self.transaction() as conn:
            conn.execute(
                "UPDATE queries SET status='pending', assigned_to=NULL, assigned_at=NULL "
                "WHERE status='assigned' AND assigned_at < ?", (expired,))
            held = conn.execute(
                "SELECT id FROM queries WHERE status='assigned' AND assigned_to=? AND round=? "
                "ORDER BY id", (labeler, round_)).fetchall()
            free = max(0, limit - len(held))
            if free:
                conn.execute(
                    "UPDATE queries SET status='assigned', assigned_to=?, assigned_at=? "
                    "WHERE id IN (SELECT id FROM queries WHERE status='pending' AND round=? "
                    "ORDER BY id LIMIT ?)", (labeler, now, round_, free))
            # Renew the lease on everything this labeler holds.
            conn.execute("UPDATE queries SET assigned_at=? WHERE status='assigned' "
                         "AND assigned_to=?", (now, labeler))
            rows = conn.execute(
                f"SELECT {_QUERY_COLUMNS} FROM queries WHERE status='assigned' "
                "AND assigned_to=? AND round=? ORDER BY id", (labeler, round_)).fetchall()
        return [QueryRow(*r) for r in rows]

    def record_label(self, query_id: int, label: int, labeler: str, lease_seconds: float,
                     now: float | None = None) -> tuple[str, QueryRow | None, int | None]:
        """Store one answer, durably; idempotent by query id.

        Returns ``(outcome, row, stored_label)`` with outcome one of ``recorded``,
        ``duplicate`` (the same answer was already stored: nothing written), ``conflict`` (a
        different answer is stored), ``unknown`` (no such query), ``leased`` (another labeler
        holds the query).
        """
        now = time.time() if now is None else now
        with self.transaction() as conn:
            row = conn.execute(f"SELECT {_QUERY_COLUMNS} FROM queries WHERE id=?",
                               (query_id,)).fetchone()
            if row is None:
                return "unknown", None, None
            q = QueryRow(*row)
            stored = conn.execute("SELECT label FROM labels WHERE query_id=?",
                                  (query_id,)).fetchone()
            if stored is not None:
                outcome = "duplicate" if int(stored[0]) == label else "conflict"
                return outcome, q, int(stored[0])
            if (q.status == "assigned" and q.assigned_to != labeler
                    and q.assigned_at is not None and q.assigned_at >= now - lease_seconds):
                return "leased", q, None
            conn.execute("INSERT INTO labels (query_id, label, labeler, ts) VALUES (?, ?, ?, ?)",
                         (query_id, label, labeler, now))
            conn.execute("UPDATE queries SET status=?, assigned_to=?, assigned_at=? WHERE id=?",
                         ("labeled" if label >= 0 else "abstained", labeler, now, query_id))
        return "recorded", q, label

    def undo_last(self, labeler: str, round_: int, now: float | None = None) -> QueryRow | None:
        """Delete ``labeler``'s newest answer to a session query of ``round_`` and hand the
        query back to them; None when there is none (answers of closed rounds are final)."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT l.id, l.query_id FROM labels l JOIN queries q ON q.id = l.query_id "
                "WHERE l.labeler=? AND q.round=? AND q.source='session' "
                "ORDER BY l.id DESC LIMIT 1", (labeler, round_)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM labels WHERE id=?", (row[0],))
            conn.execute("UPDATE queries SET status='assigned', assigned_to=?, assigned_at=? "
                         "WHERE id=?", (labeler, now, row[1]))
            q = conn.execute(f"SELECT {_QUERY_COLUMNS} FROM queries WHERE id=?",
                             (row[1],)).fetchone()
        return QueryRow(*q)

    def import_labels(self, round_: int, items: Sequence[tuple[int, int]], labeler: str
                      ) -> dict[str, int]:
        """Record ``(pool_index, label)`` pairs from outside the session, in one transaction.

        A pool image not asked yet becomes an answered ``import`` query of ``round_``; one that
        is open in this round gets the label as if posted; one already answered with the same
        label is skipped, with another label it is a conflict (left as stored).
        """
        now = time.time()
        out = {"imported": 0, "already": 0, "conflicts": 0}
        with self.transaction() as conn:
            for pool_index, label in items:
                row = conn.execute("SELECT id, status FROM queries WHERE pool_index=?",
                                   (pool_index,)).fetchone()
                if row is None:
                    position = conn.execute(
                        "SELECT COUNT(*) FROM queries WHERE source='import'").fetchone()[0]
                    cur = conn.execute(
                        "INSERT INTO queries (round, position, kind, source, pool_index, status, "
                        "created) VALUES (?, ?, 'pool', 'import', ?, ?, ?)",
                        (round_, position, pool_index,
                         "labeled" if label >= 0 else "abstained", now))
                    query_id = cur.lastrowid
                else:
                    query_id, status = row
                    if status not in OPEN_STATUSES:
                        stored = conn.execute("SELECT label FROM labels WHERE query_id=?",
                                              (query_id,)).fetchone()
                        out["already" if stored and stored[0] == label else "conflicts"] += 1
                        continue
                    conn.execute("UPDATE queries SET status=? WHERE id=?",
                                 ("labeled" if label >= 0 else "abstained", query_id))
                conn.execute(
                    "INSERT INTO labels (query_id, label, labeler, ts) VALUES (?, ?, ?, ?)",
                    (query_id, label, labeler, now))
                out["imported"] += 1
        return out

    # -- fits (the learning curve) ----------------------------------------------------------
    def record_fit(self, round_: int, n_labels: int, n_asked: int,
                   accuracy: dict[str, float]) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO fits VALUES (?, ?, ?, ?, ?)",
                         (round_, n_labels, n_asked, json.dumps(accuracy), time.time()))

    def fits(self) -> list[dict[str, Any]]:
        return [{"round": r, "n_labels": n, "n_asked": a, "accuracy": json.loads(acc)}
                for r, n, a, acc in self.read(
                    "SELECT round, n_labels, n_asked, accuracy FROM fits ORDER BY round")]

    # -- export ---------------------------------------------------------------------------
    def answered(self) -> list[dict[str, Any]]:
        """Every answer with its query, in the order they were given."""
        rows = self.read(
            "SELECT q.id, q.round, q.kind, q.source, q.pool_index, l.label, l.labeler, l.ts, "
            "q.generator_id, q.image, q.latent FROM labels l JOIN queries q "
            "ON q.id = l.query_id ORDER BY l.id")
        keys = ("query_id", "round", "kind", "source", "pool_index", "label", "labeler", "ts",
                "generator_id", "image", "latent")
        return [dict(zip(keys, r)) for r in rows]


def read_answers(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str],
                                                        dict[str, Any]]:
    """Every answer of a store, its classes and its config, read-only (a running server may
    hold the store: SQLite's WAL lets this reader see every committed label)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such label store")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            rows = conn.execute(
                "SELECT q.id, q.round, q.kind, q.source, q.pool_index, l.label, l.labeler, "
                "l.ts, q.generator_id, q.image, q.latent FROM labels l JOIN queries q "
                "ON q.id = l.query_id ORDER BY l.id").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path}: not a label store ({exc})") from None
    if "classes" not in meta:
        raise DataError(f"{path}: not a label store (no classes recorded)")
    keys = ("query_id", "round", "kind", "source", "pool_index", "label", "labeler", "ts",
            "generator_id", "image", "latent")
    config = json.loads(meta.get("config", "{}"))
    return [dict(zip(keys, r)) for r in rows], json.loads(meta["classes"]), config
