"""The suppression list: addresses and whole domains a campaign must never mail.

Owns the suppression file's format and matching. A file holds one entry per line: an
address (``ann@example.com``, ``Ann <ann@example.com>``) or a whole domain
(``@example.com``); blank lines and lines starting with ``#`` are ignored. A CSV export
(from another mailer, say) is accepted too: its ``email`` column (any name the recipients
importer knows), else its first column. Matching ignores case in the local part and the
domain, and a domain matches in its Unicode and punycode forms alike; a domain entry
matches that domain only, not its subdomains.

Never decides who is suppressed during a send (the importer marks rows at import) and
never reads the campaign store: the caller gives :func:`write_suppression` its addresses.
"""

from __future__ import annotations

import csv
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.recipients import (
    DELIMITERS,
    SNIFF_RECORDS,
    Address,
    RecipientsError,
    ascii_domain,
    check_address,
    guess_delimiter,
    named_address_column,
    text_lines,
)


class SuppressionError(RecipientsError):
    """The suppression file cannot be read; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line of a suppression file that is neither an address nor ``@domain``."""

    line: int
    entry: str
    reason: str


class SuppressionList:
    """Entries to match recipients against, each kept with the text it was given as."""

    __slots__ = ("_addresses", "_domains", "rejected")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self._addresses: dict[str, str] = {}  # mailbox key -> entry as written
        self._domains: dict[str, str] = {}  # A-label -> entry as written
        #: Lines of the loaded file that were not entries (they cannot match anyone).
        self.rejected: list[Rejected] = []
        for entry in entries:
            reason = self.add(entry)
            if reason:
                raise ValueError(f"{entry!r}: {reason}")

    @classmethod
    def load(cls, *paths: Path) -> SuppressionList:
        """The entries of one or more suppression files (see the module's docstring for
        their forms), as one list."""
        suppression = cls()
        for path in paths:
            try:
                for number, entry in _entries(path):
                    reason = suppression.add(entry)
                    if reason:
                        suppression.rejected.append(Rejected(number, entry, reason))
            except RecipientsError as error:
                raise SuppressionError(f"suppression list: {error}") from error
        return suppression

    def add(self, entry: str) -> str:
        """Add an address or ``@domain``; "" if added, else why it is not an entry."""
        text = entry.strip()
        if text.startswith("@"):
            try:
                self._domains.setdefault(ascii_domain(text[1:]), text)
            except ValueError as error:
                return str(error)
            return ""
        checked = check_address(text)
        if isinstance(checked, str):
            return checked
        self._addresses.setdefault(checked.key, text)
        return ""

    def lookup(self, key: str, domain: str) -> str | None:
        """The entry matching a mailbox, given as :attr:`core.recipients.Address.key` and
        its A-label domain; None if it is not suppressed."""
        return self._addresses.get(key) or self._domains.get(domain)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        checked = check_address(address)
        return isinstance(checked, Address) and self.lookup(checked.key, checked.domain) is not None

    def __len__(self) -> int:
        return len(self._addresses) + len(self._domains)


def write_suppression(path: Path, addresses: Iterable[str]) -> int:
    """Write a suppression file of ``addresses`` (or ``@domain`` entries): a dated
    comment, then one entry per line, sorted, each once (case ignored). The file is
    replaced at once (written beside it, then renamed): a reader never sees half of it.
    Returns the number of entries written."""
    unique: dict[str, str] = {}
    for address in addresses:
        entry = address.strip()
        if any(char in entry for char in "\r\n\0"):
            raise ValueError(f"{address!r}: an entry cannot hold a line break or NUL")
        if entry:
            unique.setdefault(entry.lower(), entry)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# MX Mailer suppression list, written {stamp}: never mail these", ""]
    lines.extend(unique[key] for key in sorted(unique))
    _replace_text(path, "\n".join(lines) + "\n")
    return len(unique)


def extend_suppression(path: Path, addresses: Iterable[str], why: str) -> int:
    """Add ``addresses`` to the suppression list at ``path`` (made if missing), keeping
    what it holds, under a dated comment saying ``why``; returns how many were added.
    Replaced at once, never half-written."""
    if not path.exists():
        return write_suppression(path, addresses)
    present = SuppressionList.load(path)
    new = list(dict.fromkeys(a for a in addresses if a not in present))
    if not new:
        return 0
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text += f"# {why}, added {stamp}\n" + "".join(f"{a}\n" for a in new)
    _replace_text(path, text)
    return len(new)


def _replace_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` at once: written and synced beside it, then renamed
    over it, so a reader never sees half of it."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _entries(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, entry) of a suppression file, in either of its forms. A CSV record
    is one line: quoted line breaks are not supported here."""
    content = (
        (number, line)
        for number, line in enumerate(text_lines(path), 1)
        if line.strip() and not line.lstrip().startswith("#")
    )
    head = list(itertools.islice(content, SNIFF_RECORDS))
    if not head:
        return
    lines = itertools.chain(head, content)
    if not any(delimiter in head[0][1] for delimiter in DELIMITERS):
        yield from ((number, line.strip()) for number, line in lines)
        return
    delimiter = guess_delimiter("\n".join(line for _, line in head))
    records = ((number, next(csv.reader([line], delimiter=delimiter))) for number, line in lines)
    first_number, first = next(records)
    column = named_address_column(first)
    if column is None:
        column = 0
        if "@" in first[0]:  # no header: the first row is an entry
            yield first_number, first[0]
    for number, record in records:
        if column < len(record) and record[column].strip():
            yield number, record[column]
