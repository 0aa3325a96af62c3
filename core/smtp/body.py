"""The message body on the wire: CRLF line endings, dot-stuffing, the end marker.

A :class:`Body` is built once per message, outside the connection's hot loop. Small
bodies are encoded in one pass of C-speed ``bytes`` operations; large or streamed ones go
through :class:`BodyEncoder` chunk by chunk, so a 20 MB attachment is never held twice.
Lines over 998 octets are refused (RFC 5321 §4.5.3.1.6): encoding long lines away
(quoted-printable, base64) is the message layer's job, not something to do silently here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from core.smtp.errors import BodyLineTooLongError
from core.smtp.limits import BODY_CHUNK, MAX_BODY_LINE

# Anchored at line starts: an unanchored search would restart at every byte.
_LONG_LINE = re.compile(rb"^[^\r\n]{%d}" % (MAX_BODY_LINE + 1), re.MULTILINE)
_SPLIT_LIMIT = 1 << 20


def _too_long(data: bytes) -> BodyLineTooLongError:
    match = _LONG_LINE.search(data)
    assert match is not None
    start = match.start()
    end = data.find(b"\n", start)
    end = len(data) if end < 0 else end
    length = end - start - (1 if data[end - 1 : end] == b"\r" else 0)
    return BodyLineTooLongError(data.count(b"\n", 0, start) + 1, length)


def _crlf_only(data: bytes) -> bool:
    crlf = data.count(b"\r\n")
    return data.count(b"\n") == crlf and data.count(b"\r") == crlf


def _has_long_line(data: bytes) -> bool:
    """Whether a CRLF-normalised message has a line over 998 octets.

    Splitting is the fastest test for a message of ordinary size (3 µs for 2 KB);
    past a megabyte a line-anchored search avoids holding a list of every line. An
    unanchored search for 999 non-newline bytes, the obvious regex, restarts at every
    byte and costs 200 µs for 2 KB: it was most of the engine's time per message.
    """
    if len(data) <= _SPLIT_LIMIT:
        return max(map(len, data.split(b"\r\n"))) > MAX_BODY_LINE
    return _LONG_LINE.search(data) is not None


def encode_body(data: bytes, *, crlf_only: bool = False) -> bytes:
    """The wire form of a whole message: CRLF everywhere, leading dots doubled.

    The result ends in CRLF (one is added when the message lacks it), so that the end
    marker is always ``.\\r\\n``. ``crlf_only``: the caller built ``data`` with CRLF line
    ends and no lone CR or LF (a rendered template does), so normalising is skipped.
    """
    if not crlf_only and not _crlf_only(data):
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if len(data) > MAX_BODY_LINE and _has_long_line(data):
        raise _too_long(data)
    data = _stuffed(data)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def _stuffed(data: bytes) -> bytes:
    """Every line's leading dot doubled (RFC 5321 §4.5.2), so that none ends the data."""
    if b"\n." in data:
        data = data.replace(b"\n.", b"\n..")
    if data[:1] == b".":
        data = b"." + data
    return data


class BodyEncoder:
    """Incremental :func:`encode_body` for chunks that split lines anywhere.

    It carries across chunk boundaries: a CR whose LF may come next, whether the next byte
    starts a line (for dot-stuffing), and the length of the line so far.
    """

    __slots__ = ("_at_line_start", "_line_length", "_line_number", "_pending_cr")

    def __init__(self) -> None:
        self._pending_cr = False
        self._at_line_start = True
        self._line_length = 0
        self._line_number = 1

    def feed(self, chunk: bytes) -> bytes:
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._pending_cr = True
        if not chunk:
            return b""
        text = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._check_lengths(text)
        if self._at_line_start and text[:1] == b".":
            text = b"." + text
        self._at_line_start = text.endswith(b"\n")
        return text.replace(b"\n.", b"\n..").replace(b"\n", b"\r\n")

    def _check_lengths(self, text: bytes) -> None:
        first = text.find(b"\n")
        if first < 0:
            self._line_length += len(text)
            if self._line_length > MAX_BODY_LINE:
                raise BodyLineTooLongError(self._line_number, self._line_length)
            return
        if self._line_length + first > MAX_BODY_LINE:
            raise BodyLineTooLongError(self._line_number, self._line_length + first)
        last = text.rfind(b"\n")
        if last > first and _LONG_LINE.search(text, first + 1, last) is not None:
            inner = _too_long(text[first + 1 : last])  # numbered from the line after `first`
            raise BodyLineTooLongError(self._line_number + inner.line_number, inner.length)
        self._line_number += text.count(b"\n")
        self._line_length = len(text) - last - 1
        if self._line_length > MAX_BODY_LINE:
            raise BodyLineTooLongError(self._line_number, self._line_length)

    def finish(self) -> bytes:
        """What must still be sent before the end marker: a lone CR, or a missing CRLF."""
        tail = b"\r\n" if self._pending_cr or not self._at_line_start else b""
        self._pending_cr = False
        self._at_line_start = True
        return tail


@dataclass(frozen=True, slots=True)
class Body:
    """A message body ready for DATA.

    Either ``wire`` holds the whole encoded body, or ``chunks`` is a callable that returns
    a fresh iterator over raw chunks (so that a body can be sent again on another
    connection) which are encoded as they are sent. ``size`` is the message's size in
    octets, as SIZE= wants it (RFC 1870 §3: an estimate is allowed); ``eight_bit`` says
    whether it holds octets over 127 (BODY=8BITMIME).
    """

    size: int
    eight_bit: bool
    wire: bytes | None = field(default=None, repr=False)
    chunks: Callable[[], Iterable[bytes]] | None = field(default=None, repr=False)

    @classmethod
    def from_bytes(cls, data: bytes, *, crlf_only: bool = False) -> Body:
        wire = encode_body(data, crlf_only=crlf_only)
        return cls(size=len(wire), eight_bit=not wire.isascii(), wire=wire)

    @classmethod
    def from_checked(cls, data: bytes, *, dots: bool) -> Body:
        """A body whose producer proved what :func:`encode_body` would check, and more
        cheaply (a compiled template knows which of its bytes are its own): CRLF line
        ends, a final CRLF, no line over 998 octets. Nothing is checked here. ``dots``:
        some line may start with ".", so leading dots are doubled; a producer that cannot
        prove all of this for a message must use :meth:`from_bytes`."""
        wire = _stuffed(data) if dots else data
        return cls(len(wire), not wire.isascii(), wire)  # by position: a third cheaper

    @classmethod
    def from_chunks(
        cls, chunks: Callable[[], Iterable[bytes]], *, size: int, eight_bit: bool
    ) -> Body:
        return cls(size=size, eight_bit=eight_bit, chunks=chunks)

    def stream(self) -> Iterator[bytes]:
        """The wire bytes, in chunks of about ``BODY_CHUNK``, without the end marker."""
        if self.wire is not None:
            view = memoryview(self.wire)
            for start in range(0, len(view), BODY_CHUNK):
                yield bytes(view[start : start + BODY_CHUNK])
            return
        assert self.chunks is not None
        encoder = BodyEncoder()
        for chunk in self.chunks():
            encoded = encoder.feed(chunk)
            if encoded:
                yield encoded
        tail = encoder.finish()
        if tail:
            yield tail
