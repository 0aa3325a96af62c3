"""The campaign store: one SQLite file per campaign, the single source of truth.

Owns the campaign file: the sender, the message template, the settings, every recipient
with its status and last reply, the attempt log, and the rules that make the file survive
a crash (WAL, the end-of-data mark journaled before the marker is sent: core.eod_journal,
recovery on open). The scheduler reads recipients from here and writes every transition back.

Never talks to the network, never decides delivery (what a reply means, when to retry,
when a recipient expires: the engine decides, the store remembers), never imports Qt.
Not thread-safe: one store is used from one thread (the engine's event loop).

A write that fails (disk full, read-only file, I/O error) poisons the store: every later
write raises :class:`StoreError`, so the engine stops sending instead of sending without
recording. Reopening the file is the way back.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import itertools
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from core import __version__, eod_journal
from core import store_schema as schema
from core.eod_journal import (
    EODJournal,
    Mark,
    compacting_path,
    identity,
    journal_path,
    read_marks,
)
from core.store_schema import StoreError as StoreError

# ---- values -------------------------------------------------------------------------------


class Status(enum.Enum):
    """A recipient's status; the values are what the file and the CSV report hold."""

    QUEUED = "queued"  # not final: never tried, or due again
    DEFERRED = "deferred"  # not final: a transient failure; waits for next_attempt_at
    DELIVERED = "delivered"  # final
    BOUNCED = "bounced"  # final
    EXPIRED = "expired"  # final: lifetime over, last reply kept
    INVALID = "invalid"  # final: bad address at import (reason kept)
    SUPPRESSED = "suppressed"  # final: on the suppression list
    AMBIGUOUS = "ambiguous"  # final until the user decides: end of data written, no reply

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES: Final = frozenset(
    {
        Status.DELIVERED,
        Status.BOUNCED,
        Status.EXPIRED,
        Status.INVALID,
        Status.SUPPRESSED,
        Status.AMBIGUOUS,
    }
)

#: What an import may give a new row.
IMPORT_STATUSES: Final = frozenset({Status.QUEUED, Status.INVALID, Status.SUPPRESSED})

#: The ``fault`` values a row may hold (``core.faults.Fault`` values).
FAULTS: Final = frozenset({"", "recipient", "sender"})

#: Attempt transcripts are cut to this many UTF-8 bytes (they never hold the body).
TRANSCRIPT_LIMIT: Final = 64 * 1024

#: What recovery writes in ``reason`` of a row whose end of data went out unanswered.
AMBIGUOUS_REASON: Final = (
    "possibly delivered: the end of data was written at %s and no reply was recorded"
    " before MX Mailer stopped; not sent again"
)

#: The report's ``detail`` for an ambiguous row (its status column says "deferred").
AMBIGUOUS_DETAIL: Final = (
    "possibly delivered: the server never answered the end of data; not sent again"
)

_STATUS_BY_VALUE: Final = {status.value: status for status in Status}


@dataclass(frozen=True, slots=True)
class NewRecipient:
    email: str  # as the user gave it (display)
    domain: str  # A-label, lower case ("" for invalid rows)
    fields: Mapping[str, str]  # merge fields (column name -> value)
    status: Status = Status.QUEUED
    reason: str = ""  # why invalid/suppressed


@dataclass(frozen=True, slots=True)
class AttemptLog:
    """One attempt, appended to the attempt log. ``transcript`` never holds the body."""

    started_at: float
    finished_at: float
    mx: str
    address: str
    outcome: str
    code: int | None
    enhanced: str
    text: str
    stage: str
    transcript: str = ""  # cut to TRANSCRIPT_LIMIT bytes when saved


@dataclass(frozen=True, slots=True)
class RecipientUpdate:
    """What the engine writes after an attempt or a decision: the row's whole state.

    Every state column is replaced by these values (defaults included): build it from the
    row with :meth:`RecipientState.to_update` to carry what does not change.
    """

    id: int
    status: Status
    wait_reason: str = ""
    next_attempt_at: float | None = None
    attempts: int = 0
    first_attempt_at: float | None = None
    last_attempt_at: float | None = None
    code: int | None = None
    enhanced: str = ""
    text: str = ""
    mx: str = ""
    fault: str = ""  # "recipient", "sender" or ""
    message_id: str = ""
    date_header: str = ""
    greylist_mx: str = ""
    attempt: AttemptLog | None = None  # appended to the attempt log, if given
    reason: str = ""  # why a final status was decided locally (suppressed, ambiguous...)


@dataclass(frozen=True, slots=True)
class RecipientState:
    """One row, as read."""

    id: int
    email: str
    domain: str
    fields: dict[str, str]
    status: Status
    wait_reason: str
    next_attempt_at: float | None
    attempts: int
    first_attempt_at: float | None
    last_attempt_at: float | None
    code: int | None
    enhanced: str
    text: str
    mx: str
    fault: str
    message_id: str
    date_header: str
    greylist_mx: str
    eod_at: float | None
    reason: str = ""

    def to_update(self, **changes: Any) -> RecipientUpdate:
        """An update that keeps every current value except ``changes``."""
        current = RecipientUpdate(
            self.id,
            self.status,
            self.wait_reason,
            self.next_attempt_at,
            self.attempts,
            self.first_attempt_at,
            self.last_attempt_at,
            self.code,
            self.enhanced,
            self.text,
            self.mx,
            self.fault,
            self.message_id,
            self.date_header,
            self.greylist_mx,
            reason=self.reason,
        )
        return dataclasses.replace(current, **changes)


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    requeued: int  # not final after recovery (QUEUED/DEFERRED): safe to send (again)
    ambiguous: int  # end of data written, no final status: now AMBIGUOUS


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One line of the CSV report; the field order is the header's order."""

    email: str
    status: str  # delivered, bounced, deferred, expired, invalid, suppressed
    code: str
    enhanced_code: str
    response: str
    mx: str
    attempts: str
    first_attempt: str  # ISO 8601 UTC
    last_attempt: str
    fault: str
    detail: str

    def as_tuple(self) -> tuple[str, ...]:
        return (
            self.email,
            self.status,
            self.code,
            self.enhanced_code,
            self.response,
            self.mx,
            self.attempts,
            self.first_attempt,
            self.last_attempt,
            self.fault,
            self.detail,
        )


REPORT_HEADER: Final = tuple(field.name for field in dataclasses.fields(ReportRow))

#: How the report names each status: its vocabulary is fixed, and a row that is not final
#: (or that may have been delivered) is "deferred" there.
REPORT_STATUS: Final = {
    status: "deferred"
    if status in (Status.QUEUED, Status.DEFERRED, Status.AMBIGUOUS)
    else status.value
    for status in Status
}


# ---- tuning -------------------------------------------------------------------------------

#: Rows per transaction when importing (one commit per batch).
IMPORT_BATCH: Final = 10_000
#: Rows per query when streaming (no statement stays open between pages).
PAGE: Final = 1_000

# ---- SQL ----------------------------------------------------------------------------------

_STATE_COLUMNS = (
    "id, email, domain, fieldset, field_values, status, wait_reason, next_attempt_at,"
    " attempts, first_attempt_at, last_attempt_at, code, enhanced, text, mx, fault,"
    " message_id, date_header, greylist_mx, eod_at, reason"
)
_INSERT = (
    "INSERT INTO recipients (email, domain, fieldset, field_values, status, reason)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_UPDATE = (
    "UPDATE recipients SET status = ?, wait_reason = ?, next_attempt_at = ?, attempts = ?,"
    " first_attempt_at = ?, last_attempt_at = ?, code = ?, enhanced = ?, text = ?, mx = ?,"
    " fault = ?, message_id = ?, date_header = ?, greylist_mx = ?, reason = ?,"
    " eod_at = NULL WHERE id = ?"
)
_INSERT_ATTEMPT = (
    "INSERT INTO attempts (recipient_id, started_at, finished_at, mx, address, outcome,"
    " code, enhanced, text, stage, transcript) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: An unsettled end-of-data journal record (at, id, attempt) written into its row, where
#: crash recovery looks: only if no result of that attempt (or a later one) was saved.
_FOLD = "UPDATE recipients SET eod_at = ? WHERE id = ? AND attempts < ?"
_PENDING_PAGE = (
    f"SELECT {_STATE_COLUMNS} FROM recipients INDEXED BY recipients_pending"
    f" WHERE {schema.PENDING_WHERE} AND id > ? ORDER BY id LIMIT ?"
)
_STATES_PAGE = f"SELECT {_STATE_COLUMNS} FROM recipients WHERE id > ? ORDER BY id LIMIT ?"
_REPORT_PAGE = (
    "SELECT id, email, status, code, enhanced, text, mx, attempts, first_attempt_at,"
    " last_attempt_at, fault, reason, wait_reason, next_attempt_at"
    " FROM recipients WHERE id > ? ORDER BY id LIMIT ?"
)
_IN_DOUBT_WHERE = f"{schema.PENDING_WHERE} AND eod_at IS NOT NULL"

#: What the user may send again: failures whose cause may be gone, and "possibly
#: delivered" rows once the user decides that a second copy is better than none.
RETRYABLE: Final = frozenset({Status.DEFERRED, Status.EXPIRED, Status.BOUNCED, Status.AMBIGUOUS})
_RETRY = (
    "UPDATE recipients SET status = 'queued', wait_reason = '', next_attempt_at = NULL,"
    " first_attempt_at = NULL, eod_at = NULL, reason = ''"
    f" WHERE id = ? AND status IN ({', '.join(repr(s.value) for s in sorted(RETRYABLE, key=str))})"
)

_US = "\x1f"  # the unit separator, between merge-field values
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# ---- helpers ------------------------------------------------------------------------------


def iso_utc(timestamp: float | None) -> str:
    """``2026-11-25T08:39:00Z``, or "" for no time."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _cut(transcript: str) -> str:
    raw = transcript.encode("utf-8", "replace")
    if len(raw) <= TRANSCRIPT_LIMIT:
        return transcript
    kept = raw[: TRANSCRIPT_LIMIT - 40]  # 40: room for the note
    text = kept.decode("utf-8", "ignore")  # never half a character
    return f"{text}\n[cut: {len(raw) - len(text.encode())} more bytes]"


def _encode_values(fields: Mapping[str, str]) -> str:
    """Merge-field values: U+001F before each value (fast), or a JSON array when a value
    holds U+001F itself or there are none."""
    joined = _US.join(fields.values())
    if joined.count(_US) != len(fields) - 1:
        return _json(list(fields.values()))
    return _US + joined


def _decode_values(encoded: str) -> list[str]:
    if encoded.startswith(_US):
        return encoded[1:].split(_US)
    values: list[str] = json.loads(encoded)
    return values


def spreadsheet_safe(cell: str) -> str:
    """Keep a spreadsheet from running a server's reply as a formula (CSV injection)."""
    if cell and cell[0] in "=+-@\t\r":
        return "'" + cell
    return cell


# ---- the store ----------------------------------------------------------------------------


class CampaignStore:
    """One open campaign file. Make it with :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, connection: sqlite3.Connection, *, read_only: bool) -> None:
        self.path = path
        self._wal_path = f"{path}-wal"
        self._connection: sqlite3.Connection | None = connection
        self._read_only = read_only
        self._failure: StoreError | None = None
        self._queue: list[RecipientUpdate] = []
        #: The end-of-data journal (writable stores only), and its records no saved
        #: result settles yet: id -> (attempt, time).
        self._journal = (
            None if read_only else EODJournal(path, identity(_created_at(connection)))
        )
        self._unsettled: dict[int, tuple[int, float]] = {}
        self._fieldset_ids: dict[tuple[str, ...], int] = {}
        self._fieldset_names: dict[int, tuple[str, ...]] = {}
        sender, message, settings = connection.execute(
            "SELECT sender, message, settings FROM campaign WHERE id = 1"
        ).fetchone()
        self._sender: str = sender
        self._message: bytes = bytes(message)
        self._settings_json: str = settings
        self._load_fieldsets()

    # ---- making and opening -----------------------------------------------------------

    @classmethod
    def create(
        cls, path: Path, *, sender: str, message: bytes, settings: Mapping[str, object]
    ) -> CampaignStore:
        """A new campaign file at ``path``; refuses to replace any existing file."""
        path = Path(path)
        settings_json = _json(dict(settings))
        for leftover in _leftovers(path):
            if leftover.exists():
                raise StoreError(
                    f"refusing to create {path}: a leftover {leftover.name} from an earlier"
                    " file of that name is next to it (it would be replayed into the new"
                    " file). Move it away or choose another name."
                )
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise StoreError(
                f"refusing to create {path}: a file with that name already exists."
                " Open it, or choose another name."
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot create the campaign file {path}: {exc.strerror}") from exc
        connection = None
        try:
            connection = schema.connect(path, read_only=False)
            connection.execute(f"PRAGMA page_size = {schema.PAGE_SIZE}")
            schema.configure(connection, read_only=False)
            cls._build(connection, sender, message, settings_json)
            return cls(path, connection, read_only=False)
        except BaseException as exc:
            if connection is not None:
                connection.close()
            for made in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                made.unlink(missing_ok=True)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(schema.describe(exc, path, "creating the campaign")) from exc
            raise

    @staticmethod
    def _build(connection: sqlite3.Connection, sender: str, message: bytes, settings: str) -> None:
        now = repr(time.time())
        connection.execute("BEGIN IMMEDIATE")
        schema.build(connection)
        connection.execute(
            "INSERT INTO campaign (id, sender, message, settings) VALUES (1, ?, ?, ?)",
            (sender, message, settings),
        )
        connection.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("created_at", now), ("created_by", f"MX Mailer {__version__}")],
        )
        connection.execute("COMMIT")

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False) -> tuple[CampaignStore, RecoveryReport]:
        """Open a campaign file: check it is ours, migrate it, then recover from a crash.

        Recovery turns every row whose end of data went out without a recorded result into
        AMBIGUOUS (never sent again without the user's word). ``read_only`` opens a file
        that was closed cleanly without locking it or writing anything, even next to it
        (viewing, reports; read-only media), and refuses every write. It refuses a file
        that needs an upgrade or a recovery, since both write; it must not be used while
        another program may write the file.
        """
        path = Path(path)
        schema.check_header(path)
        if not read_only:
            schema.check_writable(path)
        connection = schema.connect(path, read_only=read_only)
        try:
            schema.check_identity(connection, path)
            schema.configure(connection, read_only=read_only)
            if read_only:
                report = cls._check_read_only(connection, path)
            else:
                report = cls._upgrade_and_recover(connection, path)
                _remove_journal(path)  # folded into the file by the recovery just committed
            return cls(path, connection, read_only=read_only), report
        except BaseException as exc:
            connection.close()
            if isinstance(exc, sqlite3.Error):
                what = "opening the campaign"
                raise StoreError(schema.describe(exc, path, what, read_only=read_only)) from exc
            raise

    @staticmethod
    def _version(connection: sqlite3.Connection, path: Path) -> int:
        version = schema.read_version(connection)
        latest = schema.latest_version()
        if version is None:
            raise StoreError(f"{path} is not an MX Mailer campaign file (no schema version)")
        if version > latest:
            raise StoreError(
                f"{path} was made by a newer MX Mailer (schema {version} > {latest}):"
                " open it with that version."
            )
        return version

    @classmethod
    def _upgrade_and_recover(cls, connection: sqlite3.Connection, path: Path) -> RecoveryReport:
        """One transaction: migrations, recovery, and the open time (which proves we can
        write before anything is sent)."""
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = cls._version(connection, path)
            if version < schema.latest_version():
                cls._migrate(connection, path, version)
            for statement in schema.RECIPIENT_INDEXES:  # an import cut short may lack them
                connection.execute(statement)
            marks = _journal_marks(connection, path)
            connection.executemany(_FOLD, [(m.at, m.id, m.attempt) for m in marks])
            # The attempt happened (its end of data went out) even if its count was not
            # saved yet: counted, a retry cannot make the campaign look untried.
            ambiguous = connection.execute(
                "UPDATE recipients SET status = ?, attempts = max(attempts, 1),"
                " reason = printf(?, strftime('%Y-%m-%dT%H:%M:%SZ', eod_at, 'unixepoch'))"
                f" WHERE {_IN_DOUBT_WHERE}",
                (Status.AMBIGUOUS.value, AMBIGUOUS_REASON),
            ).rowcount
            connection.execute(
                "INSERT INTO meta (key, value) VALUES ('opened_at', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (repr(time.time()),),
            )
            requeued = cls._count_pending(connection)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return RecoveryReport(requeued=requeued, ambiguous=ambiguous)

    @staticmethod
    def _migrate(connection: sqlite3.Connection, path: Path, version: int) -> None:
        try:
            schema.upgrade(connection, version)
        except sqlite3.Error as exc:
            raise StoreError(
                f"upgrading the campaign file {path} from schema {version} to"
                f" {schema.latest_version()} failed ({exc}); the file was left unchanged."
                " Report this, with the file if you can."
            ) from exc

    @classmethod
    def _check_read_only(cls, connection: sqlite3.Connection, path: Path) -> RecoveryReport:
        version = cls._version(connection, path)
        if version < schema.latest_version():
            raise StoreError(
                f"the campaign file {path} was made by an older MX Mailer (schema {version})"
                " and must be upgraded, which writes: open it writable once."
            )
        (in_doubt,) = connection.execute(
            f"SELECT count(*) FROM recipients WHERE {_IN_DOUBT_WHERE}"
        ).fetchone()
        in_doubt += len(_unsettled_ids(connection, _journal_marks(connection, path)))
        if in_doubt:
            raise StoreError(
                f"the campaign file {path} needs crash recovery ({in_doubt} recipients whose"
                " end of data went out unanswered), which writes: open it writable once."
            )
        indexes = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        if not indexes.issuperset(schema.RECIPIENT_INDEX_NAMES):
            raise StoreError(
                f"the campaign file {path} was left by an import that did not finish and"
                " must be indexed, which writes: open it writable once."
            )
        return RecoveryReport(requeued=cls._count_pending(connection), ambiguous=0)

    @staticmethod
    def _count_pending(connection: sqlite3.Connection) -> int:
        (count,) = connection.execute(
            f"SELECT count(*) FROM recipients INDEXED BY recipients_pending"
            f" WHERE {schema.PENDING_WHERE}"
        ).fetchone()
        return int(count)

    # ---- the campaign -----------------------------------------------------------------

    @property
    def sender(self) -> str:
        return self._sender

    @property
    def message(self) -> bytes:
        """The .eml template as given."""
        return self._message

    @property
    def settings(self) -> dict[str, object]:
        """A fresh copy: change it with :meth:`set_settings`."""
        settings: dict[str, object] = json.loads(self._settings_json)
        return settings

    @property
    def read_only(self) -> bool:
        return self._read_only

    def set_settings(self, settings: Mapping[str, object]) -> None:
        """Replace the settings (JSON); committed before returning."""
        encoded = _json(dict(settings))
        with self._writing("saving the settings") as connection:
            connection.execute("UPDATE campaign SET settings = ? WHERE id = 1", (encoded,))
        self._settings_json = encoded

    # ---- recipients ---------------------------------------------------------------------

    def add_recipients(self, rows: Iterable[NewRecipient]) -> int:
        """Append ``rows`` in id order, one transaction per :data:`IMPORT_BATCH` rows.

        Streams: at most one batch is in memory. Not all-or-nothing: batches committed
        before a failure stay. Returns how many rows were added.
        """
        source = iter(rows)
        added = 0
        empty = not self._read("SELECT 1 FROM recipients LIMIT 1", ())
        if empty:  # a new campaign's import: its indexes are built once, at the end
            with self._writing("adding recipients") as connection:
                for name in schema.RECIPIENT_INDEX_NAMES:
                    connection.execute(f"DROP INDEX IF EXISTS {name}")
        try:
            while True:
                with self._writing(
                    "adding recipients", schema.IMPORT_CHECKPOINT_BYTES
                ) as connection:
                    batch = [self._encode(row) for row in itertools.islice(source, IMPORT_BATCH)]
                    if batch:
                        connection.executemany(_INSERT, batch)
                added += len(batch)
                if len(batch) < IMPORT_BATCH:
                    break
        finally:
            if empty and self._failure is None:
                self._build_indexes()
        self._checkpoint("adding recipients", schema.CHECKPOINT_BYTES)
        return added

    def _build_indexes(self) -> None:
        with self._writing("indexing the recipients") as connection:
            for statement in schema.RECIPIENT_INDEXES:
                connection.execute(statement)

    def _encode(self, row: NewRecipient) -> tuple[str, str, int, str, str, str]:
        if row.status not in IMPORT_STATUSES:
            raise ValueError(f"a new recipient cannot be {row.status.value}: {row.email}")
        fields = row.fields
        names = tuple(fields)
        fieldset = self._fieldset_ids.get(names)
        if fieldset is None:
            fieldset = self._add_fieldset(names)
        return (
            row.email,
            row.domain,
            fieldset,
            _encode_values(fields),
            row.status.value,
            row.reason,
        )

    def _add_fieldset(self, names: tuple[str, ...]) -> int:
        """Called inside the import's transaction."""
        fieldset = (
            self._open()
            .execute("INSERT INTO fieldsets (names) VALUES (?)", (_json(list(names)),))
            .lastrowid
        )
        assert fieldset is not None
        self._fieldset_ids[names] = fieldset
        self._fieldset_names[fieldset] = names
        return fieldset

    def _load_fieldsets(self) -> None:
        self._fieldset_ids.clear()
        self._fieldset_names.clear()
        for fieldset, names_json in self._open().execute("SELECT id, names FROM fieldsets"):
            names = tuple(json.loads(names_json))
            self._fieldset_ids[names] = fieldset
            self._fieldset_names[fieldset] = names

    def states(self) -> Iterator[RecipientState]:
        """Every row in id order, a page at a time (a window's table, a large campaign)."""
        after = 0
        while True:
            rows = self._read(_STATES_PAGE, (after, PAGE))
            for row in rows:
                yield self._state(row)
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def pending(self) -> Iterator[RecipientState]:
        """Every non-final row in id order, a page at a time.

        No statement stays open between pages, so writes in between are safe: each page
        shows the rows as they are when it is read (a row that became final is skipped).
        """
        after = 0
        while True:
            rows = self._read(_PENDING_PAGE, (after, PAGE))
            for row in rows:
                yield self._state(row)
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def get(self, recipient_id: int) -> RecipientState:
        """The row as saved (updates queued by :meth:`record` are not in it until flushed)."""
        rows = self._read(f"SELECT {_STATE_COLUMNS} FROM recipients WHERE id = ?", (recipient_id,))
        if not rows:
            raise KeyError(f"no recipient {recipient_id} in the campaign file {self.path}")
        return self._state(rows[0])

    def _state(self, row: Any) -> RecipientState:
        names = self._fieldset_names.get(row[3])
        if names is None:
            self._load_fieldsets()
            names = self._fieldset_names[row[3]]
        fields = dict(zip(names, _decode_values(row[4]), strict=True))
        return RecipientState(row[0], row[1], row[2], fields, _STATUS_BY_VALUE[row[5]], *row[6:])

    def counts(self) -> dict[Status, int]:
        """How many rows hold each status (every status is a key)."""
        counts = dict.fromkeys(Status, 0)
        for value, count in self._read(
            "SELECT status, count(*) FROM recipients GROUP BY status", ()
        ):
            counts[_STATUS_BY_VALUE[value]] = count
        return counts

    # ---- the user's decisions ------------------------------------------------------------

    def ids_with_outcome(self, outcome: str) -> set[int]:
        """The recipients with at least one attempt that ended in ``outcome`` (an
        :class:`core.smtp.session.Outcome` value such as ``"greylisted"``)."""
        rows = self._read(
            "SELECT DISTINCT recipient_id FROM attempts WHERE outcome = ?", (outcome,)
        )
        return {row[0] for row in rows}

    def ever_attempted(self) -> bool:
        """Some recipient was tried already. A retry queues it again but keeps its
        attempts, Message-ID and Date, so statuses alone cannot tell: the campaign's
        message and signing settings are fixed once this is True."""
        rows = self._read("SELECT EXISTS (SELECT 1 FROM recipients WHERE attempts > 0)", ())
        return bool(rows[0][0])

    def fixable_ids(self) -> list[int]:
        """Rows that failed for a reason that may have been fixed since: deferred and
        expired ones, and bounces the servers blamed on the sender (a blocklisting, a
        missing DKIM record...), not on the recipient."""
        rows = self._read(
            "SELECT id FROM recipients WHERE status IN (?, ?) OR (status = ? AND fault = ?)"
            " ORDER BY id",
            (Status.DEFERRED.value, Status.EXPIRED.value, Status.BOUNCED.value, "sender"),
        )
        return [row[0] for row in rows]

    def retry(self, ids: Sequence[int]) -> int:
        """Queue ``ids`` to be tried again, with a new lifetime and the same message bytes
        (Message-ID and Date kept: a receiver that got an earlier copy can tell). Only rows
        in :data:`RETRYABLE` change; returns how many did. Never while an engine runs on
        this file: it holds the rows it is working on in memory."""
        self.flush()
        with self._writing("queuing recipients again") as connection:
            return connection.executemany(_RETRY, [(rid,) for rid in ids]).rowcount

    def remove(self, ids: Sequence[int]) -> int:
        """Delete ``ids`` and their attempt logs from the campaign; returns how many rows
        went. Never while an engine runs on this file."""
        self.flush()
        for rid in ids:  # no record may outlive its row: a new row could reuse the id
            self._unsettled.pop(rid, None)
        if self._journal is not None and self._journal.opened:
            self._journal.reset(self._unsettled)
        pairs = [(rid,) for rid in ids]
        with self._writing("removing recipients") as connection:
            connection.executemany("DELETE FROM attempts WHERE recipient_id = ?", pairs)
            return connection.executemany("DELETE FROM recipients WHERE id = ?", pairs).rowcount

    # ---- attempts -----------------------------------------------------------------------

    def mark_end_of_data(self, marks: Sequence[tuple[int, int]], at: float) -> None:
        """Record that the end-of-data marker of attempt ``attempt`` of each
        ``(id, attempt)`` is about to be written.

        In the end-of-data journal (:mod:`core.eod_journal`) before returning: send the
        marker only after this returns. If the process dies before a result of that
        attempt is flushed, the row opens as AMBIGUOUS.
        """
        journal = self._journal
        self._check_writable("saving the end-of-data mark")
        if not marks or journal is None:
            return
        if min(attempt for _, attempt in marks) < 1:
            # Recovery could never tell such a mark from a settled one (an engine's bug).
            raise StoreError(f"internal error: an attempt is counted from 1, not {marks!r}")
        try:
            journal.append(marks, at)
        except OSError as exc:
            self._failure = StoreError(
                f"saving the end-of-data mark in {journal.path} failed: {exc.strerror}."
                " Nothing more is sent; free some disk space (or make the folder writable),"
                " then open the campaign again"
            )
            raise self._failure from exc
        unsettled = self._unsettled
        for recipient_id, attempt in marks:
            known = unsettled.get(recipient_id)
            if known is None or known[0] <= attempt:  # the latest attempt is the one to keep
                unsettled[recipient_id] = (attempt, at)

    def record(self, update: RecipientUpdate) -> None:
        """Queue ``update`` in memory; the next :meth:`flush` writes it (and settles the
        end-of-data marks of its attempt and earlier ones)."""
        self._check_writable("recording a result")
        if not isinstance(update.status, Status):
            raise TypeError(f"status must be a Status, not {update.status!r}")
        if update.fault not in FAULTS:
            raise ValueError(f"fault must be one of {sorted(FAULTS)}, not {update.fault!r}")
        self._queue.append(update)

    @property
    def queued_updates(self) -> int:
        return len(self._queue)

    def flush(self) -> list[RecipientUpdate]:
        """Write every queued update (and its attempt log) in one transaction.

        Returns them once they are durable; announce final statuses only then.
        """
        updates = self._queue
        if not updates:
            self._check_writable("saving results")
            return []
        with self._writing(f"saving {len(updates)} results", schema.CHECKPOINT_BYTES) as connection:
            changed = connection.executemany(_UPDATE, map(_update_row, updates)).rowcount
            if changed != len(updates):
                raise StoreError(self._unknown_ids(updates))
            attempts = [
                _attempt_row(update.id, update.attempt)
                for update in updates
                if update.attempt is not None
            ]
            if attempts:
                connection.executemany(_INSERT_ATTEMPT, attempts)
        self._queue = []
        self._settle(updates)
        return updates

    def _settle(self, saved: list[RecipientUpdate]) -> None:
        """Forget the marks that ``saved`` (now committed) settle, by the rule recovery
        applies to the journal: a result of the marked attempt or a later one. A result
        of an earlier attempt, queued before the mark, leaves it unsettled."""
        unsettled = self._unsettled
        if unsettled:
            for update in saved:
                mark = unsettled.get(update.id)
                if mark is not None and update.attempts >= mark[0]:
                    del unsettled[update.id]
        if self._journal is not None:
            try:
                self._journal.settle(unsettled)
            except OSError as exc:
                self._failure = StoreError(
                    f"tidying the end-of-data journal {self._journal.path} failed:"
                    f" {exc.strerror}. Open the campaign again (nothing saved is lost)"
                )
                raise self._failure from exc

    def journaled(self) -> list[Mark]:
        """What the end-of-data journal holds now, settled records included."""
        connection = self._open()
        return _journal_marks(connection, self.path)

    def _unsettled_rows(self) -> list[tuple[float, int, int]]:
        return [(at, rid, attempt) for rid, (attempt, at) in self._unsettled.items()]

    def _unknown_ids(self, updates: list[RecipientUpdate]) -> str:
        ids = sorted({update.id for update in updates})
        known = {
            row[0]
            for row in self._open().execute(
                "SELECT id FROM recipients WHERE id IN (SELECT value FROM json_each(?))",
                (_json(ids),),
            )
        }
        unknown = [rid for rid in ids if rid not in known]
        return (
            f"saving results in the campaign file {self.path} failed: it has no recipient"
            f" with id {', '.join(map(str, unknown[:10]))}"
        )

    def attempts(self, recipient_id: int) -> list[AttemptLog]:
        """The attempt log of one recipient, oldest first."""
        rows = self._read(
            "SELECT started_at, finished_at, mx, address, outcome, code, enhanced, text, stage,"
            " transcript FROM attempts WHERE recipient_id = ? ORDER BY id",
            (recipient_id,),
        )
        return [AttemptLog(*row) for row in rows]

    # ---- the report ---------------------------------------------------------------------

    def report_rows(self) -> Iterator[ReportRow]:
        """Every recipient in id order, as the CSV report shows it, a page at a time."""
        after = 0
        while True:
            rows = self._read(_REPORT_PAGE, (after, PAGE))
            for row in rows:
                yield _report_row(row)
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def export_report(self, path: Path) -> int:
        """Write the CSV report (UTF-8, header first) to ``path``; returns the rows written.

        Written to ``path.part`` and renamed, so ``path`` is never half-written. Cells that
        a spreadsheet would run as a formula get a leading apostrophe.
        """
        path = Path(path)
        partial = path.with_name(path.name + ".part")
        written = 0
        try:
            with partial.open("w", encoding="utf-8", newline="") as file:
                writer = csv.writer(file)
                writer.writerow(REPORT_HEADER)
                for row in self.report_rows():
                    writer.writerow([spreadsheet_safe(cell) for cell in row.as_tuple()])
                    written += 1
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StoreError(f"cannot write the report {path}: {exc.strerror}") from exc
        return written

    def save_copy(self, path: Path) -> None:
        """Write the whole campaign, as committed, to the new campaign file ``path``
        (Save As).

        SQLite's online backup reads through this store's own connection, so it works
        under the exclusive lock that keeps other programs out. The copy is made next to
        ``path`` and renamed over it, so ``path`` is never half-written; the open file and
        a file with SQLite leftovers (``-wal``/``-shm``) beside it are refused, since
        replacing either would lose or corrupt a campaign. Queued, unflushed results
        would be missing from the copy, so it is refused while any are queued.
        """
        path = Path(path)
        connection = self._open()
        if self._failure is not None:
            raise StoreError(
                f"cannot save a copy: a write to {self.path} failed ({self._failure}). Open "
                "the campaign again (nothing saved is lost), then save the copy"
            )
        if self._queue:
            raise StoreError("cannot save a copy while results are waiting to be written")
        if path.resolve() == self.path.resolve():
            raise StoreError(f"{path} is the campaign file itself: choose another name")
        for leftover in _leftovers(path):
            if leftover.exists():
                raise StoreError(
                    f"refusing to replace {path}: a leftover {leftover.name} is next to it "
                    "(it would be replayed into the copy). Move it away or choose "
                    "another name."
                )
        try:
            descriptor, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror}") from exc
        os.close(descriptor)
        try:
            copy = sqlite3.connect(partial)
            try:
                connection.backup(copy)
                # Messages whose end of data is out, unanswered yet: possibly delivered.
                copy.executemany(_FOLD, self._unsettled_rows())
                copy.commit()
                copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            finally:
                copy.close()
            os.replace(partial, path)
        except (OSError, sqlite3.Error) as exc:
            Path(partial).unlink(missing_ok=True)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(schema.describe(exc, path, "saving a copy")) from exc
            raise StoreError(f"cannot write {path}: {exc.strerror}") from exc

    def bounced_addresses(self, fault: str = "recipient") -> list[str]:
        """The addresses that bounced for ``fault`` (default: the recipient's own, such as
        an unknown mailbox), for a suppression list. Sender-fault bounces (blocklists,
        authentication) and bounces of unknown cause are not the recipient's doing."""
        rows = self._read(
            "SELECT email FROM recipients WHERE status = ? AND fault = ? ORDER BY id",
            (Status.BOUNCED.value, fault),
        )
        return [row[0] for row in rows]

    # ---- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Flush what is queued, then close. Closing twice is harmless."""
        connection = self._connection
        if connection is None:
            return
        try:
            if self._queue and self._failure is None:
                self.flush()
            if self._journal is not None and self._failure is None:
                if self._unsettled:  # e.g. a run abandoned with markers unanswered
                    with self._writing("saving the end-of-data marks") as writing:
                        writing.executemany(_FOLD, self._unsettled_rows())
                    self._unsettled.clear()
                try:
                    self._journal.remove()
                except OSError as exc:
                    raise StoreError(
                        f"cannot remove {self._journal.path} after closing {self.path}:"
                        f" {exc.strerror}. It is read again when the campaign is opened"
                    ) from exc
        finally:
            self._connection = None
            if self._journal is not None:
                self._journal.close()  # after a failure, kept for recovery
            connection.close()

    def __enter__(self) -> CampaignStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._connection is None else "open"
        return f"<CampaignStore {self.path} {state}>"

    # ---- plumbing -----------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError(f"the campaign file {self.path} is closed")
        return self._connection

    def _check_writable(self, action: str) -> sqlite3.Connection:
        connection = self._open()
        if self._failure is not None:
            raise StoreError(
                f"{action} refused: an earlier write to the campaign file {self.path} failed,"
                f" so nothing more is written until it is opened again ({self._failure})"
            )
        return connection

    @contextlib.contextmanager
    def _writing(
        self, action: str, checkpoint_at: int | None = None
    ) -> Iterator[sqlite3.Connection]:
        """One transaction, after a checkpoint if the log holds ``checkpoint_at`` bytes.

        A failure of the file poisons the store.
        """
        connection = self._check_writable(action)
        try:
            if checkpoint_at is not None and self._wal_size() >= checkpoint_at:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            connection.execute("BEGIN IMMEDIATE")
            yield connection
            connection.execute("COMMIT")
        except (sqlite3.Error, StoreError) as exc:
            self._rollback(connection)
            if isinstance(exc, StoreError):
                self._failure = exc
            else:
                message = schema.describe(exc, self.path, action, read_only=self._read_only)
                self._failure = StoreError(message)
            raise self._failure from exc
        except BaseException:
            self._rollback(connection)
            raise

    def _checkpoint(self, action: str, at: int) -> None:
        """A checkpoint on its own, if the log holds ``at`` bytes."""
        if self._wal_size() >= at:
            with self._writing(action, at):
                pass  # the checkpoint runs before this empty transaction

    def _wal_size(self) -> int:
        try:
            return os.stat(self._wal_path).st_size
        except FileNotFoundError:
            return 0

    @staticmethod
    def _rollback(connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            # SQLite may have rolled back already (e.g. after SQLITE_FULL).
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")

    def _read(self, sql: str, parameters: Sequence[object]) -> list[Any]:
        try:
            return self._open().execute(sql, parameters).fetchall()
        except sqlite3.Error as exc:
            message = schema.describe(exc, self.path, "reading", read_only=self._read_only)
            raise StoreError(message) from exc


def _leftovers(path: Path) -> tuple[Path, ...]:
    """Files an earlier campaign of that name may have left beside it: SQLite's log and
    index, which would be replayed into a new file there, and the end-of-data journal."""
    return (Path(f"{path}-wal"), Path(f"{path}-shm"), journal_path(path), compacting_path(path))


def _created_at(connection: sqlite3.Connection) -> str:
    """The file's creation stamp: what names the campaign in its end-of-data journal."""
    row = connection.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
    return str(row[0]) if row else ""


def _journal_marks(connection: sqlite3.Connection, path: Path) -> list[Mark]:
    """The records of the end-of-data journal a crash left beside ``path`` (none if it
    was closed cleanly, or the journal is another campaign's)."""
    try:
        return read_marks(journal_path(path), identity(_created_at(connection)))
    except OSError as exc:
        raise StoreError(
            f"cannot read {journal_path(path)}, the record of messages possibly delivered"
            f" when {path} was last used: {exc.strerror}"
        ) from exc


def _unsettled_ids(connection: sqlite3.Connection, marks: list[Mark]) -> set[int]:
    """The recipients of ``marks`` whose saved row holds no result of the marked attempt."""
    return {
        mark.id
        for mark in marks
        if connection.execute(
            f"SELECT 1 FROM recipients WHERE id = ? AND attempts < ? AND {schema.PENDING_WHERE}",
            (mark.id, mark.attempt),
        ).fetchone()
    }


def _remove_journal(path: Path) -> None:
    """After a recovery that folded it: a journal left behind would be folded again (its
    records are settled by then, so harmlessly), but must not outlive the campaign."""
    try:
        eod_journal.remove(path)
    except OSError as exc:
        raise StoreError(
            f"cannot remove {journal_path(path)} after recovering {path}: {exc.strerror}"
        ) from exc


def _update_row(update: RecipientUpdate) -> tuple[object, ...]:
    return (
        update.status.value,
        update.wait_reason,
        update.next_attempt_at,
        update.attempts,
        update.first_attempt_at,
        update.last_attempt_at,
        update.code,
        update.enhanced,
        update.text,
        update.mx,
        update.fault,
        update.message_id,
        update.date_header,
        update.greylist_mx,
        update.reason,
        update.id,
    )


def _attempt_row(recipient_id: int, log: AttemptLog) -> tuple[object, ...]:
    return (
        recipient_id,
        log.started_at,
        log.finished_at,
        log.mx,
        log.address,
        log.outcome,
        log.code,
        log.enhanced,
        log.text,
        log.stage,
        _cut(log.transcript),
    )


def _report_row(row: Any) -> ReportRow:
    (_, email, value, code, enhanced, text, mx, attempts, first, last, fault, reason,
     wait_reason, next_attempt_at) = row  # fmt: skip
    status = _STATUS_BY_VALUE[value]
    return ReportRow(
        email,
        REPORT_STATUS[status],
        "" if code is None else str(code),
        enhanced,
        text,
        mx,
        str(attempts),
        iso_utc(first),
        iso_utc(last),
        fault,
        _detail(status, reason, wait_reason, next_attempt_at, attempts),
    )


def _detail(
    status: Status, reason: str, wait_reason: str, next_attempt_at: float | None, attempts: int
) -> str:
    if status is Status.AMBIGUOUS:
        return AMBIGUOUS_DETAIL
    if status.final:
        return reason
    if attempts == 0 and not wait_reason:
        return "not attempted yet"
    due = f"next attempt {iso_utc(next_attempt_at)}" if next_attempt_at is not None else ""
    return "; ".join(part for part in (wait_reason, due) if part)
