"""Merge fields: the ``{{name}}`` / ``{{name|default}}`` syntax, and how a value is made
safe for the place it lands in.

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

FIELD = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*(?:\|([^}\r\n]*))?\}\}")

#: The recipient's address: always available, whatever the columns.
EMAIL = "email"

_UNSAFE = re.compile("[\r\n\0\ud800-\udfff]")
_LINE_BREAK_OR_NUL = re.compile("[\r\n\0]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# RFC 3986 §2.2 reserved characters and "%": kept when a field is a whole URL.
_URL_KEEP = "!#$%&'()*+,/:;=?@[]~"
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"  # §2.3
_PERCENT = {byte: f"%{byte:02X}" for byte in range(128) if chr(byte) not in _UNRESERVED}


class Context(Enum):
    """Where a slot sits, which decides how its value is encoded."""

    TEXT = "text"  # plain text, a header's text, a display name: the value as it is
    HTML = "html"  # HTML text or a non-URL attribute: escaped
    URL = "url"  # a component inside a URL: percent-encoded (RFC 3986 unreserved kept)
    URL_WHOLE = "url-whole"  # a whole href/src value: reserved characters kept, escaped


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


ENCODERS: Mapping[Context, Callable[[str], str]] = {
    Context.TEXT: _as_text,
    Context.HTML: html.escape,
    Context.URL: _as_url,
    Context.URL_WHOLE: _as_whole_url,
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

    __slots__ = ("_format", "parts", "slots")

    def __init__(self, parts: Iterable[str | Slot] = ()) -> None:
        self.parts = tuple(part for part in parts if part != "")
        self.slots = tuple(part for part in self.parts if isinstance(part, Slot))
        self._format = "".join(
            part.replace("{", "{{").replace("}", "}}") if isinstance(part, str) else "{}"
            for part in self.parts
        )
        if not self.slots:
            self._format = "".join(part for part in self.parts if isinstance(part, str))

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
        if not self.slots:
            return self._format
        return self._format.format(
            *[
                slot.encode(value) if (value := values[slot.name]) else slot.default
                for slot in self.slots
            ]
        )


def slot(match: re.Match[str], context: Context) -> Slot:
    return Slot(match.group(1), match.group(2) or "", context, ENCODERS[context])


def segments(text: str, contexts: Sequence[Context] | Context = Context.TEXT) -> Segments:
    """``text`` cut at its fields; the k-th field gets ``contexts[k]``."""
    parts: list[str | Slot] = []
    position = 0
    for index, match in enumerate(FIELD.finditer(text)):
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


def names(text: str) -> set[str]:
    return {match.group(1) for match in FIELD.finditer(text)}
