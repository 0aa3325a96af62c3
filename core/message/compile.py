"""A template compiled once: header and body pieces, literal bytes and renderers.

Compiling reads the .eml (:mod:`entity`), decides per header (:mod:`headers`) and per
part (:mod:`parts`) what is literal and what is per recipient, and merges neighbouring
literals, so that rendering a recipient's message is one pass over a short list.
Compiling the same bytes with the same options always gives the same pieces: a campaign
resumed from its stored .eml sends what it sent before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.message.entity import Entity, parse_message
from core.message.fields import EMAIL, has_unsafe, neutralise
from core.message.headers import Piece, Rewrite, part_headers, top_headers
from core.message.parts import leaf
from core.message.unsubscribe import TemplateOptions, unsubscribe_headers
from core.message.words import MAX_LINE

_UNSUBSCRIBE = frozenset({"list-unsubscribe", "list-unsubscribe-post"})


@dataclass(frozen=True, slots=True)
class Compiled:
    head: tuple[Piece, ...]  # the header section after Message-ID and Date
    body: tuple[Piece, ...]  # everything after the blank line
    fields: frozenset[str]  # every field used, ``email`` included if used

    def render(self, fields: Mapping[str, str], to: str) -> tuple[bytes, bytes]:
        values = {name: fields.get(name) or "" for name in self.fields}
        values[EMAIL] = to
        if has_unsafe("".join(values.values())):  # one scan for the usual clean values
            values = {name: neutralise(value) for name, value in values.items()}
        head = b"".join([p if isinstance(p, bytes) else p(values) for p in self.head])
        body = b"".join([p if isinstance(p, bytes) else p(values) for p in self.body])
        return head, body


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
    return Compiled(_merged(head), _merged(body), frozenset(names))


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
