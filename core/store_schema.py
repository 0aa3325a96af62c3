"""The campaign file's SQL schema and its history: the first version and every migration.

Owns the shape of the file (tables, indexes, the application id, the schema version) and
the ordered list of upgrades from version N to N+1. A new file is made by running the
first version and then every migration, so a fresh file and an upgraded one can never
differ. Never reads or writes campaign data itself (``core.store`` does), never commits
(the caller owns the transaction), never talks to the network.

History is frozen: once released, a version's SQL is never edited; a change is a new
migration appended to :data:`MIGRATIONS` together with its test in
``tests/integration/test_store.py`` (a test fails if one is missing).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

#: ``PRAGMA application_id``: "MXML" in ASCII. Lets us refuse any other SQLite file.
APPLICATION_ID = 0x4D584D4C

#: Bytes per database page, set when a file is made (SQLite's default is 4096).
PAGE_SIZE = 4096

#: The rows of the non-final statuses, as the partial index ``recipients_pending`` selects
#: them. Queries that want that index must use exactly this text.
PENDING_WHERE = "status IN ('queued', 'deferred')"

#: Version 1, statement by statement (``executescript`` would commit the caller's
#: transaction). Statuses and faults are plain text checked by ``core.store``: a CHECK
#: constraint here would make every new status a rebuild of a million-row table.
VERSION_1: tuple[str, ...] = (
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE campaign (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        sender   TEXT NOT NULL,
        message  BLOB NOT NULL,
        settings TEXT NOT NULL  -- JSON object
    )
    """,
    # Merge-field names are stored once per distinct column list, not once per row.
    """
    CREATE TABLE fieldsets (
        id    INTEGER PRIMARY KEY,
        names TEXT NOT NULL UNIQUE  -- JSON array of column names, in order
    )
    """,
    """
    CREATE TABLE recipients (
        id               INTEGER PRIMARY KEY,
        email            TEXT NOT NULL,
        domain           TEXT NOT NULL,
        fieldset         INTEGER NOT NULL REFERENCES fieldsets (id),
        field_values     TEXT NOT NULL,  -- in the order of fieldsets.names: U+001F before
                                         -- each value, or a JSON array
        status           TEXT NOT NULL,
        reason           TEXT NOT NULL DEFAULT '',
        wait_reason      TEXT NOT NULL DEFAULT '',
        next_attempt_at  REAL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        first_attempt_at REAL,
        last_attempt_at  REAL,
        code             INTEGER,
        enhanced         TEXT NOT NULL DEFAULT '',
        text             TEXT NOT NULL DEFAULT '',
        mx               TEXT NOT NULL DEFAULT '',
        fault            TEXT NOT NULL DEFAULT '',
        message_id       TEXT NOT NULL DEFAULT '',
        date_header      TEXT NOT NULL DEFAULT '',
        greylist_mx      TEXT NOT NULL DEFAULT '',
        eod_at           REAL  -- end of data written, no result recorded since
    )
    """,
    # pending(): the non-final rows in id order, without visiting the final ones.
    "CREATE INDEX recipients_pending ON recipients (id) WHERE status IN ('queued', 'deferred')",
    # counts() (a covering scan of the status column) and due rows by retry time.
    "CREATE INDEX recipients_status ON recipients (status, next_attempt_at)",
    """
    CREATE TABLE attempts (
        id           INTEGER PRIMARY KEY,
        recipient_id INTEGER NOT NULL REFERENCES recipients (id),
        started_at   REAL NOT NULL,
        finished_at  REAL NOT NULL,
        mx           TEXT NOT NULL,
        address      TEXT NOT NULL,
        outcome      TEXT NOT NULL,
        code         INTEGER,
        enhanced     TEXT NOT NULL,
        text         TEXT NOT NULL,
        stage        TEXT NOT NULL,
        transcript   TEXT NOT NULL
    )
    """,
    "CREATE INDEX attempts_recipient ON attempts (recipient_id)",
)

#: Upgrades from version N to N+1 (``MIGRATIONS[0]`` takes version 1 to version 2). Each
#: runs inside the caller's transaction, together with the new ``schema_version``.
Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def latest_version(migrations: Sequence[Migration] | None = None) -> int:
    """The version this code writes: the first one plus every migration."""
    return 1 + len(MIGRATIONS if migrations is None else migrations)


def statements(*sql: str) -> Migration:
    """A migration made of SQL statements, run one by one in the caller's transaction."""

    def run(connection: sqlite3.Connection) -> None:
        for statement in sql:
            connection.execute(statement)

    return run


def build(connection: sqlite3.Connection, version: int | None = None) -> int:
    """Create the schema at ``version`` (default: the latest) in an empty database.

    Runs inside the caller's transaction and returns the version it built.
    """
    target = latest_version() if version is None else version
    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    statements(*VERSION_1)(connection)
    set_version(connection, 1)
    return upgrade(connection, 1, target)


def upgrade(connection: sqlite3.Connection, found: int, target: int | None = None) -> int:
    """Apply the migrations from ``found`` up to ``target`` (default: the latest).

    Runs inside the caller's transaction; returns the version reached.
    """
    goal = latest_version() if target is None else target
    for version in range(found, goal):
        MIGRATIONS[version - 1](connection)
        set_version(connection, version + 1)
    return goal


def read_application_id(connection: sqlite3.Connection) -> int:
    row = connection.execute("PRAGMA application_id").fetchone()
    return int(row[0])


def read_version(connection: sqlite3.Connection) -> int | None:
    """The file's schema version, or ``None`` if it has no readable one."""
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    if row is None:
        return None
    try:
        return int(row[0])
    except ValueError:
        return None


def set_version(connection: sqlite3.Connection, version: int) -> None:
    connection.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(version),),
    )
