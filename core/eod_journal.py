"""The end-of-data journal: recipients whose end-of-data marker is about to be written.

Before the ``.`` that ends a message goes out, the recipient must be recorded as possibly
delivered, durably enough to survive the process being killed: if it dies before the
reply is saved, the recipient must come back AMBIGUOUS, never be sent again silently.
That record used to be an UPDATE of the recipient's row, committed in SQLite before
every marker (group-committed per loop turn): ~11 µs of CPU a message in the UPDATE
alone, plus the log pages it wrote, about a tenth of the engine's CPU per message.

This journal is an append-only file beside the campaign file (``<file>-eod``, like
SQLite's ``-wal``), one fixed-size record per mark: the recipient's id, the number of
the attempt, and the time. A batch of marks is one ``write(2)``; once it returns, the
bytes belong to the kernel and outlive the process, which is the guarantee a WAL commit
with ``synchronous=NORMAL`` gave (neither is promised to survive a power cut).

A record is *settled* once a result of its attempt, or of a later one, is committed:
the row's ``attempts`` is then at least the record's. Nothing else is needed to read the
journal after a crash, so results never have to touch it. :class:`CampaignStore` folds
unsettled records into the rows' ``eod_at`` when it opens the file (where crash recovery
finds them) and when it closes it, then removes the journal: a closed campaign is one
file again. While the campaign runs, the journal is emptied whenever every mark is
settled, and rewritten (atomically, by rename) with only the unsettled ones when it
grows past :data:`COMPACT_BYTES`.

The journal starts with a header naming its campaign (a digest of the file's creation
stamp): a journal left by another campaign that once had this file's name is never read
into this one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: One record: recipient id, attempt number (both int64), time (float64), little-endian.
_RECORD: Final = struct.Struct("<qqd")
_MAGIC: Final = b"MXM-EOD1"
#: The magic and the campaign's identity (32 bytes): what an empty journal holds.
HEADER_SIZE: Final = len(_MAGIC) + 32
#: The journal is rewritten with only its unsettled records past this size.
COMPACT_BYTES: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class Mark:
    """The end of data of ``attempt`` (1 for the first) of recipient ``id``, at ``at``."""

    id: int
    attempt: int
    at: float


def journal_path(campaign: Path) -> Path:
    return Path(f"{campaign}-eod")


def compacting_path(campaign: Path) -> Path:
    """Where a compaction writes the new journal before renaming it over the old one."""
    return Path(f"{campaign}-eod.new")


def remove(campaign: Path) -> None:
    """Delete the journal of ``campaign`` and what a compaction cut short may have left."""
    journal_path(campaign).unlink(missing_ok=True)
    compacting_path(campaign).unlink(missing_ok=True)


def identity(created: str) -> bytes:
    """A campaign's identity in its journal's header, from its file's creation stamp."""
    return hashlib.sha256(created.encode()).digest()


def read_marks(path: Path, campaign: bytes) -> list[Mark]:
    """Every whole record of the journal at ``path`` of the campaign whose identity is
    ``campaign``: none if there is no journal, or it belongs to another campaign.

    Raises ``OSError`` if it exists but cannot be read. A record cut short cannot come
    from a finished ``write``; it is ignored, since the marker it announced never went.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    if data[:HEADER_SIZE] != _MAGIC + campaign:
        return []
    body = data[HEADER_SIZE:]
    whole = len(body) - len(body) % _RECORD.size
    return [Mark(*fields) for fields in _RECORD.iter_unpack(body[:whole])]


class EODJournal:
    """The open journal of one campaign. Raises ``OSError`` when it cannot be written;
    the store turns that into its own error and stops every write."""

    def __init__(self, campaign: Path, identity: bytes) -> None:
        self._campaign = campaign
        self.path = journal_path(campaign)
        self._partial = compacting_path(campaign)
        self._header = _MAGIC + identity
        self._fd: int | None = None
        self._size = 0  # bytes in the file, header included

    def append(self, marks: Iterable[tuple[int, int]], at: float) -> None:
        """Record ``(id, attempt)`` pairs; returns once the kernel holds them. If the
        write fails, the records it wrote are cut off again (best effort): their
        markers are never sent, so they must not come back as possibly delivered."""
        data = b"".join([_RECORD.pack(rid, attempt, at) for rid, attempt in marks])
        fd = self._open()
        try:
            _write_all(fd, data)
        except OSError:
            # If the disk refuses even that, recovery may flag these: never a resend.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
            raise
        self._size += len(data)

    def settle(self, unsettled: Mapping[int, tuple[int, float]]) -> None:
        """Make the journal hold no settled records it need not: empty when ``unsettled``
        (id -> attempt, time) is, else rewritten with only those when it has grown."""
        if self._fd is None or self._size <= len(self._header):
            return
        if not unsettled:
            os.ftruncate(self._fd, len(self._header))
            self._size = len(self._header)
        elif self._size >= COMPACT_BYTES:
            self.reset(unsettled)

    def reset(self, unsettled: Mapping[int, tuple[int, float]]) -> None:
        """Rewrite the journal with exactly ``unsettled``."""
        # The new journal is complete before it replaces the old one: a process killed
        # in between leaves the old, a superset (its extra records are settled).
        data = self._header + b"".join(
            [_RECORD.pack(rid, attempt, at) for rid, (attempt, at) in unsettled.items()]
        )
        fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            _write_all(fd, data)
            os.replace(self._partial, self.path)
        except BaseException:
            os.close(fd)
            self._partial.unlink(missing_ok=True)
            raise
        self.close()
        self._fd, self._size = fd, len(data)

    def remove(self) -> None:
        """Close and delete the journal (after its unsettled records were folded), and
        what a compaction cut short may have left."""
        self.close()
        remove(self._campaign)
        self._size = 0

    @property
    def opened(self) -> bool:
        """Whether this run wrote the journal (else there is none: the store removed it)."""
        return self._fd is not None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            # The store removed any journal when it opened the file: this one is new.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
            try:
                _write_all(fd, self._header)
            except BaseException:
                os.close(fd)
                raise
            self._fd, self._size = fd, len(self._header)
        return self._fd


def _write_all(fd: int, data: bytes) -> None:
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
