"""A template compiled once: header and body pieces, literal bytes and renderers.

Compiling reads the .eml (:mod:`entity`), decides per header (:mod:`headers`) and per
part (:mod:`parts`) what is literal and what is per recipient, and merges neighbouring
literals, so that rendering a recipient's message is one pass over a short list.
Compiling the same bytes with the same options always gives the same pieces: a campaign
resumed from its stored .eml sends what it sent before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from core.message.entity import Entity, parse_message
from core.message.fields import EMAIL, has_unsafe, neutralise
from core.message.headers import Piece, Rewrite, part_headers, top_headers
from core.message.parts import leaf
from core.message.unsubscribe import TemplateOptions, unsubscribe_headers
from core.message.words import MAX_LINE

_UNSUBSCRIBE = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
# Twice as fast as ``b"\n." in data`` (a two-byte needle is searched byte by byte).
_LINE_DOT = re.compile(rb"\n\.")


class WireMessage(NamedTuple):
    """A rendered message for the send path, and what it still needs before DATA."""

    #: Message-ID and Date, the header section, the blank line, the body; CRLF line ends
    #: and a final CRLF, not dot-stuffed.
    data: bytes
    #: Proven to have no line over 998 octets: the full check may be skipped.
    short_lines: bool
    #: A line may start with ".": it must be doubled (always False when not proven).
    dots: bool
    #: Raw UTF-8 in the header section (RFC 6532): only for servers offering SMTPUTF8.
    needs_smtputf8: bool


@dataclass(frozen=True, slots=True)
class Compiled:
    head: tuple[Piece, ...]  # the header section after Message-ID and Date
    body: tuple[Piece, ...]  # everything after the blank line
    fields: frozenset[str]  # every field used, ``email`` included if used
    #: The stamp's place (empty), ``head``, the blank line, ``body``: what :meth:`wire`
    #: walks.
    pieces: tuple[Piece, ...]
    #: Where the stamp and the renderers' bytes are in ``pieces``.
    rendered_at: tuple[int, ...]
    #: The most octets of the template's own bytes that a line holding rendered bytes can
    #: also hold (see :func:`_reach`); None when the template's bytes alone have a line
    #: over 998, so that every message must be checked whole.
    reach: int | None
    #: The template's own bytes have a line starting with "." (or may start one).
    dotted: bool
    #: The fields taken from the recipient's row: all but ``email``, the address.
    row_fields: tuple[str, ...]

    @classmethod
    def of(cls, head: list[Piece], body: list[Piece], fields: frozenset[str]) -> Compiled:
        """The pieces merged, and what :meth:`wire` needs to know of them."""
        head_pieces, body_pieces = _merged(head), _merged(body)
        pieces = (b"", *head_pieces, b"\r\n", *body_pieces)
        rendered_at = tuple(
            index
            for index, piece in enumerate(pieces)
            if index == 0 or not isinstance(piece, bytes)
        )
        literals = [piece for piece in _merged(list(pieces)) if isinstance(piece, bytes)]
        dotted = any(piece.startswith(b".") or b"\n." in piece for piece in literals)
        return cls(
            head_pieces,
            body_pieces,
            fields,
            pieces,
            rendered_at,
            _reach(literals),
            dotted,
            tuple(sorted(fields - {EMAIL})),
        )

    def render(self, fields: Mapping[str, str], to: str) -> tuple[bytes, bytes]:
        values = self._values(fields, to)
        head = b"".join([p if isinstance(p, bytes) else p(values) for p in self.head])
        body = b"".join([p if isinstance(p, bytes) else p(values) for p in self.body])
        return head, body

    def wire(self, fields: Mapping[str, str], to: str, stamp: bytes) -> WireMessage:
        """``stamp`` (header lines) and what :meth:`render` gives, ending in CRLF, with
        what the bytes need before DATA, decided without a pass over the whole message:
        the template's own bytes were checked when it was compiled (:attr:`reach`,
        :attr:`dotted`), so only the rendered bytes (a few hundred) are looked at here.
        """
        values = self._values(fields, to)
        out = [p if isinstance(p, bytes) else p(values) for p in self.pieces]
        out[0] = stamp
        data = b"".join(out)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        # Joined with LF, a rendered piece that starts with "." shows as a line start, and
        # whatever literal bytes sit between two pieces count in the reach instead.
        joined = b"\n".join([out[index] for index in self.rendered_at])
        short_lines = self.reach is not None and len(joined) + self.reach <= MAX_LINE
        dots = short_lines and (
            self.dotted or joined[:1] == b"." or _LINE_DOT.search(joined) is not None
        )
        needs_smtputf8 = not data.isascii() and not b"".join(out[: len(self.head) + 1]).isascii()
        return WireMessage(data, short_lines, dots, needs_smtputf8)

    def _values(self, fields: Mapping[str, str], to: str) -> dict[str, str]:
        values = {EMAIL: to}
        for name in self.row_fields:
            values[name] = fields.get(name) or ""
        if has_unsafe("".join(values.values())):  # one scan for the usual clean values
            values = {name: neutralise(value) for name, value in values.items()}
        return values


def compile_message(raw: bytes, options: TemplateOptions) -> Compiled:
    entity = parse_message(raw)
    markers = tuple(
        b"--" + boundary.encode("utf-8")
        for boundary in _boundaries(entity)
        if "=" not in boundary  # "=" is always encoded in quoted-printable
    )
    names: set[str] = set()
    rewrite, body = _body(entity, markers, names)
    drop = _UNSUBSCRIBE if options.list_unsubscribe else frozenset()
    head = top_headers(entity, rewrite, names, drop=drop)
    head += unsubscribe_headers(options, names)
    return Compiled.of(head, body, frozenset(names))


def _boundaries(entity: Entity) -> list[str]:
    found = [entity.params["boundary"]] if entity.multipart else []
    for part in entity.parts:
        found += _boundaries(part)
    return found


def _body(
    entity: Entity, markers: tuple[bytes, ...], names: set[str]
) -> tuple[Rewrite | None, list[Piece]]:
    if not entity.multipart:
        return leaf(entity, markers, names)
    delimiter = b"--" + entity.params["boundary"].encode("utf-8")
    pieces: list[Piece] = [_seven_bit(entity.preamble)]
    for part in entity.parts:
        rewrite, body = _body(part, markers, names)
        pieces += [delimiter + b"\r\n", *part_headers(part, rewrite), b"\r\n", *body, b"\r\n"]
    pieces += [delimiter + b"--", _seven_bit(entity.epilogue)]
    return None, pieces


def _seven_bit(text: bytes) -> bytes:
    """A preamble or epilogue, which no reader shows: kept only if it is 7-bit clean."""
    if text.isascii() and max(map(len, text.split(b"\r\n"))) <= MAX_LINE:
        return text
    return b"\r\n" if text.startswith(b"\r\n") else b""


def _merged(pieces: list[Piece]) -> tuple[Piece, ...]:
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            if not piece:
                continue
            if out and isinstance(out[-1], bytes):
                out[-1] += piece
                continue
        out.append(piece)
    return tuple(out)


def _reach(literals: list[bytes]) -> int | None:
    """The most octets of literal bytes a line of a rendered message can hold when it
    also holds rendered bytes; None if a line of literal bytes alone is over 998.

    A line crosses each literal piece at most once: all of a piece without a line break,
    else the text before its first CRLF or after its last one. Summing those for every
    piece bounds, once and for all, what a line holding values takes from the template,
    so that the lines no value touches (checked here) need no check per message.
    """
    reach = 0
    for piece in literals:
        lines = piece.split(b"\r\n")
        if len(lines) == 1:
            reach += len(piece)
        elif max(map(len, lines)) > MAX_LINE:
            return None
        else:
            reach += max(len(lines[0]), len(lines[-1]))
    return reach
