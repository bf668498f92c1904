"""The label store's tables, by schema version.

Version 2 keeps the session's history as the engine's events (``events``: a query asked, its
answers told, labels taught by an import, the session finished) beside the queries and answers
they refer to. Version 1 (no ``events`` table; session rounds numbered from 1) is kept here
only so that :mod:`activegen.server.core.store_migration` can read it and tests can build one.
"""

from __future__ import annotations

VERSION = "2"

#: the stopping notice's entry in ``meta`` (its rows carry round numbers)
STOPPING_KEY = "stopping"
#: the audit's answers in ``meta`` (never training data, so never events)
AUDIT_KEY = "audit_answers"
#: the audit sample's files, its estimate per round (so an export from the store alone has
#: them), and the pool's files of an image-folder session
AUDIT_FILES_KEY = "audit_files"
AUDIT_CURVE_KEY = "audit_curve"
FILES_KEY = "files"
#: the pool's source as ``meta`` keeps it (an image folder's files and their SHA-256, in pool
#: order), so a reopened session finds each answer's image again in a folder that grew
POOL_LAYOUT_KEY = "pool_layout"
#: set in ``meta`` by the migration from version 1: that version's settings fingerprint is
#: not this one's, so the session checks the stored settings by name on its first open
MIGRATED_KEY = "migrated_from"

#: Version 2, one statement each (run inside a transaction: ``executescript`` would commit).
TABLES_V2 = (
    """CREATE TABLE IF NOT EXISTS meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # seq orders everything that happened; AUTOINCREMENT never reuses a number, so a reader
    # that has applied the events up to seq s can ask for the ones after s.
    """CREATE TABLE IF NOT EXISTS events (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        kind    TEXT NOT NULL CHECK (kind IN ('taught', 'asked', 'told', 'finished')),
        round   INTEGER NOT NULL CHECK (round >= 0),
        charged INTEGER NOT NULL DEFAULT 0 CHECK (charged IN (0, 1)),
        reason  TEXT NOT NULL DEFAULT '',
        ts      REAL NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_asked_once ON events (round) "
    "WHERE kind = 'asked'",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_told_once ON events (round) "
    "WHERE kind = 'told'",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_finished_once ON events (kind) "
    "WHERE kind = 'finished'",
    """CREATE TABLE IF NOT EXISTS queries (
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
        status       TEXT NOT NULL CHECK (status IN ('pending', 'assigned', 'labeled',
                                                     'abstained')),
        assigned_to  TEXT,
        assigned_at  REAL,
        created      REAL NOT NULL,
        taught_seq   INTEGER REFERENCES events (seq),
        CHECK ((kind = 'pool') = (pool_index IS NOT NULL)),
        CHECK ((kind = 'synth') = (image IS NOT NULL)),
        CHECK ((source = 'import') = (taught_seq IS NOT NULL))
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS queries_pool_once ON queries (pool_index) "
    "WHERE pool_index IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS queries_round_position ON queries (round, position) "
    "WHERE source = 'session'",
    "CREATE INDEX IF NOT EXISTS queries_status ON queries (status, round)",
    "CREATE INDEX IF NOT EXISTS queries_taught ON queries (taught_seq) "
    "WHERE taught_seq IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS labels (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        query_id INTEGER NOT NULL UNIQUE REFERENCES queries (id),
        label    INTEGER NOT NULL,
        labeler  TEXT NOT NULL,
        ts       REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS fits (
        round    INTEGER PRIMARY KEY,
        n_labels INTEGER NOT NULL,
        n_asked  INTEGER NOT NULL,
        accuracy TEXT NOT NULL,
        ts       REAL NOT NULL
    )""",
)

#: Version 1, as its stores were made (session rounds from 1, imports as queries only).
SCRIPT_V1 = """
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
INSERT OR IGNORE INTO meta VALUES ('schema', '1');
"""
