"""Reading a recipients CSV into campaign rows: the minimal reader the engine needs.

UTF-8 (with or without BOM), an ``email`` column found by name, every other column a
merge field. Each row is validated enough that nothing unsafe reaches SMTP: an address
with CR, LF or NUL, without a domain, or whose domain is not a valid IDNA name is kept as
``invalid`` with its reason; case-insensitive duplicates are dropped and counted. The
full importer (encodings, delimiters, header detection, email-validator, suppression)
replaces this in the campaign-input work; its interface stays ``read_recipients``.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.store import NewRecipient, Status

_ADDRESS_COLUMNS = (
    "email",
    "e-mail",
    "mail",
    "email address",
    "e-mail address",
    "courriel",
    "correo",
    "adresse",
)
_DELIMITERS = ",;\t|"
_UNSAFE = re.compile("[\r\n\0]")
_SPACE = re.compile(r"\s")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class RecipientsError(ValueError):
    """The file cannot be read as a recipients list; the message says what to do."""


@dataclass(slots=True)
class ImportSummary:
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0


def field_name(header: str) -> str:
    """A merge field's name from its column header: lower case, spaces to ``_``."""
    return "_".join(header.strip().lower().split())


def ascii_domain(domain: str) -> str:
    """The A-label form of a domain (``bücher.test`` -> ``xn--bcher-kva.test``)."""
    return _ascii_domain(domain.strip().rstrip(".").lower())


@functools.lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    # Cached: a list of a million addresses has a few thousand domains at most.
    try:
        ascii_form = domain.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise ValueError(f"the domain {domain!r} is not a valid internationalised name") from error
    labels = ascii_form.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"the domain {domain!r} is not a valid domain name")
    return ascii_form


def parse_address(raw: str) -> tuple[str, str]:
    """(address as given, trimmed; its domain in A-label form), or ValueError with why."""
    if _UNSAFE.search(raw):
        raise ValueError("the address contains a line break or NUL")
    address = raw.strip()
    if address.endswith(">") and "<" in address:
        address = address[address.rindex("<") + 1 : -1].strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("the address has no local part or no domain")
    if _SPACE.search(address) and not local.startswith('"'):
        raise ValueError("the address contains spaces")
    return address, ascii_domain(domain)


def read_recipients(path: Path, summary: ImportSummary) -> Iterator[NewRecipient]:
    """Stream the rows of ``path`` as campaign rows, filling ``summary`` as it goes."""
    try:
        handle = path.open("r", encoding="utf-8-sig", newline="")
    except OSError as error:
        raise RecipientsError(f"cannot read {path}: {error.strerror}") from error
    with handle:
        try:
            sample = handle.read(65536)
        except UnicodeDecodeError as error:
            raise RecipientsError(
                f"{path} is not UTF-8 text: save it as CSV UTF-8 and try again"
            ) from error
        handle.seek(0)
        dialect = sniff_dialect(sample)
        try:
            yield from _rows(path, csv.reader(handle, dialect), summary)
        except UnicodeDecodeError as error:
            raise RecipientsError(
                f"{path} is not UTF-8 text past its start: save it as CSV UTF-8"
            ) from error


def sniff_dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    """The CSV dialect of a file's start; if the sniffer gives up (it does on CRLF files
    with quoted delimiters), the delimiter most frequent in the header line."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        header = sample.splitlines()[0] if sample else ""
        delimiter = max(_DELIMITERS, key=header.count)

        class Sniffed(csv.excel):
            pass

        Sniffed.delimiter = delimiter if header.count(delimiter) else ","
        return Sniffed


def _rows(
    path: Path, reader: Iterator[list[str]], summary: ImportSummary
) -> Iterator[NewRecipient]:
    header = next(reader, None)
    if header is None:
        raise RecipientsError(f"{path} is empty: it needs a header row with an email column")
    names = [field_name(column) for column in header]
    lookup = [name.replace("_", " ") for name in names]
    column = next((lookup.index(c) for c in _ADDRESS_COLUMNS if c in lookup), None)
    if column is None:
        raise RecipientsError(
            f"{path} has no email column (its columns: {', '.join(header)}): "
            "name the address column 'email'"
        )
    seen: set[str] = set()
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        summary.rows += 1
        fields = {
            name: value for name, value in zip(names, row, strict=False) if name != names[column]
        }
        raw = row[column] if column < len(row) else ""
        try:
            address, domain = parse_address(raw)
        except ValueError as error:
            summary.invalid += 1
            yield NewRecipient(raw, "", fields, Status.INVALID, str(error))
            continue
        key = f"{address.rpartition('@')[0].lower()}@{domain}"  # one mailbox, however written
        if key in seen:
            summary.duplicates += 1
            continue
        seen.add(key)
        summary.valid += 1
        yield NewRecipient(address, domain, fields)
