"""The campaign file as an SQLite file: its schema and history, identity and settings.

Owns the shape of the file (tables, indexes, the application id, the schema version), the
ordered list of upgrades from version N to N+1, how a connection to the file is opened and
configured (WAL, locking, synchronous), and what SQLite's errors mean for the user. A new
file is made by running the first version and then every migration, so a fresh file and
an upgraded one can never differ. Never reads or writes campaign data (``core.store``
does), never commits (the caller owns the transaction), never talks to the network.

History is frozen: once released, a version's SQL is never edited; a change is a new
migration appended to :data:`MIGRATIONS` together with its test in
``tests/integration/test_store.py`` (a test fails if one is missing).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final


class StoreError(Exception):
    """The campaign file could not be read or written; the message says what to do."""


#: ``PRAGMA application_id``: "MXML" in ASCII. Lets us refuse any other SQLite file.
APPLICATION_ID = 0x4D584D4C

#: Bytes per database page, set when a file is made (SQLite's default). 8 and 16 KiB
#: import a little faster but make every small commit write more (bench/store_bench.py).
PAGE_SIZE = 4096
#: How long opening waits for another program's lock before giving up, in seconds.
BUSY_TIMEOUT: Final = 0.25
#: SQLite's page cache for the store's connection, in KiB.
CACHE_KIB: Final = 16 * 1024
#: The write-ahead log is copied into the file (a checkpoint: copies and two fsyncs) by
#: flush() once it holds this much, never by mark_end_of_data(), which must stay fast.
#: 1,000 delivered updates write about 4 MiB of log.
CHECKPOINT_BYTES: Final = 8 * 2**20
#: Imports checkpoint less often (faster: a hot page is copied once per checkpoint), and
#: once more at their end so that the next flush() does not inherit a long log.
IMPORT_CHECKPOINT_BYTES: Final = 64 * 2**20
#: A restarted log is cut back to this size. Below both thresholds, so that the size of
#: the -wal file tells how much is not checkpointed yet.
WAL_KEPT_BYTES: Final = 4 * 2**20

#: The rows of the non-final statuses, as the partial index ``recipients_pending`` selects
#: them. Queries that want that index must use exactly this text.
PENDING_WHERE = "status IN ('queued', 'deferred')"

#: The recipients table's secondary indexes, which only reads need. Importing into an
#: empty campaign drops them and builds them once at the end (maintaining them row by row
#: cost 1.2 s of a million-row import); opening a file for writing builds any missing one,
#: so an import cut short leaves nothing slow behind.
RECIPIENT_INDEXES: Final = (
    # pending(): the non-final rows in id order, without visiting the final ones.
    f"CREATE INDEX IF NOT EXISTS recipients_pending ON recipients (id) WHERE {PENDING_WHERE}",
    # counts() (a covering scan of the status column) and due rows by retry time.
    "CREATE INDEX IF NOT EXISTS recipients_status ON recipients (status, next_attempt_at)",
)
RECIPIENT_INDEX_NAMES: Final = ("recipients_pending", "recipients_status")


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
    *RECIPIENT_INDEXES,
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


# ---- opening -------------------------------------------------------------------------


def check_header(path: Path) -> None:
    """Refuse what is not an SQLite file before SQLite sees it."""
    try:
        with path.open("rb") as file:
            header = file.read(16)
    except FileNotFoundError:
        raise StoreError(f"there is no campaign file at {path}") from None
    except IsADirectoryError:
        raise StoreError(f"{path} is a folder, not an MX Mailer campaign file") from None
    except OSError as exc:
        raise StoreError(f"cannot read the campaign file {path}: {exc.strerror}") from exc
    if header != b"SQLite format 3\x00":
        what = "it is empty" if not header else "it is not an SQLite database"
        raise StoreError(f"{path} is not an MX Mailer campaign file ({what})")


def check_writable(path: Path) -> None:
    """Refuse a file we may not write: SQLite would quietly open it read-only and fail
    later with a locking error that names no cause."""
    for place, whose in ((path, "the file"), (path.absolute().parent, "its folder")):
        if not os.access(place, os.W_OK):
            raise StoreError(
                f"the campaign file {path} is read-only (no permission to write {whose}, or a"
                " read-only disk): make it writable, or copy the campaign to a writable"
                " folder. It can still be opened read-only to see and export its report."
            )


def connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection that never creates the file.

    Writable: locked for this process from the first read until close, so a second MX
    Mailer cannot open (and send) the same campaign, and WAL needs no shared-memory file.
    Read-only: SQLite's ``immutable`` mode, which takes no lock and creates no file next to
    the campaign (it works on read-only media); only for a file that was closed cleanly.
    """
    if read_only:
        check_closed_cleanly(path)
    mode = "ro&immutable=1" if read_only else "rw"
    uri = f"{path.absolute().as_uri()}?mode={mode}"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT)
    except sqlite3.Error as exc:
        raise StoreError(describe(exc, path, "opening the campaign", read_only=read_only)) from exc
    if not read_only:
        connection.execute("PRAGMA locking_mode = EXCLUSIVE")
    return connection


def check_closed_cleanly(path: Path) -> None:
    """A -wal file next to the campaign means it is open, or was not closed: its latest
    changes are in that log, which an immutable reader would not see."""
    if Path(f"{path}-wal").exists():
        raise StoreError(
            f"the campaign file {path} is open in MX Mailer, or was not closed cleanly (its"
            f" {path.name}-wal file is next to it): it cannot be opened read-only now. Close"
            " it, or open it writable once to recover it."
        )


def configure(connection: sqlite3.Connection, *, read_only: bool) -> None:
    """WAL, synchronous=NORMAL (a commit survives a killed process), foreign keys."""
    connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    connection.execute("PRAGMA foreign_keys = ON")
    if read_only:
        connection.execute("PRAGMA query_only = ON")
        return
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot use write-ahead logging (journal mode {mode})")
    connection.execute("PRAGMA synchronous = NORMAL")
    # We checkpoint ourselves (CHECKPOINT_BYTES).
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    connection.execute(f"PRAGMA journal_size_limit = {WAL_KEPT_BYTES}")


def check_identity(connection: sqlite3.Connection, path: Path) -> None:
    application_id = read_application_id(connection)
    if application_id != APPLICATION_ID:
        raise StoreError(
            f"{path} is not an MX Mailer campaign file (an SQLite database of another"
            f" program: application id {application_id:#x})"
        )


# ---- errors --------------------------------------------------------------------------

# SQLite primary result codes (https://sqlite.org/rescode.html).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


def describe(exc: sqlite3.Error, path: Path, action: str, *, read_only: bool = False) -> str:
    """A message for the user: which file, what went wrong, what to do."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    if code == _FULL:
        return (
            f"disk full while {action} in the campaign file {path}: the change was not saved"
            " and sending stops. Free some disk space, then open the campaign again."
        )
    if code == _READONLY:
        why = "it was opened read-only" if read_only else "no permission, or a read-only disk"
        return (
            f"the campaign file {path} is read-only ({why}): {action} was refused. Make the"
            " file and its folder writable, or copy the campaign to a writable folder, then"
            " open it again."
        )
    if code in (_BUSY, _LOCKED):
        return (
            f"the campaign file {path} is in use by another program (another MX Mailer"
            f" window?): {action} failed. Close it there, then try again."
        )
    if code == _IOERR:
        return (
            f"disk error while {action} in the campaign file {path} ({name}): check the disk,"
            " then open the campaign again."
        )
    if code == _CANTOPEN:
        return (
            f"cannot open the campaign file {path} ({name}): check that it exists and that"
            " its folder is writable (SQLite keeps a -wal file next to it)."
        )
    if code in (_CORRUPT, _NOTADB):
        return (
            f"the campaign file {path} is damaged or not an MX Mailer campaign file ({exc}):"
            f" {action} failed. Use a backup copy."
        )
    return f"{action} in the campaign file {path} failed: {exc} ({name})."
