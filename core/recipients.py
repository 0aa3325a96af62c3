"""Reading a recipients file into campaign rows: bytes in, checked addresses out.

Owns everything between the user's CSV and :class:`~core.store.NewRecipient`: the
encoding (UTF-8 with or without BOM, UTF-16/32 with BOM, or a legacy Windows/ISO code
page found by charset-normalizer when the bytes are not UTF-8), the delimiter
(``,`` ``;`` tab ``|``), whether the first row is a header, which column holds the
addresses, the address check (email-validator, syntax only), duplicates and the
suppression list. The import dialog's preview (:func:`preview_csv`) and the importer
(:func:`read_recipients`) share one detection path, so what the user sees is what is
imported.

Never reads the whole file at once (one sample of :data:`SAMPLE_BYTES`, then a stream),
never asks the DNS, never lets a CR, LF or NUL through in an address: such a row is kept
as ``invalid`` with its reason, like every row whose address is not valid.

Decisions where the requirements were silent:

* A domain with one trailing dot (``u@example.com.``) is accepted without the dot: it is
  the same DNS name. Two trailing dots are invalid.
* The local part may be at most 64 octets (RFC 5321 4.5.3.1.1), counted in UTF-8 on the
  normalised form; email-validator only counts it in strict mode, and in characters.
* Addresses on ``.test`` (RFC 2606) are accepted: the rehearsal lab sends to them. Other
  special-use names (``.local``, ``.invalid``, ``localhost``...) are refused, and so is a
  domain without a dot.
* A row with more non-empty cells than the header (usually a delimiter in an unquoted
  cell, which shifts the merge fields) is invalid, with that reason; extra empty cells
  (trailing delimiters) are ignored. A short row gets empty fields; one too short to
  reach the address column is invalid ("the address is empty").
* A row whose cells are all empty is skipped and not counted.
* A header cell that is empty becomes ``column_N``; a repeated name gets ``_2``, ``_3``.
* The first row is a header unless a cell holds an address: a valid one, a one-word
  cell with an ``@`` (``ann@``), or a cell with an ``@`` in the column where the next
  rows have addresses. Such a first row is data, invalid with its reason if it must be.
* A quote left open runs on to the next quote and would turn the rows between into one
  cell: when a record spans several lines and one of the later lines of a quoted cell
  reads as a row of its own (a valid address in the address column, no wider than the
  header, split by the delimiter), the file is refused naming the line the quote opened
  on. A quoted line break in a name or a note is data.
* cp1252 is preferred when the detector scores it as well as its first choice and the
  sample reads as Western text in it. On a short sample a Polish or Czech cp1250 export
  may still be detected as cp1252 (as may Turkish cp1254, Italian be taken for cp1258):
  the summary says the encoding was detected and asks for a look at the names, and the
  caller's encoding settles it. A UTF-16/32 choice without byte order mark is read in
  the byte order its NUL bytes show (refused when they show none).
* Addresses are shown as email-validator normalises them (``local@domain``, the domain
  lower case in its Unicode form; a display name dropped); an invalid row keeps its cell
  exactly as written.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, NamedTuple

from core.store import NewRecipient, Status

if TYPE_CHECKING:
    from email_validator import ValidatedEmail

    from core.suppression import SuppressionList

#: Bytes read from the start of a file to choose its encoding, delimiter and layout.
SAMPLE_BYTES: Final = 1 << 20
#: Records of the sample examined for the delimiter, the header and the address column.
SNIFF_RECORDS: Final = 100
#: The largest recipients (or suppression) file read. Rows stream, but telling duplicates
#: apart keeps every distinct address in memory (about 130 bytes each, measured with
#: 1 million rows: 150 MB peak), so a file this size (10 million short rows) needs about
#: 1.3 GB; a bigger one is far more likely a wrong file than a list, and would take
#: minutes before the user learnt so.
MAX_FILE_BYTES: Final = 256 << 20

#: Header names that mark the address column, most specific first (compared with case,
#: spaces, ``-``, ``_`` and ``.`` ignored). ``adresse`` may be a postal address: last.
ADDRESS_COLUMN_NAMES: Final = (
    "email",
    "e-mail",
    "email address",
    "e-mail address",
    "mail",
    "mail address",
    "courriel",
    "adresse e-mail",
    "adresse mail",
    "adresse électronique",
    "correo",
    "correo electrónico",
    "correo electronico",
    "e-mail-adresse",
    "e-post",
    "e-postadresse",
    "emailadres",
    "indirizzo email",
    "posta elettronica",
    "endereço de e-mail",
    "adres e-mail",
    "sähköposti",
    "adresse",
)

#: The delimiters looked for, in order of preference when two fit equally well.
DELIMITERS: Final = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

# Byte order marks, longest first (the UTF-32 LE mark begins with the UTF-16 LE one).
_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_EXCEL_ADVICE: Final = "in Excel use File > Save As > CSV UTF-8"
# (magic bytes, what the file is, what to do); a ZIP is told apart by its member names.
_MAGIC: Final = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls)", _EXCEL_ADVICE),
    (b"\x89PNG", "a PNG image", "export the list as CSV UTF-8"),
    (b"\xff\xd8\xff", "a JPEG image", "export the list as CSV UTF-8"),
    (b"GIF8", "a GIF image", "export the list as CSV UTF-8"),
    (b"%PDF", "a PDF document", "export the list as CSV UTF-8"),
)

# The legacy encodings the detector may choose: Windows and ISO code pages, and the
# common East Asian ones. Left to itself it picks Mac and DOS code pages for short
# Western samples (mac_latin2 for "Renée"), which CSV exports never use.
_LEGACY_ENCODINGS: Final = (
    "cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257",
    "cp1258", "latin_1", "iso8859_2", "iso8859_5", "iso8859_7", "iso8859_9", "iso8859_15",
    "koi8_r", "koi8_u", "cp874", "cp932", "euc_jp", "gb18030", "big5", "cp949",
)  # fmt: skip

# Text codecs that no CSV export is written in: refused as a choice of encoding.
_NOT_FILE_ENCODINGS: Final = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"}
)

# Code pages where two bytes make one character: a Western sample's accented letters
# often pair up into valid ideograms in them.
_DOUBLE_BYTE: Final = frozenset({"cp932", "euc_jp", "gb18030", "big5", "cp949"})
# Scores the detector itself takes as equal (charset_normalizer.models.CharsetMatch.__lt__:
# it then prefers the code page that made the most multi-byte characters).
_CHAOS_TIE: Final = 0.005
_COHERENCE_TIE: Final = 0.02
_HUNGARIAN_BYTES: Final = frozenset(b"\xd5\xdb\xf5\xfb")  # ő ű Ő Ű in cp1250
_SAME_IN_CP1250_AND_CP1252: Final = bytes(
    byte
    for byte in range(256)
    if bytes([byte]).decode("cp1250", "replace") == bytes([byte]).decode("cp1252", "replace")
)
_LINE_ENDS_AND_TAB: Final = str.maketrans("", "", "\r\n\t")
_WORDS: Final = re.compile(r"[^\W\d_]+")  # runs of letters

LOCAL_PART_MAX_OCTETS: Final = 64  # RFC 5321 4.5.3.1.1
ADDRESS_MAX_OCTETS: Final = 254  # RFC 5321 4.5.3.1.3 (256 less the angle brackets)

_LINE_BREAK: Final = "the address contains a line break"
_LINE_BREAK_RE: Final = re.compile(r"\r\n|\r|\n")  # as csv counts lines
_NUL: Final = "the address contains a NUL character"
_EMPTY: Final = "the address is empty"
_LOCAL_TOO_LONG: Final = f"the local part is longer than {LOCAL_PART_MAX_OCTETS} octets"
_NO_DOT: Final = "the domain has no dot"
_NO_AT: Final = "the address has no @"

# Plainly ordinary addresses, which skip email-validator (test_recipients_properties
# proves the result is the same): an ASCII dot-atom local part (RFC 5322 3.2.3) and an
# ASCII domain whose check is cached.
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ORDINARY: Final = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# RFC 2142 names that email-validator lower-cases: left to it.
_CASE_INSENSITIVE_NAMES: Final = frozenset(
    {"info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster",
     "hostmaster", "usenet", "news", "webmaster", "www", "uucp", "ftp"}
)  # fmt: skip

# email-validator's messages made plain: (pattern, reason); the first match wins.
_PLAIN: Final = tuple(
    (re.compile(pattern), reason)
    for pattern, reason in (
        (r"must have an @-sign", _NO_AT),
        (r"after the @-sign contains invalid characters: .*'@'", "the address has more than one @"),
        (r"something before the @-sign", "the address has nothing before the @"),
        (r"something after the @-sign", "the address has nothing after the @"),
        (r"two periods in a row", "the address has two dots in a row"),
        (r"cannot start with a period", "the local part starts with a dot"),
        (r"period immediately before the @-sign", "the local part ends with a dot"),
        (r"period immediately after the @-sign", "the domain starts with a dot"),
        (r"cannot end with a period", "the domain ends with a dot"),
        (r"hyphen immediately after the @-sign", "the domain starts with a hyphen"),
        (r"cannot end with a hyphen", "the domain ends with a hyphen"),
        (r"two letters followed by two dashes", "a part of the domain has -- after two letters"),
        (r"period and a hyphen next to each other", "the domain has a dot next to a hyphen"),
        (r"anything after the email address", "the address has something after its >"),
        (r"It should have a period", _NO_DOT),
        (r"not within a valid top-level domain", "the domain does not end in a top-level domain"),
        (r"special-use or reserved name", "the domain is a reserved name that cannot receive mail"),
        (r"bracketed IP address", "the domain is an IP address in brackets, not a name"),
        (r"too long after the @-sign", "the domain is longer than 253 octets"),
        (r"periods cannot be separated by so many", "a part of the domain is over 63 octets"),
        (r"email address is too long", f"the address is longer than {ADDRESS_MAX_OCTETS} octets"),
        (r"(?i)angle bracket", "the address has an unmatched < or >"),
        (r"display name", "the address has an unmatched < or >"),
    )
)  # fmt: skip
_TOO_MANY: Final = re.compile(r" \(\d+(-\d+)? (character|byte)s? too many\)")
_WORDING: Final = (
    ("The part after the @-sign", "the domain"),
    ("the part after the @-sign", "the domain"),
    ("The email address contains invalid characters in quotes before the @-sign",
     "the quoted local part contains invalid characters"),
    ("The email address contains invalid characters before the @-sign",
     "the local part contains invalid characters"),
    ("An email address", "the address"),
    ("The email address", "the address"),
    ("after the @-sign", "in the domain"),
    ("before the @-sign", "in the local part"),
)  # fmt: skip


class RecipientsError(ValueError):
    """The file cannot be read as a recipients list; the message says what to do."""


@dataclass(slots=True)
class ImportSummary:
    """What an import found, filled as rows are read (the layout before the first row).

    ``rows`` counts every non-blank data row: ``valid + invalid + suppressed +
    duplicates``. Invalid and suppressed rows are yielded (kept in the campaign for the
    report); duplicates are not.
    """

    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    smtputf8: int = 0  # valid addresses whose local part is not ASCII (RFC 6531)
    encoding: str = ""
    encoding_guessed: bool = False  # chosen by the detector: names may need a look
    delimiter: str = ""  # "comma", "semicolon", "tab", "pipe"
    header: bool = False
    address_column: str = ""  # its header cell as written (or column_N)
    columns: tuple[str, ...] = ()  # the merge fields, in file order

    def describe(self) -> str:
        """A few lines of plain text for the command line."""
        lines = [
            f"read {self.rows} rows: {self.valid} to send, {self.invalid} invalid, "
            f"{self.suppressed} suppressed, {self.duplicates} duplicates dropped"
        ]
        guessed = " (detected: check the names look right)" if self.encoding_guessed else ""
        header = "a header row" if self.header else "no header row"
        lines.append(
            f"file: {self.encoding}{guessed}, {self.delimiter}-separated, {header}, "
            f"addresses in column '{self.address_column}'"
        )
        lines.append(f"merge fields: {', '.join(self.columns) or 'none'}")
        if self.smtputf8:
            lines.append(
                f"{self.smtputf8} of them with a non-ASCII local part: only servers that "
                "offer SMTPUTF8 accept those"
            )
        ranked = sorted(self.invalid_reasons.items(), key=lambda item: (-item[1], item[0]))
        lines.extend(f"invalid: {count} x {reason}" for reason, count in ranked[:5])
        if len(ranked) > 5:
            lines.append(f"invalid: {sum(n for _, n in ranked[5:])} x other reasons")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class CsvPreview:
    """The start of a file as the importer will read it, for the import dialog."""

    encoding: str
    encoding_guessed: bool
    delimiter: str  # the character
    header: bool
    columns: tuple[str, ...]  # header cells as written, or column_1, column_2...
    fields: tuple[str, ...]  # each column's merge field name
    rows: tuple[tuple[str, ...], ...]  # the first data rows, as read
    address_column: int | None  # found by name, or guessed from the cells; None: ask

    @property
    def delimiter_name(self) -> str:
        return DELIMITERS.get(self.delimiter, repr(self.delimiter))


class Address(NamedTuple):
    """A valid address: what the campaign shows and what SMTP and duplicates need."""

    email: str  # local@domain, the domain in Unicode (email-validator's normalised form)
    local: str  # the local part as RCPT TO sends it (quoted if it must be)
    domain: str  # A-label, lower case
    smtputf8: bool  # the local part is not ASCII

    @property
    def key(self) -> str:
        """One mailbox however it is written: local part lower-cased, A-label domain."""
        return f"{self.local.lower()}@{self.domain}"


# ---- addresses ---------------------------------------------------------------------------


def field_name(header: str) -> str:
    """A merge field's name from its column header: lower case, spaces to ``_``, in NFC
    (a header saved decomposed, as macOS may, must match ``{{prénom}}`` typed composed)."""
    return "_".join(unicodedata.normalize("NFC", header).strip().lower().split())


def check_address(cell: str) -> Address | str:
    """The address in a cell, or the plain reason it is not one.

    Surrounding spaces and a ``Name <address>`` form are accepted; any CR, LF or NUL in
    the cell makes it invalid.
    """
    if "\r" in cell or "\n" in cell:
        return _LINE_BREAK
    if "\0" in cell:
        return _NUL
    address = cell.strip()
    if not address:
        return _EMPTY
    if address.endswith(">"):
        address = _without_display_name(address)
    if address.endswith("."):
        address = address[:-1]  # a fully qualified domain: the same DNS name
    checked = ordinary_address(address) or full_address_check(address)
    if isinstance(checked, str):
        return checked
    if "." not in checked.domain:
        return _NO_DOT
    local_octets = len(checked.local) if checked.local.isascii() else len(checked.local.encode())
    if local_octets > LOCAL_PART_MAX_OCTETS:
        return _LOCAL_TOO_LONG
    return checked


def parse_address(raw: str) -> tuple[str, str]:
    """(the address normalised, its domain's A-label), or ValueError saying why not."""
    checked = check_address(raw)
    if isinstance(checked, str):
        raise ValueError(checked)
    return checked.email, checked.domain


def ascii_domain(domain: str) -> str:
    """The A-label form of a domain (``Bücher.test.`` -> ``xn--bcher-kva.test``), or
    ValueError saying why it is not a mail domain."""
    name = domain.strip()
    name = name[:-1] if name.endswith(".") else name
    checked = check_address(f"a@{name}") if name else _EMPTY
    if isinstance(checked, str):
        raise ValueError(checked.replace("the address", "the domain"))
    return checked.domain


def ordinary_address(address: str) -> Address | None:
    """The fast path: the result email-validator would give, for a plainly ordinary ASCII
    address; None when the address is anything else (or invalid) and needs the full check.
    """
    match = _ORDINARY.fullmatch(address)
    if match is None:
        return None
    local, domain = match.groups()
    if local.lower() in _CASE_INSENSITIVE_NAMES:
        return None
    checked = _checked_domain(domain)
    if checked is None:
        return None
    shown, ascii_form = checked
    email = f"{local}@{shown}"
    # email-validator's length checks: the address as given, normalised, and in ASCII.
    longest = max(len(address), len(email.encode()), len(local) + 1 + len(ascii_form))
    if longest > ADDRESS_MAX_OCTETS:
        return None
    return Address(email, local, ascii_form, False)


def full_address_check(address: str) -> Address | str:
    """email-validator's verdict on an address (without display name), reason made plain."""
    checked = _validate(address)
    if isinstance(checked, str):
        reason = plain_reason(checked)
        if reason == _NO_AT and "@" in address:  # every @ is inside quotes
            odd = address.count('"') % 2
            return (
                'the address has an unmatched "' if odd else "the address has no @ outside quotes"
            )
        return reason
    return Address(checked.normalized, checked.local_part, checked.ascii_domain, checked.smtputf8)


def plain_reason(message: str) -> str:
    """email-validator's message as a short lower-case reason with no per-row counts (so
    that reasons can be counted)."""
    for pattern, reason in _PLAIN:
        if pattern.search(message):
            return reason
    text = _TOO_MANY.sub("", message).rstrip(".")
    for wording, plain in _WORDING:
        text = text.replace(wording, plain)
    return text[:1].lower() + text[1:]


@functools.lru_cache(maxsize=65536)
def _checked_domain(domain: str) -> tuple[str, str] | None:
    """(Unicode form, A-label) of an ASCII domain that email-validator accepts, else None.

    Cached: a list of a million addresses has a few thousand domains at most.
    """
    checked = _validate(f"a@{domain}")
    if isinstance(checked, str):
        return None
    return checked.domain, checked.ascii_domain


def _validate(address: str) -> ValidatedEmail | str:
    """email-validator, syntax only: no DNS; SMTPUTF8 and quoted local parts allowed; no
    IP literals; ``.test`` allowed for the lab (else a special-use name, RFC 6761 6.2).
    Its message when it refuses the address."""
    # Imported here: ~20 ms at every start, which only checking an address needs.
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(
            address,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=True,
            allow_domain_literal=False,
            allow_display_name=False,
            test_environment=True,
        )
    except EmailNotValidError as error:
        return str(error)


def _without_display_name(cell: str) -> str:
    """The ``address`` of ``Name <address>``: from the first ``<`` outside quotes."""
    quoted = escaped = False
    for index, char in enumerate(cell):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = quoted
        elif char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            return cell[index + 1 : -1].strip()
    return cell


# ---- the file: encoding, delimiter, layout -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Start:
    """A file's encoding and the decoded start of it (complete lines only)."""

    encoding: str  # a Python codec name
    guessed: bool  # chosen by the detector
    skip: int  # bytes of byte order mark before the text
    text: str
    complete: bool  # the text is the whole file


@dataclass(frozen=True, slots=True)
class _Format:
    """How a file is read: found once from its sample, used by preview and import alike."""

    encoding: str
    guessed: bool
    skip: int
    delimiter: str
    records: tuple[tuple[str, ...], ...]  # the first non-blank records of the sample
    lines: tuple[tuple[int, int], ...]  # the first and last line of each record


@dataclass(frozen=True, slots=True)
class _Layout:
    header: bool
    cells: tuple[str, ...]  # as written (column_N without a header)
    names: tuple[str, ...]  # merge field names, unique
    address: int | None


def _start(path: Path, handle: BinaryIO, encoding: str | None) -> _Start:
    """The encoding: the caller's; a byte order mark's; UTF-8 if the sample decodes as
    UTF-8; else the detector's guess from the sample."""
    sample = handle.read(SAMPLE_BYTES)
    at_end = len(sample) < SAMPLE_BYTES
    bom, bom_codec = next(((b, c) for b, c in _BOMS if sample.startswith(b)), (b"", ""))
    guessed = False
    wide = encoding is not None and _family(_codec(encoding)) in ("utf-16", "utf-32")
    if not bom:
        _refuse_binary(path, sample, nul_is_text=wide)
    _refuse_huge(path, handle)
    if encoding is not None:
        codec = _codec(encoding)
        if bom and _family(codec) == _family(bom_codec):
            codec = bom_codec  # the mark says which byte order; skip it
        else:
            bom = b""
            if codec in ("utf-16", "utf-32"):  # without a mark Python's codec refuses
                codec = _wide_codec(path, sample, codec)
    elif bom:
        codec = bom_codec
    elif _is_utf8(sample, at_end):
        codec = "utf-8"
    else:
        codec, guessed = _legacy_encoding(path, handle, sample), True
    try:
        text = codecs.getincrementaldecoder(codec)().decode(sample[len(bom) :], final=at_end)
    except UnicodeError:
        raise _decoding_error(path, handle, codec, len(bom)) from None
    if not at_end:  # the last line may be cut
        text = text[: max(text.rfind("\n"), text.rfind("\r")) + 1]
    return _Start(codec, guessed, len(bom), text, at_end)


def _detect(path: Path, handle: BinaryIO, encoding: str | None, delimiter: str | None) -> _Format:
    start = _start(path, handle, encoding)
    chosen = guess_delimiter(start.text) if delimiter is None else _delimiter(delimiter)
    try:
        records, lines = _sample_records(start.text, chosen, complete=start.complete)
    except csv.Error as error:
        raise RecipientsError(f"{path}: {error}: check the quotes on that line") from None
    if not records and not start.complete:
        raise RecipientsError(
            f"{path} has no line break in its first MiB: it is not a CSV list of recipients"
        )
    if not records:
        raise RecipientsError(f"{path} is empty: it needs a header row with an email column")
    return _Format(start.encoding, start.guessed, start.skip, chosen, records, lines)


def _refuse_binary(path: Path, sample: bytes, *, nul_is_text: bool) -> None:
    if sample.startswith(b"PK\x03\x04"):
        if b"xl/" in sample[:4096] or b"[Content_Types].xml" in sample[:4096]:
            what, advice = "an Excel workbook", _EXCEL_ADVICE
        elif b"opendocument.spreadsheet" in sample[:4096]:
            what, advice = "a spreadsheet (.ods)", "use File > Save As > Text CSV, UTF-8"
        else:
            what, advice = "a ZIP archive", "extract the list and export it as CSV UTF-8"
        raise RecipientsError(f"{path} is {what}, not CSV: {advice}")
    for magic, what, advice in _MAGIC:
        if sample.startswith(magic):
            raise RecipientsError(f"{path} is {what}, not CSV: {advice}")
    if b"\0" in sample and not nul_is_text:
        order = _byte_order(sample, "utf-16")
        if order is None:
            raise RecipientsError(
                f"{path} is not a text file (it holds NUL bytes): export the list as CSV UTF-8"
            )
        raise RecipientsError(
            f"{path} looks like UTF-16 text without a byte order mark: choose the encoding "
            f"{order}, or save it as CSV UTF-8"
        )


def _refuse_huge(path: Path, handle: BinaryIO) -> None:
    """RecipientsError for a file over :data:`MAX_FILE_BYTES`, before a row is read (a
    binary file that size was refused as binary already: that says more)."""
    size = os.fstat(handle.fileno()).st_size
    if size > MAX_FILE_BYTES:
        raise RecipientsError(
            f"{path} is {_megabytes(size)}; MX Mailer reads lists of at most "
            f"{_megabytes(MAX_FILE_BYTES)} (about 10 million rows): split the list into "
            "several files and send them as separate campaigns"
        )


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):,.0f} MiB"


def _byte_order(sample: bytes, family: str) -> str | None:
    """``family``-le or -be, told by where a sample without byte order mark has its NUL
    bytes; None when neither fits. ASCII in UTF-16 has a NUL in every other byte, after
    the letter (LE) or before it; in UTF-32 the two high bytes of a character are NUL."""
    if family == "utf-16":
        low_first, high_first = sample[1::2], sample[0::2]
    else:
        low_first, high_first = sample[2::4] + sample[3::4], sample[0::4] + sample[1::4]
    le = low_first.count(0) * 2 > len(low_first)
    be = high_first.count(0) * 2 > len(high_first)
    if le == be:
        return None
    return f"{family}-le" if le else f"{family}-be"


def _wide_codec(path: Path, sample: bytes, family: str) -> str:
    """The byte order of a file the caller says is UTF-16 (or UTF-32) but has no mark."""
    order = _byte_order(sample, family)
    if order is None:
        raise RecipientsError(
            f"{path} has no byte order mark and does not look like {family.upper()} text: "
            f"if it is, choose {family}-le or {family}-be; else choose its encoding (most "
            "exports are utf-8)"
        )
    return order


def _codec(encoding: str) -> str:
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise RecipientsError(
            f"unknown encoding {encoding!r}: use a name such as utf-8, cp1252 or iso-8859-15"
        ) from None
    # bytes-to-bytes (base64, zlib) and str-to-str (rot13) codecs, and those that encode
    # something other than a file's text (domain names, Python escapes).
    if not info._is_text_encoding or info.name in _NOT_FILE_ENCODINGS:
        raise RecipientsError(
            f"{encoding!r} is not a text encoding: use a name such as utf-8, cp1252 or iso-8859-15"
        )
    return info.name


def _family(codec: str) -> str:
    """utf-8 / utf-16 / utf-32 for the Unicode codecs (any byte order, with or without
    mark), else the codec itself."""
    name = codecs.lookup(codec).name
    return name[:6] if name.startswith(("utf-16", "utf-32")) else name.removesuffix("-sig")


def _delimiter(delimiter: str) -> str:
    names = {name: char for char, name in DELIMITERS.items()}
    chosen = names.get(delimiter.strip().lower(), delimiter)
    if len(chosen) != 1 or chosen in '"\r\n':
        raise RecipientsError(
            f"the delimiter {delimiter!r} cannot be used: give one character "
            "(or comma, semicolon, tab, pipe)"
        )
    return chosen


def _is_utf8(sample: bytes, at_end: bool) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=at_end)
    except UnicodeError:
        return False
    return True


def _legacy_encoding(path: Path, handle: BinaryIO, sample: bytes) -> str:
    """The detector's code page, except that cp1252 (what Windows in Western Europe and
    the Americas exports) wins whenever the detector has no reason to prefer another.

    The detector names one of the code pages that decode the sample identically, and
    scores several alike when the sample has few non-ASCII letters: it then lists cp1250
    (``Peńa``, ``Sřren``) or big5 (``H幨鋝e``) first as often as cp1252. cp1252 is chosen
    when it decodes like the best; when it scores as well as the best (as the detector
    compares scores) and the sample reads as Latin text in it (:func:`_reads_as_latin`),
    unless only Hungarian letters tell cp1250 from cp1252; and when the best is an East
    Asian double-byte code page and the sample reads as Latin text in cp1252 (a few
    accented letters pair up as one ideogram).
    """
    # Imported here: ~15 ms at every start, and only a file that is not UTF-8 needs it.
    import charset_normalizer

    results = charset_normalizer.from_bytes(sample, cp_isolation=list(_LEGACY_ENCODINGS))
    best = results.best()
    if best is None:
        raise _decoding_error(path, handle, "utf-8", 0, "and no other encoding fits it")
    if "cp1252" in best.could_be_from_charset:
        return "cp1252"
    tied = any(
        "cp1252" in match.could_be_from_charset
        and abs(match.chaos - best.chaos) < _CHAOS_TIE
        and abs(match.coherence - best.coherence) <= _COHERENCE_TIE
        for match in results
    )
    if tied and "cp1250" in best.could_be_from_charset and _hungarian(sample):
        return "cp1250"
    if (tied or best.encoding in _DOUBLE_BYTE) and _reads_as_latin(sample):
        return "cp1252"
    return _codec(best.encoding)


def _hungarian(sample: bytes) -> bool:
    """Whether the only letters cp1250 and cp1252 read differently in the sample are
    Hungarian ő ű Ő Ű (õ û Õ Û in cp1252): Western text with õ or û has ã, è, à... too."""
    differing = set(sample.translate(None, _SAME_IN_CP1250_AND_CP1252))
    return bool(differing) and differing <= _HUNGARIAN_BYTES


def _reads_as_latin(sample: bytes) -> bool:
    """Whether cp1252 decodes the sample to Western text: nothing unprintable, most of
    the non-ASCII characters letters, and those letters sprinkled in ASCII words (in
    ``Núñez`` or ``Mølgaard``), not whole words of them as Cyrillic, Greek, Hebrew or
    CJK bytes give when read in cp1252 (``Èâàí`` for Иван)."""
    try:
        text = sample.decode("cp1252")
    except UnicodeDecodeError:
        return False
    if not text.translate(_LINE_ENDS_AND_TAB).isprintable():
        return False
    others = [char for char in text if not char.isascii()]
    if sum(char.isalpha() for char in others) * 2 <= len(others):
        return False
    ascii_letters = non_ascii_letters = 0
    for word in _WORDS.findall(text):
        if not word.isascii():
            non_ascii = sum(not char.isascii() for char in word)
            non_ascii_letters += non_ascii
            ascii_letters += len(word) - non_ascii
    return ascii_letters >= non_ascii_letters


def guess_delimiter(text: str) -> str:
    """The delimiter that splits the first records of ``text`` into the most rows as wide
    as the first one (quotes respected); a comma when none splits the first row."""
    best, best_score = ",", 0
    for delimiter in DELIMITERS:
        try:
            records, _ = _sample_records(text, delimiter, complete=True)
        except csv.Error:
            continue
        width = len(records[0]) if records else 0
        score = sum(len(record) == width for record in records) if width > 1 else 0
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _sample_records(
    text: str, delimiter: str, *, complete: bool
) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[int, int], ...]]:
    """The first non-blank records of ``text`` (the last dropped if it may be cut), and
    the first and last line of each."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    records: list[tuple[str, ...]] = []
    lines: list[tuple[int, int]] = []
    last = 0
    try:
        for record in reader:
            if not _blank(record):
                records.append(tuple(record))
                lines.append((last + 1, reader.line_num))
                if len(records) > SNIFF_RECORDS:
                    return tuple(records[:SNIFF_RECORDS]), tuple(lines[:SNIFF_RECORDS])
            last = reader.line_num
    except csv.Error as error:
        raise csv.Error(f"{error} in the record from line {last + 1}") from None
    if not complete and records:
        records.pop()
        lines.pop()
    return tuple(records), tuple(lines)


def _layout(path: Path, fmt: _Format, address_column: str | int | None) -> _Layout:
    first = fmt.records[0]
    header = not _is_data(first, fmt.records[1:])
    if header:
        cells = tuple(first)
        names = _unique([field_name(cell) or f"column_{n}" for n, cell in enumerate(cells, 1)])
        data = fmt.records[1:]
    else:
        cells = tuple(f"column_{n}" for n in range(1, len(first) + 1))
        names = cells
        data = fmt.records
    if address_column is not None:
        address: int | None = _chosen_column(path, cells, names, address_column)
    else:
        address = named_address_column(names)
        if address is None:
            address = _column_of_addresses(len(cells), data)
    return _Layout(header, cells, names, address)


def _is_data(first: Sequence[str], rest: Sequence[Sequence[str]]) -> bool:
    """Whether the first record is a row rather than a header: a cell holds an address,
    valid or not. An invalid one is a cell with an @ that is one word (``ann@``,
    ``a@@b.test``) or that sits in the column where the next rows have addresses."""
    if any(isinstance(check_address(cell), Address) for cell in first):
        return True
    attempts = [index for index, cell in enumerate(first) if "@" in cell]
    if any(len(first[index].split()) == 1 for index in attempts):
        return True
    return bool(attempts) and _column_of_addresses(len(first), rest) in attempts


def _unique(names: list[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return tuple(unique)


def _compact(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name.lower())


_ADDRESS_NAMES: Final = tuple(_compact(name) for name in ADDRESS_COLUMN_NAMES)


def named_address_column(headers: Sequence[str]) -> int | None:
    """The index of the header cell that names an address column (``Email``,
    ``E-mail Address``, ``Courriel``...: :data:`ADDRESS_COLUMN_NAMES`), if one does."""
    compact = [_compact(name) for name in headers]
    for wanted in _ADDRESS_NAMES:
        if wanted in compact:
            return compact.index(wanted)
    return None


def _column_of_addresses(width: int, data: Sequence[Sequence[str]]) -> int | None:
    """The column where most of the first rows hold an address, if any does."""
    counts = [0] * width
    for record in data:
        for index, cell in enumerate(record[:width]):
            if "@" in cell and isinstance(check_address(cell), Address):
                counts[index] += 1
    best = max(range(width), key=counts.__getitem__, default=None)
    if best is None or counts[best] * 2 <= len(data):
        return None
    return best


def _chosen_column(
    path: Path, cells: tuple[str, ...], names: tuple[str, ...], chosen: str | int
) -> int:
    if isinstance(chosen, int):
        if 0 <= chosen < len(cells):
            return chosen
    else:
        wanted = field_name(chosen)
        for index, (cell, name) in enumerate(zip(cells, names, strict=True)):
            if chosen in (cell, name) or field_name(cell) == wanted:
                return index
    raise RecipientsError(
        f"{path} has no column {chosen!r} (its columns: {', '.join(cells)}): "
        "choose one of these, by name or by number from 0"
    )


def _decoding_error(
    path: Path, handle: BinaryIO, codec: str, skip: int, also: str = ""
) -> RecipientsError:
    """Where the first byte the codec cannot decode is (read again from the start: only
    on this error path)."""
    label = "UTF-8" if _family(codec) == "utf-8" else codec
    handle.seek(skip)
    decoder = codecs.getincrementaldecoder(codec)()
    lines = _LineCounter()
    while True:
        chunk = handle.read(SAMPLE_BYTES)
        try:
            lines.add(decoder.decode(chunk, final=not chunk))
        except UnicodeError as error:
            if not isinstance(error, UnicodeDecodeError):  # a codec's own complaint
                return RecipientsError(
                    f"{path} cannot be read as {label} text ({error}){also}: save it as CSV "
                    "UTF-8, or choose the encoding it was saved in"
                )
            lines.add(error.object[: error.start].decode(codec, errors="replace"))
            byte = error.object[error.start : error.start + 1].hex().upper()
            return RecipientsError(
                f"{path} is not {label} text at line {lines.line} (byte 0x{byte}){also}: "
                "save it as CSV UTF-8, or if it is a legacy export, choose its encoding "
                "(e.g. cp1252)"
            )
        if not chunk:  # pragma: no cover - the caller saw an error
            return RecipientsError(f"{path} is not {label} text{also}: save it as CSV UTF-8")


class _LineCounter:
    """Line breaks as csv counts them (CRLF, LF or CR), across chunks."""

    def __init__(self) -> None:
        self.line = 1
        self._after_cr = False

    def add(self, text: str) -> None:
        if not text:
            return
        breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
        if self._after_cr and text.startswith("\n"):
            breaks -= 1
        self.line += breaks
        self._after_cr = text.endswith("\r")


def _blank(record: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in record)


# ---- preview and import --------------------------------------------------------------------


def preview_csv(
    path: Path, *, encoding: str | None = None, delimiter: str | None = None, rows: int = 20
) -> CsvPreview:
    """The file as :func:`read_recipients` will read it: encoding, delimiter, header, the
    first ``rows`` data rows (at most :data:`SNIFF_RECORDS`) and the address column found
    by name or guessed from the cells (None: the user must choose)."""
    with _open(path) as handle:
        fmt, layout = _inspect(path, handle, encoding, delimiter, None)
    data = fmt.records[1:] if layout.header else fmt.records
    return CsvPreview(
        encoding=fmt.encoding,
        encoding_guessed=fmt.guessed,
        delimiter=fmt.delimiter,
        header=layout.header,
        columns=layout.cells,
        fields=layout.names,
        rows=data[: max(rows, 0)],
        address_column=layout.address,
    )


def read_header(
    path: Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    address_column: str | int | None = None,
) -> list[str]:
    """The merge fields the rows of ``path`` will have (every column but the address's),
    or RecipientsError as :func:`read_recipients` would raise it before the first row."""
    with _open(path) as handle:
        _, layout = _inspect(path, handle, encoding, delimiter, address_column)
    column = _address_column(path, layout)
    return [name for index, name in enumerate(layout.names) if index != column]


def read_recipients(
    path: Path,
    summary: ImportSummary,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    address_column: str | int | None = None,
    suppression: SuppressionList | None = None,
) -> Iterator[NewRecipient]:
    """Stream the rows of ``path`` as campaign rows, filling ``summary`` as it goes.

    ``encoding`` (a codec name) and ``delimiter`` (a character or comma, semicolon, tab,
    pipe) override detection; ``address_column`` is a header name or a 0-based index.
    Valid rows are QUEUED, rows with a bad address INVALID and rows on ``suppression``
    SUPPRESSED (each with its reason); duplicates are counted and not yielded. Lazy:
    nothing is read until the first row is asked for.
    """
    with _open(path) as handle:
        fmt, layout = _inspect(path, handle, encoding, delimiter, address_column)
        column = _address_column(path, layout)
        summary.encoding = fmt.encoding
        summary.encoding_guessed = fmt.guessed
        summary.delimiter = DELIMITERS.get(fmt.delimiter, repr(fmt.delimiter))
        summary.header = layout.header
        summary.address_column = layout.cells[column]
        summary.columns = tuple(n for i, n in enumerate(layout.names) if i != column)
        records = _records(path, handle, fmt, len(layout.cells), column)
        if layout.header:
            next(records, None)
        yield from _recipients(records, layout, column, summary, suppression)


def text_lines(path: Path, *, encoding: str | None = None) -> Iterator[str]:
    """The lines of a text file, without line ends, its encoding found as for a recipients
    file (for lists of addresses such as the suppression list)."""
    with _open(path) as handle:
        start = _start(path, handle, encoding)
        handle.seek(start.skip)
        text = io.TextIOWrapper(handle, encoding=start.encoding, newline=None)
        while True:
            try:
                line = next(text, None)
            except UnicodeError:
                raise _decoding_error(path, handle, start.encoding, start.skip) from None
            if line is None:
                return
            yield line.rstrip("\n")


def _inspect(
    path: Path,
    handle: BinaryIO,
    encoding: str | None,
    delimiter: str | None,
    address_column: str | int | None,
) -> tuple[_Format, _Layout]:
    fmt = _detect(path, handle, encoding, delimiter)
    layout = _layout(path, fmt, address_column)
    if layout.address is not None:  # refused before any row is shown or imported
        width = len(layout.cells)
        for record, (first, last) in zip(fmt.records, fmt.lines, strict=True):
            if last > first:
                _refuse_runaway_quote(
                    path, record, first, last, fmt.delimiter, width, layout.address
                )
    return fmt, layout


def _address_column(path: Path, layout: _Layout) -> int:
    if layout.address is None:
        raise RecipientsError(
            f"{path} has no email column (its columns: {', '.join(layout.cells)}) and no "
            "column whose cells look like addresses: name the address column 'email' or "
            "choose it"
        )
    return layout.address


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as error:
        raise RecipientsError(f"cannot read {path}: {error.strerror}") from error


def _records(
    path: Path, handle: BinaryIO, fmt: _Format, width: int, column: int
) -> Iterator[list[str]]:
    """The file's non-blank records, streamed; decoding and CSV errors, and a quote left
    open over rows (:func:`_refuse_runaway_quote`), as RecipientsError naming the line."""
    handle.seek(fmt.skip)
    text = io.TextIOWrapper(handle, encoding=fmt.encoding, newline="")
    reader = csv.reader(text, delimiter=fmt.delimiter, strict=False)
    last = 0  # the last line of the previous record
    try:
        for record in reader:
            line = reader.line_num
            if line > last + 1:  # a quoted line break: rare, so checked only then
                _refuse_runaway_quote(path, record, last + 1, line, fmt.delimiter, width, column)
            last = line
            if record and (record[0].strip() or not _blank(record)):
                yield record
    except UnicodeError:
        raise _decoding_error(path, handle, fmt.encoding, fmt.skip) from None
    except csv.Error as error:
        if _family(fmt.encoding) not in ("utf-16", "utf-32") and _nul_before(handle):
            raise RecipientsError(
                f"{path} holds NUL bytes from line {last + 1}: it is not a text file past "
                "that point; export the list as CSV UTF-8"
            ) from None
        where = "that line" if reader.line_num == last + 1 else f"line {last + 1}"
        raise RecipientsError(
            f"{path} line {reader.line_num}: {error}: check the quotes on {where}"
        ) from None


def _nul_before(handle: BinaryIO) -> bool:
    """Whether the bytes just read hold a NUL: binary data past the sample, which the csv
    module reads as one endless field (its error would blame the quotes). The csv field
    limit is 128 Ki characters, so the window covers the whole field that failed."""
    end = handle.tell()
    handle.seek(max(end - 4 * csv.field_size_limit(), 0))
    return b"\0" in handle.read(end - handle.tell())


def _refuse_runaway_quote(
    path: Path,
    record: Sequence[str],
    first: int,
    last: int,
    delimiter: str,
    width: int,
    column: int,
) -> None:
    """RecipientsError if a record on lines ``first`` to ``last`` swallowed rows: a
    quoted cell one of whose later lines reads as a row of its own (:func:`_is_row`).

    A quote left open (``"Bob,unterminated``) runs on to the next quote in the file, and
    the rows between become one cell of the row it opened in: their recipients would not
    be mailed and that row would get their text. A quoted line break in a name or a note
    (``"Bob\nSmith"``) is data and passes.
    """
    line = first
    for cell in record:
        parts = _LINE_BREAK_RE.split(cell)
        for offset, part in enumerate(parts[1:], 1):
            if _is_row(part, delimiter, width, column):
                inside = f"line {last}" if last == line + 1 else f"lines {line + 1} to {last}"
                raise RecipientsError(
                    f"{path}: a quote opened on line {line} is not closed before line "
                    f"{last}, so {inside} would be read into one cell (line {line + offset} "
                    f"reads as a row of its own): check the quotes on line {line}"
                )
        line += len(parts) - 1


def _is_row(text: str, delimiter: str, width: int, column: int) -> bool:
    """Whether a line inside a quoted cell reads as a row of the file: no wider than the
    header, split by the delimiter (when the file has several columns), with a valid
    address in the address column."""
    cells = next(csv.reader([text], delimiter=delimiter, strict=False), [])
    if len(cells) <= column or (width > 1 and len(cells) < 2):
        return False
    if len(cells) > width and not _blank(cells[width:]):
        return False
    return isinstance(check_address(cells[column]), Address)


def _recipients(
    records: Iterator[list[str]],
    layout: _Layout,
    column: int,
    summary: ImportSummary,
    suppression: SuppressionList | None,
) -> Iterator[NewRecipient]:
    width = len(layout.names)
    others = tuple(name for index, name in enumerate(layout.names) if index != column)
    ragged = f"the row has more cells than the {'header' if layout.header else 'first'} row"
    reasons = summary.invalid_reasons
    seen: set[str] = set()
    for record in records:
        summary.rows += 1
        if len(record) != width:
            if len(record) > width and not _blank(record[width:]):
                cells = record[:column] + record[column + 1 : width]
                fields = dict(zip(others, cells, strict=True))
                summary.invalid += 1
                reasons[ragged] = reasons.get(ragged, 0) + 1
                yield NewRecipient(record[column], "", fields, Status.INVALID, ragged)
                continue
            record = (record + [""] * width)[:width]
        cell = record[column]
        fields = dict(zip(others, record[:column] + record[column + 1 :], strict=True))
        checked = check_address(cell)
        if isinstance(checked, str):
            summary.invalid += 1
            reasons[checked] = reasons.get(checked, 0) + 1
            yield NewRecipient(cell, "", fields, Status.INVALID, checked)
            continue
        key = checked.key
        if key in seen:
            summary.duplicates += 1
            continue
        seen.add(key)
        entry = suppression.lookup(key, checked.domain) if suppression is not None else None
        if entry is not None:
            summary.suppressed += 1
            reason = f"on the suppression list (entry {entry})"
            yield NewRecipient(checked.email, checked.domain, fields, Status.SUPPRESSED, reason)
            continue
        summary.valid += 1
        summary.smtputf8 += checked.smtputf8
        yield NewRecipient(checked.email, checked.domain, fields)
