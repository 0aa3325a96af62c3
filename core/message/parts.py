"""Part bodies on the wire: each leaf's body compiled once into literal bytes and the
quoted-printable lines that hold fields, rendered per recipient.

- A text part with fields (not an attachment) is decoded, whatever its transfer encoding
  and charset, and served as UTF-8 quoted-printable: each line without fields is encoded
  once; a line with fields is encoded when rendered (``binascii.b2a_qp``, C speed), with
  soft line breaks keeping lines within 76 characters (RFC 2045 §6.7), unless it is one
  that quoted-printable leaves as it is (most are: short, printable ASCII, no "=").
- A part that cannot travel as it is (8bit, binary, raw non-ASCII, lines over 998) is
  re-encoded once: quoted-printable for body text, base64 for anything else.
- Anything else goes out as the exact bytes of the file. An attachment
  (``Content-Disposition: attachment``, or a file name) is never a template, text or
  not: an attached .ics or .html holding ``{{x}}`` is a file; if it cannot travel as it
  is, base64 keeps its bytes exactly.

A value can never end a part: no line may start with a delimiter of an enclosing
multipart, even where a soft line break falls (see :func:`qp_line`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.message.context import html_contexts, text_contexts
from core.message.entity import Entity, crlf
from core.message.errors import TemplateError
from core.message.fields import Segments, Slot, names, segments
from core.message.headers import Piece, Rewrite
from core.message.words import MAX_LINE

#: RFC 2045 §6.7 (quoted-printable) and §6.8 (base64): at most 76 characters a line.
QP_LINE = 76
_SOFT_BREAK_AT = QP_LINE - 1
_QP_SAFE = frozenset(range(33, 127)) - {ord("="), ord("-")}
# Stands for a boundary's "-" while b2a_qp encodes a line, which writes it =FF (as long
# as the 3-character =2D it becomes): a byte UTF-8 never holds.
_SENTINEL = b"\xff"
# A line that b2a_qp gives back as it is (a property test holds it to that): printable
# ASCII but "=", spaces and tabs only inside, no soft break needed (at most 75
# characters), and not a lone "." (which b2a_qp encodes).
_AS_IS = re.compile(rf"(?!\.\Z)[ \t!-<>-~]{{0,{_SOFT_BREAK_AT - 1}}}[!-<>-~]")


def qp_line(data: bytes, markers: tuple[bytes, ...]) -> bytes:
    """One line of text (no line break in it) as quoted-printable, CRLF included.

    ``markers`` are the ``--boundary`` strings that no line may start with. In the rare
    line that would (a soft break before a value's ``--b``), the dashes of every marker
    in it are written =2D.
    """
    encoded = _b2a_qp(data)
    if markers and any(
        encoded.startswith(marker) or b"\n" + marker in encoded for marker in markers
    ):
        if _SENTINEL in data:
            return _qp_strict(data)
        for marker in markers:
            data = data.replace(marker, marker.replace(b"-", _SENTINEL))
        return _b2a_qp(data).replace(b"=FF", b"=2D")
    return encoded


def _b2a_qp(data: bytes) -> bytes:
    """``binascii.b2a_qp``, C speed, with its one flaw mended: it makes a line's last
    space or tab =20 or =09 after placing its soft breaks, so that line can reach 77
    characters; the =XX then goes on a line of its own."""
    encoded = binascii.b2a_qp(data + b"\r\n", False, True, False)
    if data[-1:] in (b" ", b"\t"):
        start = encoded.rfind(b"\n", 0, -2) + 1
        if len(encoded) - 2 - start > QP_LINE:
            encoded = encoded[:-5] + b"=\r\n" + encoded[-5:]
    return encoded


def _qp_strict(data: bytes) -> bytes:
    """Quoted-printable in pure Python (rarely needed): "-" and trailing whitespace
    encoded, soft breaks so that every line is at most 76 characters; no line can start
    with a boundary delimiter."""
    last = len(data) - 1
    tokens = [
        chr(byte) if byte in _QP_SAFE or (byte in (0x20, 0x09) and index < last) else f"={byte:02X}"
        for index, byte in enumerate(data)
    ]
    lines = [""]
    for token in tokens:
        if len(lines[-1]) + len(token) > _SOFT_BREAK_AT:
            lines[-1] += "="
            lines.append("")
        lines[-1] += token
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


@dataclass(frozen=True, slots=True)
class QPLine:
    """A line of a text part that holds fields, rendered as quoted-printable."""

    line: Segments
    markers: tuple[bytes, ...]
    last: bool

    def __call__(self, values: Mapping[str, str]) -> bytes:
        text = self.line.fill(values)
        if _AS_IS.fullmatch(text):  # most lines, encoded at a fraction of the cost
            data = text.encode("ascii")
            if not data.startswith(self.markers):
                return data if self.last else data + b"\r\n"
        encoded = qp_line(text.encode("utf-8"), self.markers)
        return encoded[:-2] if self.last else encoded


def _lines(parts: Segments) -> list[Segments]:
    """Segments cut at their line breaks (literal text holds them, never a slot)."""
    lines: list[list[str | Slot]] = [[]]
    for part in parts:
        if isinstance(part, Slot):
            lines[-1].append(part)
            continue
        first, *rest = part.split("\n")
        if first:
            lines[-1].append(first)
        for text in rest:
            lines.append([text] if text else [])
    return [Segments(line) for line in lines]


def _decode(entity: Entity) -> bytes | None:
    """The body's octets, or None for a transfer encoding we do not know."""
    encoding = entity.transfer_encoding
    if encoding in ("7bit", "8bit", "binary"):
        return entity.body
    if encoding == "quoted-printable":
        return binascii.a2b_qp(entity.body)
    if encoding == "base64":
        try:
            return base64.b64decode(entity.body)
        except binascii.Error as error:
            raise TemplateError(f"{entity.where} is not valid base64: {error}") from None
    return None


def _travels(entity: Entity) -> bool:
    """Whether the body can go as written: 7-bit, and lines within the limits. A NUL is
    ASCII but not 7-bit data (RFC 2045 §2.7): servers refuse or strip it."""
    body = entity.body
    encoding = entity.transfer_encoding
    if encoding in ("8bit", "binary") or not body.isascii() or b"\0" in body:
        return False
    longest = max(map(len, body.split(b"\r\n")))
    return longest <= (QP_LINE if encoding in ("quoted-printable", "base64") else MAX_LINE)


def _charset_text(data: bytes, entity: Entity) -> str:
    charset = entity.params.get("charset", "").lower()
    if charset in ("", "us-ascii", "ascii"):
        charset = "utf-8"  # undeclared 8-bit text: UTF-8 is what editors save
    try:
        return data.decode(charset)
    except LookupError:
        raise TemplateError(
            f"{entity.where} declares an unknown charset {charset!r}: save it as UTF-8"
        ) from None
    except UnicodeDecodeError as error:
        raise TemplateError(
            f"{entity.where} is not valid {charset} ({error.reason} at byte {error.start}): "
            "save it as UTF-8"
        ) from None


def _qp_text(text: str, entity: Entity, markers: tuple[bytes, ...]) -> list[Piece]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    contexts = html_contexts(text) if entity.content_type == "text/html" else text_contexts(text)
    lines = _lines(segments(text, contexts, entity.where))
    pieces: list[Piece] = []
    for index, line in enumerate(lines):
        last = index == len(lines) - 1
        if any(isinstance(part, Slot) for part in line):
            pieces.append(QPLine(line, markers, last))
        else:
            encoded = qp_line("".join(str(part) for part in line).encode("utf-8"), markers)
            pieces.append(encoded[:-2] if last else encoded)
    return pieces


def _qp_bytes(data: bytes, markers: tuple[bytes, ...]) -> bytes:
    lines = crlf(data).split(b"\r\n")
    return b"".join(qp_line(line, markers) for line in lines)[:-2]


def _base64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n")


def leaf(
    entity: Entity, markers: tuple[bytes, ...], names_used: set[str]
) -> tuple[Rewrite | None, list[Piece]]:
    """A leaf part's body, and the new Content-Type if it had to be re-encoded."""
    content_type = entity.content_type
    text = content_type.startswith("text/")
    if text and not entity.attachment:
        data = _decode(entity)
        if data is not None and b"{{" in data:
            decoded = _charset_text(data, entity)
            found = names(decoded, entity.where)
            if found:
                names_used.update(found)
                params = {**entity.params, "charset": "utf-8"}
                rewrite = Rewrite(content_type, params, "quoted-printable")
                return rewrite, _qp_text(decoded, entity, markers)
        if _travels(entity):
            return None, [entity.body]
        if data is None:
            raise _unknown_encoding(entity)
        params = _with_charset(entity, data)
        return Rewrite(content_type, params, "quoted-printable"), [_qp_bytes(data, markers)]
    if _travels(entity):
        return None, [entity.body]
    if content_type.startswith(("message/", "multipart/")):
        raise TemplateError(
            f"{entity.where} ({content_type}) holds 8-bit data, which a 7-bit server cannot "
            "take and which cannot be re-encoded; attach it as a file instead"
        )
    data = _decode(entity)
    if data is None:
        raise _unknown_encoding(entity)
    params = _with_charset(entity, data) if text else dict(entity.params)
    return Rewrite(content_type, params, "base64"), [_base64(data)]


def _with_charset(entity: Entity, data: bytes) -> dict[str, str]:
    """The part's parameters, with a charset said for 8-bit text that had none."""
    params = dict(entity.params)
    if "charset" not in params and not data.isascii():
        params["charset"] = "utf-8" if _is_utf8(data) else "unknown-8bit"  # RFC 1428
    return params


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _unknown_encoding(entity: Entity) -> TemplateError:
    return TemplateError(
        f"{entity.where} uses the transfer encoding {entity.transfer_encoding!r}, which "
        "this program cannot re-encode; save it as base64 or quoted-printable"
    )
