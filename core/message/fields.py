"""Merge fields: the ``{{name}}`` / ``{{name|default}}`` syntax, and how a value is made
safe for the place it lands in.

A name is what the importer makes of a column header (``core.recipients.field_name``:
lower case, spaces as ``_``), so any character but whitespace, ``{``, ``}`` and ``|``
(``{{prénom}}``, ``{{prix_(€)}}``). A ``{{`` that does not open a field is a
:class:`TemplateError` when the template is compiled: a misspelt field must never go out
as written.

Owns the syntax, the rule that a value can never hold CR, LF or NUL (they become spaces,
so that no value can create or end a header, or an SMTP command), and the per-context
value encoders (HTML escaping, percent-encoding). Knows nothing of MIME or headers.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

from core.message.errors import TemplateError

#: A name holds no whitespace and none of the syntax's "{", "}", "|".
NAME = r"[^\s{}|]+"
FIELD = re.compile(rf"\{{\{{\s*({NAME})\s*(?:\|([^}}\r\n]*))?\}}\}}")
#: What error messages show of the syntax.
SYNTAX = (
    "a merge field is written {{name}} or {{name|default}}, the name being the column's "
    'name as imported: lower case, spaces as _ (the column "First name" is {{first_name}})'
)

#: The recipient's address: always available, whatever the columns.
EMAIL = "email"

_UNSAFE = re.compile("[\r\n\0\ud800-\udfff]")
_LINE_BREAK_OR_NUL = re.compile("[\r\n\0]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# RFC 3986 §2.2 reserved characters and "%": kept when a field is a whole URL.
_URL_KEEP = "!#$%&'()*+,/:;=?@[]~"
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"  # §2.3
_PERCENT = {byte: f"%{byte:02X}" for byte in range(128) if chr(byte) not in _UNRESERVED}
_PRINTABLE = "".join(map(chr, range(0x20, 0x7F))) + "\t"


class Context(Enum):
    """Where a slot sits, which decides how its value is encoded."""

    TEXT = "text"  # plain text, a header's text, a display name: the value as it is
    HTML = "html"  # HTML text or a non-URL attribute: escaped
    URL = "url"  # a component inside a URL: percent-encoded (RFC 3986 unreserved kept)
    URL_WHOLE = "url-whole"  # a whole href/src value: reserved characters kept, escaped
    ASCII = "ascii"  # a header that is never encoded (References): non-ASCII percent-encoded


def has_unsafe(value: str) -> bool:
    return _UNSAFE.search(value) is not None


def neutralise(value: str) -> str:
    """CR, LF and NUL become spaces: a value never ends a line, wherever it lands. A lone
    surrogate (bytes a CSV decoder could not read) becomes U+FFFD, so that it encodes."""
    if _UNSAFE.search(value) is None:
        return value
    return _SURROGATE.sub("\ufffd", _LINE_BREAK_OR_NUL.sub(" ", value))


def _as_text(value: str) -> str:
    return value


def _as_url(value: str) -> str:
    if value.isascii():
        return value.translate(_PERCENT)  # what quote() does, without its per-call setup
    return quote(value, safe="")


def _as_whole_url(value: str) -> str:
    return html.escape(quote(value, safe=_URL_KEEP), quote=True)


def _as_ascii(value: str) -> str:
    """Printable ASCII as it is, anything else as UTF-8 %XX (an IRI made a URI, RFC 3987
    §3.1): a header that encoded words cannot carry stays 7-bit."""
    return value if value.isascii() else quote(value, safe=_PRINTABLE)


ENCODERS: Mapping[Context, Callable[[str], str]] = {
    Context.TEXT: _as_text,
    Context.HTML: html.escape,
    Context.URL: _as_url,
    Context.URL_WHOLE: _as_whole_url,
    Context.ASCII: _as_ascii,
}


@dataclass(frozen=True, slots=True)
class Slot:
    """A merge field at one place: the value goes through ``encode``; an empty or missing
    value is replaced by ``default``, template text that is inserted as written."""

    name: str
    default: str
    context: Context
    encode: Callable[[str], str]


class Segments:
    """Template text with its slots, in order: what a header value or a body line
    compiles to. Filling it is one ``str.format`` of the encoded values."""

    __slots__ = ("_format", "_single", "parts", "slots")

    def __init__(self, parts: Iterable[str | Slot] = ()) -> None:
        self.parts = tuple(part for part in parts if part != "")
        self.slots = tuple(part for part in self.parts if isinstance(part, Slot))
        self._format = "".join(
            part.replace("{", "{{").replace("}", "}}") if isinstance(part, str) else "{}"
            for part in self.parts
        )
        if not self.slots:
            self._format = "".join(part for part in self.parts if isinstance(part, str))
        # Most lines and headers hold one field: filled without building a list.
        self._single = self.slots[0] if len(self.slots) == 1 else None

    def __iter__(self) -> Iterator[str | Slot]:
        return iter(self.parts)

    def __bool__(self) -> bool:
        return bool(self.parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Segments) and other.parts == self.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __repr__(self) -> str:
        return f"Segments{self.parts!r}"

    def fill(self, values: Mapping[str, str]) -> str:
        """The text with each slot's value (already neutralised) encoded for its place."""
        single = self._single
        if single is not None:
            value = values[single.name]
            return self._format.format(single.encode(value) if value else single.default)
        if not self.slots:
            return self._format
        return self._format.format(
            *[
                slot.encode(value) if (value := values[slot.name]) else slot.default
                for slot in self.slots
            ]
        )


def find(text: str, where: str = "the message") -> list[re.Match[str]]:
    """The fields of ``text``; a ``{{`` outside them (``{{first name}}``, ``{{ }}``, an
    unclosed ``{{x``) is a TemplateError naming it and ``where`` it is."""
    found = list(FIELD.finditer(text))
    if "{{" not in text:
        return found
    position = 0
    for end, after in [*((m.start(), m.end()) for m in found), (len(text), len(text))]:
        opening = text.find("{{", position, end)
        if opening >= 0:
            raise TemplateError(f"{where} has {_shown(text, opening)}, not a merge field: {SYNTAX}")
        position = after
    return found


def _shown(text: str, opening: int) -> str:
    """The bad ``{{…`` as written: up to its ``}}`` on the same line if that is near, else
    to the end of its word."""
    line = text[opening : opening + 60].splitlines()[0]
    closing = line.find("}}", 2)
    if closing >= 0:
        return repr(line[: closing + 2])
    word = re.match(r"\{\{\s*\S{0,30}", line)
    assert word is not None
    return repr(word.group()) + ("…" if len(word.group()) < len(line.rstrip()) else "")


def slot(match: re.Match[str], context: Context) -> Slot:
    return Slot(match.group(1), match.group(2) or "", context, ENCODERS[context])


def segments(
    text: str, contexts: Sequence[Context] | Context = Context.TEXT, where: str = "the message"
) -> Segments:
    """``text`` cut at its fields; the k-th field gets ``contexts[k]``."""
    parts: list[str | Slot] = []
    position = 0
    for index, match in enumerate(find(text, where)):
        parts.append(text[position : match.start()])
        context = contexts if isinstance(contexts, Context) else contexts[index]
        parts.append(slot(match, context))
        position = match.end()
    parts.append(text[position:])
    return Segments(parts)


def has_slots(parts: Segments) -> bool:
    return bool(parts.slots)


def fill(parts: Segments, values: Mapping[str, str]) -> str:
    return parts.fill(values)


def names(text: str, where: str = "the message") -> set[str]:
    """The names of the fields of ``text`` (TemplateError for a ``{{`` that is none)."""
    return {match.group(1) for match in find(text, where)}
