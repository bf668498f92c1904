"""The durable label store: one SQLite file per labeling session.

Every label is committed (WAL journal, ``synchronous=FULL``: the commit has reached the disk)
before the web app acknowledges it, so a label a person saw acknowledged survives a crash or a
power cut. The store holds the session's history as the engine's events
(:class:`~activegen.engine.Event`), each written in the transaction of the action it records:

- ``asked``: a round's queries, stored with them (:meth:`LabelStore.insert_round`);
- ``told``: the round's answers, when its last open query is answered (in that answer's
  transaction, :meth:`LabelStore.record_label` or :meth:`LabelStore.import_labels`);
- ``taught``: labels imported for pool images the session had not asked;
- ``finished``: the budget spent or the pool exhausted.

:meth:`LabelStore.events` reads them back in order, so the engine's state is their fold
(:func:`activegen.engine.replay`) and round ``r`` of the store is the engine's round ``r``.
The schema makes the session's promises hold by construction:

- ``labels.query_id`` is UNIQUE: a label is stored at most once, however often it is posted;
- ``queries.pool_index`` is UNIQUE where set: no pool image is ever asked twice;
- one ``asked`` and one ``told`` event per round, one ``finished`` event per store.

Synthesized queries keep their image (PNG, exactly as the person saw it, and what the engine
trains on), their latent vector (``numpy.save`` bytes) and the identity of their generator.

One process owns a store at a time (an exclusive ``flock`` on ``<store>-lock``, released by
the kernel when the process dies, even by SIGKILL); threads of that process share one
connection behind a lock. A version-1 store is migrated when it is opened
(:mod:`activegen.server.core.store_migration`).
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
from typing import Any, Literal

import numpy as np

from activegen.data.dataset import images_to_float
from activegen.engine import Event
from activegen.errors import DataError
from activegen.server.core.errors import Conflict, StorageFull, Unavailable
from activegen.server.core.png import png_image
from activegen.server.core.schema import TABLES_V2, VERSION
from activegen.server.core.store_migration import migrate_v1

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
_ANSWER_KEYS = ("query_id", "round", "kind", "source", "pool_index", "label", "labeler", "ts",
                "generator_id", "image", "latent")
_ANSWERS_SQL = ("SELECT q.id, q.round, q.kind, q.source, q.pool_index, l.label, l.labeler, l.ts, "
                "q.generator_id, q.image, q.latent FROM labels l JOIN queries q "
                "ON q.id = l.query_id ORDER BY l.id")
#: the answers with each one's labels row last (an export names a row it leaves out)
_ANSWERS_WITH_ROW_SQL = _ANSWERS_SQL.replace(" FROM labels", ", l.id FROM labels")


@dataclass(frozen=True)
class NewQuery:
    """A query about to be stored."""

    kind: str
    pool_index: int | None = None
    image: bytes | None = None
    latent: bytes | None = None
    generator_id: str | None = None
    score: float | None = None


LabelOutcome = Literal["recorded", "duplicate", "conflict", "unknown", "leased"]


@dataclass(frozen=True)
class RecordedLabel:
    """What :meth:`LabelStore.record_label` did.

    Attributes:
        outcome: ``recorded``; ``duplicate`` (the same answer was stored: nothing written);
            ``conflict`` (another answer is stored); ``unknown`` (no such query); ``leased``
            (another labeler holds the query).
        row: the query (None when unknown).
        stored: the answer stored for it (None when none).
        told: whether this answer closed its round (its ``told`` event was written with it).
    """

    outcome: LabelOutcome
    row: QueryRow | None
    stored: int | None
    told: bool = False


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
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False, timeout=30.0)
        except sqlite3.Error as exc:
            self._release_file_lock()
            raise DataError(f"{self.path}: cannot open the label store ({exc})") from None
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DataError(f"{self.path}: SQLite refused WAL journaling (got {mode!r})")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._open_schema()
            self._conn.execute("PRAGMA foreign_keys=ON")
        except BaseException as exc:
            self._conn.close()
            self._release_file_lock()
            refusal = (self.unwritable(exc) if isinstance(exc, sqlite3.OperationalError)
                       else exc)
            if isinstance(refusal, Unavailable):
                why = ("the disk is full: free space and run the same command again"
                       if isinstance(refusal, StorageFull) else
                       f"its disk cannot be written ({exc})")
                raise DataError(f"{self.path}: the label store cannot be opened: "
                                f"{why}") from None
            if isinstance(exc, sqlite3.DatabaseError):
                raise DataError(f"{self.path}: not a usable label store ({exc})") from None
            raise

    def _open_schema(self) -> None:
        """Create the tables of a new store, or migrate a version-1 store (foreign keys are
        still off: the migration rebuilds the queries table under the answers)."""
        has_meta = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        stored = None if has_meta is None else self._conn.execute(
            "SELECT value FROM meta WHERE key = 'schema'").fetchone()
        version = None if stored is None else stored[0]
        if version == VERSION:
            return
        with self.transaction() as conn:
            if version is None:
                for statement in TABLES_V2:
                    conn.execute(statement)
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (VERSION,))
            elif version == "1":
                migrate_v1(conn)
            else:
                raise DataError(f"{self.path}: store schema {version}, expected {VERSION}")

    # -- plumbing -------------------------------------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        """The lock every reader and writer of this store holds."""
        return self._lock

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write) transaction, committed durably when the block exits cleanly.

        Raises:
            StorageFull, Unavailable: the disk is full, read-only or failing (or another
                process held the store too long): nothing of the transaction is stored.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self.unwritable(exc) from None
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    raise self.unwritable(exc) from None
                raise

    def unwritable(self, exc: sqlite3.OperationalError) -> Exception:
        """The refusal of a write SQLite could not make, naming the store; ``exc`` itself
        when it is not about the disk (a bug)."""
        name = exc.sqlite_errorname or ""
        if name.startswith("SQLITE_FULL"):
            return StorageFull(f"{self.path}: the disk is full; this change is not stored "
                               "(every answer acknowledged before it is): free space and "
                               "send it again")
        if name.startswith(("SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN",
                            "SQLITE_BUSY", "SQLITE_LOCKED")):
            return Unavailable(f"{self.path}: the store cannot be written ({exc}); this "
                               "change is not stored (every answer acknowledged before it "
                               "is)")
        return exc

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

    def meta(self) -> dict[str, str]:
        """The whole ``meta`` table (what an export reads besides the answers)."""
        return dict(self.read("SELECT key, value FROM meta"))

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- where the session stands (plain counts of the events) ------------------------------
    def round(self) -> int:
        """The engine's round: how many rounds are told (the open round, if any, has this
        number; so has the round being prepared)."""
        with self._lock:
            return _told_count(self._conn)

    def open_round(self) -> int | None:
        """The round asked and not told yet, if any."""
        with self._lock:
            return _open_round(self._conn)

    def finished(self) -> str | None:
        """Why the session finished (``budget``, ``pool``, ``no labels``), or None."""
        rows = self.read("SELECT reason FROM events WHERE kind = 'finished'")
        return rows[0][0] if rows else None

    def last_seq(self) -> int:
        """The newest event's number (0 before the first)."""
        return int(self.read("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])

    def n_asked(self) -> int:
        """Session queries asked so far."""
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

    # -- the worker's writes: a round asked, the session finished --------------------------
    def insert_round(self, round_: int, queries: Sequence[NewQuery]) -> int:
        """Store round ``round_``'s queries and its ``asked`` event in one transaction; the
        event's number.

        Raises:
            RuntimeError: a round is open, the session is finished, or ``round_`` is not the
                next round (the caller's engine disagrees with the store: a bug).
        """
        now = time.time()
        with self.transaction() as conn:
            self._check_next_round(conn, round_)
            cur = conn.execute("INSERT INTO events (kind, round, ts) VALUES ('asked', ?, ?)",
                               (round_, now))
            conn.executemany(
                "INSERT INTO queries (round, position, kind, source, pool_index, image, latent, "
                "generator_id, score, status, created) "
                "VALUES (?, ?, ?, 'session', ?, ?, ?, ?, ?, 'pending', ?)",
                [(round_, i, q.kind, q.pool_index, q.image, q.latent, q.generator_id, q.score,
                  now) for i, q in enumerate(queries)],
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def finish(self, round_: int, reason: str) -> int:
        """Record that the session finished at round ``round_``; the event's number."""
        with self.transaction() as conn:
            self._check_next_round(conn, round_)
            cur = conn.execute("INSERT INTO events (kind, round, reason, ts) "
                               "VALUES ('finished', ?, ?, ?)", (round_, reason, time.time()))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def reopen(self) -> bool:
        """Take back the ``finished`` event of a session its budget ended, so that a raised
        budget continues it (the event records the budget's consequence, not an answer);
        whether there was one. A session the pool or a stop ended stays finished."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM events WHERE kind = 'finished' AND reason = "
                               "'budget'")
            return cur.rowcount > 0

    @staticmethod
    def _check_next_round(conn: sqlite3.Connection, round_: int) -> None:
        if conn.execute("SELECT 1 FROM events WHERE kind = 'finished'").fetchone():
            raise RuntimeError("the session is finished: no round can be added")
        if _open_round(conn) is not None:
            raise RuntimeError("a round is open: the next one waits for its answers")
        if round_ != _told_count(conn):
            raise RuntimeError(f"round {round_} is not the next round ({_told_count(conn)})")

    # -- queries --------------------------------------------------------------------------
    def query(self, query_id: int) -> QueryRow | None:
        rows = self.read(f"SELECT {_QUERY_COLUMNS} FROM queries WHERE id=?", (query_id,))
        return QueryRow(*rows[0]) if rows else None

    def image_source(self, query_id: int) -> tuple[int | None, bytes | None] | None:
        """``(pool_index, png)`` of a query (one of them set), or None if there is no such id."""
        rows = self.read("SELECT pool_index, image FROM queries WHERE id=?", (query_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def answered_pool_indices(self) -> set[int]:
        """Pool images with an answer (a class or "can't tell")."""
        return {int(r[0]) for r in self.read(
            "SELECT q.pool_index FROM labels l JOIN queries q ON q.id = l.query_id "
            "WHERE q.pool_index IS NOT NULL")}

    def assign(self, labeler: str, limit: int, lease_seconds: float,
               now: float | None = None) -> list[QueryRow]:
        """Hand ``labeler`` the open round's queries it already holds, topped up to ``limit``
        with pending ones (and ones whose lease expired); in one transaction, so two labelers
        never hold the same query. Nothing when no round is open."""
        now = time.time() if now is None else now
        expired = now - lease_seconds
        with self.transaction() as conn:
            round_ = _open_round(conn)
            if round_ is None:
                return []
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
                    "AND source='session' ORDER BY id LIMIT ?)", (labeler, now, round_, free))
            # Renew the lease on everything this labeler holds.
            conn.execute("UPDATE queries SET assigned_at=? WHERE status='assigned' "
                         "AND assigned_to=?", (now, labeler))
            rows = conn.execute(
                f"SELECT {_QUERY_COLUMNS} FROM queries WHERE status='assigned' "
                "AND assigned_to=? AND round=? ORDER BY id", (labeler, round_)).fetchall()
        return [QueryRow(*r) for r in rows]

    def record_label(self, query_id: int, label: int, labeler: str, lease_seconds: float,
                     now: float | None = None) -> RecordedLabel:
        """Store one answer, durably; idempotent by query id. The answer that leaves its round
        without an open query writes the round's ``told`` event in the same transaction."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            row = conn.execute(f"SELECT {_QUERY_COLUMNS} FROM queries WHERE id=?",
                               (query_id,)).fetchone()
            if row is None:
                return RecordedLabel("unknown", None, None)
            q = QueryRow(*row)
            stored = conn.execute("SELECT label FROM labels WHERE query_id=?",
                                  (query_id,)).fetchone()
            if stored is not None:
                outcome = "duplicate" if int(stored[0]) == label else "conflict"
                return RecordedLabel(outcome, q, int(stored[0]))
            if (q.status == "assigned" and q.assigned_to != labeler
                    and q.assigned_at is not None and q.assigned_at >= now - lease_seconds):
                return RecordedLabel("leased", q, None)
            _answer(conn, query_id, label, labeler, now)
            told = _tell_if_answered(conn, q.round, now)
        return RecordedLabel("recorded", q, label, told)

    def undo_last(self, labeler: str, now: float | None = None) -> QueryRow | None:
        """Delete ``labeler``'s newest answer to a query of the open round and hand the query
        back to them; None when there is none (a told round's answers are final)."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            round_ = _open_round(conn)
            if round_ is None:
                return None
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

    def import_labels(self, items: Sequence[tuple[int, int]], labeler: str
                      ) -> dict[str, int]:
        """Record ``(pool_index, label)`` pairs from outside the session, in one transaction.

        A pool image not asked yet becomes an answered ``import`` query, and all of them one
        ``taught`` event (uncharged); one open in the current round gets the label as if
        posted (closing the round, and writing its ``told`` event after the ``taught`` one,
        when it was the last); one already answered with the same label is counted
        ``already``, with another label ``conflicts`` (left as stored).

        Raises:
            Conflict: labels for images not asked yet, and the session is finished.
        """
        now = time.time()
        out = {"imported": 0, "already": 0, "conflicts": 0}
        with self.transaction() as conn:
            new: dict[int, int] = {}
            answered_open = False
            for pool_index, label in items:
                if pool_index in new:
                    out["already" if new[pool_index] == label else "conflicts"] += 1
                    continue
                row = conn.execute("SELECT id, status FROM queries WHERE pool_index=?",
                                   (pool_index,)).fetchone()
                if row is None:
                    new[pool_index] = label
                    continue
                query_id, status = row
                if status in OPEN_STATUSES:
                    _answer(conn, query_id, label, labeler, now)
                    answered_open = True
                    out["imported"] += 1
                    continue
                stored = conn.execute("SELECT label FROM labels WHERE query_id=?",
                                      (query_id,)).fetchone()
                out["already" if stored and stored[0] == label else "conflicts"] += 1
            if new:
                if conn.execute("SELECT 1 FROM events WHERE kind = 'finished'").fetchone():
                    raise Conflict("the session is finished: no more labels can be imported "
                                   "into it")
                cur = conn.execute("INSERT INTO events (kind, round, ts) VALUES ('taught', ?, ?)",
                                   (_told_count(conn), now))
                seq = cur.lastrowid
                start = conn.execute(
                    "SELECT COUNT(*) FROM queries WHERE source='import'").fetchone()[0]
                for j, (pool_index, label) in enumerate(new.items()):
                    cur = conn.execute(
                        "INSERT INTO queries (round, position, kind, source, pool_index, "
                        "status, created, taught_seq) VALUES (?, ?, 'pool', 'import', ?, ?, ?, ?)",
                        (_told_count(conn), start + j, pool_index,
                         "labeled" if label >= 0 else "abstained", now, seq))
                    conn.execute("INSERT INTO labels (query_id, label, labeler, ts) "
                                 "VALUES (?, ?, ?, ?)", (cur.lastrowid, label, labeler, now))
                out["imported"] += len(new)
            if answered_open:
                round_ = _open_round(conn)
                if round_ is not None:
                    _tell_if_answered(conn, round_, now)
        return out

    # -- the events, as the engine reads them ------------------------------------------------
    def events(self, after: int = 0) -> list[tuple[int, Event]]:
        """The events numbered after ``after``, in order, each with its number.

        Pool queries are their pool indices; synthesized ones are read back from their PNG
        (the pixels the person saw); a told round's labels are aligned with its queries'
        positions; a taught event holds its import's pool indices and labels.

        Raises:
            DataError: a told round with an unanswered query (a damaged store).
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, kind, round, charged, reason FROM events WHERE seq > ? "
                "ORDER BY seq", (after,)).fetchall()
            rounds = [int(r[2]) for r in rows if r[1] in ("asked", "told")]
            session = [] if not rounds else self._conn.execute(
                "SELECT q.round, q.kind, q.pool_index, q.image, l.label FROM queries q "
                "LEFT JOIN labels l ON l.query_id = q.id WHERE q.source = 'session' "
                "AND q.round >= ? ORDER BY q.round, q.position", (min(rounds),)).fetchall()
            taught = self._conn.execute(
                "SELECT q.taught_seq, q.pool_index, l.label FROM queries q "
                "JOIN labels l ON l.query_id = q.id WHERE q.taught_seq > ? "
                "ORDER BY q.taught_seq, q.position", (after,)).fetchall()
        by_round: dict[int, list[tuple]] = {}
        for row in session:
            by_round.setdefault(int(row[0]), []).append(row)
        by_seq: dict[int, list[tuple]] = {}
        for row in taught:
            by_seq.setdefault(int(row[0]), []).append(row)
        out: list[tuple[int, Event]] = []
        for seq, kind, round_, charged, reason in rows:
            queries = by_round.get(int(round_), [])
            if kind == "asked":
                if queries and queries[0][1] == "synth":
                    samples = images_to_float(np.stack([self._stored_png(q[3], round_)
                                                        for q in queries]))
                    event = Event("asked", round_, samples=samples)
                else:
                    event = Event("asked", round_, np.asarray([q[2] for q in queries], np.int64))
            elif kind == "told":
                if any(q[4] is None for q in queries):
                    raise DataError(f"{self.path}: round {round_} is told but not every query "
                                    "of it is answered; the store is damaged")
                event = Event("told", round_, labels=np.asarray([q[4] for q in queries],
                                                                np.int64))
            elif kind == "taught":
                items = by_seq.get(int(seq), [])
                event = Event("taught", round_, np.asarray([t[1] for t in items], np.int64),
                              labels=np.asarray([t[2] for t in items], np.int64),
                              charged=bool(charged))
            else:
                event = Event("finished", round_, reason=reason)
            out.append((int(seq), event))
        return out

    # -- what no session writes -------------------------------------------------------------
    def check_rows(self, n_pool: int, n_classes: int) -> None:
        """Refuse a store holding a row no session writes (an answer that is no class, a pool
        index outside the pool, a status that disagrees with its answer): such a row was
        changed outside activegen, and the session would fold it into its learner.

        Raises:
            DataError: naming the store, the table and the row, and what to do; the store's
                other answers are untouched and stay exportable.
        """
        with self._lock:
            bad = find_bad_row(self._conn, n_classes, n_pool)
        if bad is not None:
            raise DataError(f"{self.path}: {bad}; no session writes that, so the store was "
                            f"changed outside activegen. The session is not opened; its other "
                            f"answers are intact ('activegen label-export {self.path}' writes "
                            "them, naming that row): correct the row, or open another --store")

    def _stored_png(self, data: bytes, round_: int) -> np.ndarray:
        try:
            return png_image(data)
        except Exception as exc:  # Pillow raises many kinds for bytes that are not a PNG
            raise DataError(f"{self.path}: a synthesized query of round {round_} holds an "
                            f"image that is not a PNG ({type(exc).__name__}); the store was "
                            "changed outside activegen") from None

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
        return [dict(zip(_ANSWER_KEYS, r)) for r in self.read(_ANSWERS_SQL)]


def find_bad_row(conn: sqlite3.Connection, n_classes: int, n_pool: int | None = None,
                 ) -> str | None:
    """The first row of a store that no session writes, described with its table and id
    (``n_pool``: the pool's size, when known); None when every row is possible. The schema's
    CHECKs cover kinds, sources and statuses; these are what it cannot know."""
    row = conn.execute(
        "SELECT id, query_id, label FROM labels WHERE typeof(label) != 'integer' "
        "OR label < -1 OR label >= ? ORDER BY id LIMIT 1", (n_classes,)).fetchone()
    if row is not None:
        return (f"labels row {row[0]} (query {row[1]}) holds the answer {row[2]!r}, which is "
                f"not a class (0..{n_classes - 1}) or -1 (can't tell)")
    upper = n_pool if n_pool is not None else 2**63 - 1
    row = conn.execute(
        "SELECT id, pool_index FROM queries WHERE pool_index IS NOT NULL AND "
        "(typeof(pool_index) != 'integer' OR pool_index < 0 OR pool_index >= ?) "
        "ORDER BY id LIMIT 1", (upper,)).fetchone()
    if row is not None:
        return (f"queries row {row[0]} asks for pool_index {row[1]!r}, outside the pool"
                + (f" (0..{n_pool - 1})" if n_pool is not None else ""))
    row = conn.execute(
        "SELECT q.id, q.status, l.id FROM queries q LEFT JOIN labels l ON l.query_id = q.id "
        "WHERE (l.id IS NULL) != (q.status IN ('pending', 'assigned')) "
        "OR (l.label = -1) != (q.status = 'abstained') ORDER BY q.id LIMIT 1").fetchone()
    if row is not None:
        has = "no answer" if row[2] is None else f"an answer (labels row {row[2]})"
        return f"queries row {row[0]} has the status {row[1]!r} but {has}"
    return None


def _told_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'told'").fetchone()[0])


def _open_round(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        "SELECT a.round FROM events a WHERE a.kind = 'asked' AND NOT EXISTS "
        "(SELECT 1 FROM events t WHERE t.kind = 'told' AND t.round = a.round)").fetchone()
    return None if row is None else int(row[0])


def _answer(conn: sqlite3.Connection, query_id: int, label: int, labeler: str,
            now: float) -> None:
    conn.execute("INSERT INTO labels (query_id, label, labeler, ts) VALUES (?, ?, ?, ?)",
                 (query_id, label, labeler, now))
    conn.execute("UPDATE queries SET status=?, assigned_to=?, assigned_at=? WHERE id=?",
                 ("labeled" if label >= 0 else "abstained", labeler, now, query_id))


def _tell_if_answered(conn: sqlite3.Connection, round_: int, now: float) -> bool:
    """Write round ``round_``'s ``told`` event if none of its queries is open; whether it did."""
    open_ = conn.execute("SELECT COUNT(*) FROM queries WHERE source='session' AND round=? "
                         "AND status IN ('pending', 'assigned')", (round_,)).fetchone()[0]
    if open_:
        return False
    conn.execute("INSERT INTO events (kind, round, ts) VALUES ('told', ?, ?)", (round_, now))
    return True


def read_meta(path: str | os.PathLike[str], key: str) -> str | None:
    """One ``meta`` value of a store, read-only; None when there is no store, no such key, or
    nothing readable (opening the store names what is wrong with it)."""
    if not Path(path).is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None
    return None if row is None else str(row[0])


@dataclass(frozen=True)
class StoredAnswers:
    """What :func:`read_answers` reads: the answers, the classes, the session's config, the
    rows left out because no session writes them (each named), and the whole ``meta`` table
    (what an export reads besides the answers: the pool's files, the audit's)."""

    rows: list[dict[str, Any]]
    classes: list[str]
    config: dict[str, Any]
    left_out: list[str]
    meta: dict[str, str]


def read_answers(path: str | os.PathLike[str]) -> StoredAnswers:
    """Every answer of a store, its classes, its config and its ``meta`` table, read-only (a
    running server may hold the store: SQLite's WAL lets this reader see every committed
    label). Rounds are the engine's, whatever the store's schema. An answer that is no class,
    or of a query outside any pool, is left out and named: an export gets every label out that
    can be read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such label store")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            rows = conn.execute(_ANSWERS_WITH_ROW_SQL).fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path}: not a label store ({exc})") from None
    try:
        classes = json.loads(meta["classes"])
        config = json.loads(meta.get("config", "{}"))
        if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)
                and isinstance(config, dict)):
            raise ValueError("not a list of class names and a config")
    except (KeyError, ValueError, RecursionError) as exc:
        raise DataError(f"{path}: not a label store (its classes or config cannot be read: "
                        f"{str(exc)[:80]})") from None
    answers, left_out = [], []
    for r in rows:
        answer = dict(zip(_ANSWER_KEYS, r[:-1]))
        label, index = answer["label"], answer["pool_index"]
        if not (isinstance(label, int) and -1 <= label < len(classes)):
            left_out.append(f"labels row {r[-1]} (query {answer['query_id']}): the answer "
                            f"{label!r} is not a class (0..{len(classes) - 1}) or -1")
        elif index is not None and not (isinstance(index, int) and index >= 0):
            left_out.append(f"labels row {r[-1]} (query {answer['query_id']}): pool_index "
                            f"{index!r} is outside any pool")
        else:
            answers.append(answer)
    if meta.get("schema") == "1":  # its rounds were numbered from 1
        for answer in answers:
            answer["round"] = max(int(answer["round"]) - 1, 0)
    return StoredAnswers(answers, classes, config, left_out, meta)
