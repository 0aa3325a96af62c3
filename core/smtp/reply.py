"""SMTP replies: the value object and the bounded, incremental parser that produces it.

Owns the wire grammar of server replies (RFC 5321 §4.2) and of enhanced status codes
(RFC 3463, RFC 2034). It is fed arbitrary chunks of bytes and yields whole replies; it
never grows its memory with what a hostile server sends (see ``limits``), and it never
raises anything but :class:`RemoteProtocolError` for bad input.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import NoReturn

from core.smtp.errors import RemoteProtocolError
from core.smtp.limits import MAX_REPLY_BYTES, MAX_REPLY_LINE, MAX_REPLY_LINES

# RFC 3463 §2: class "." subject "." detail; class is 2, 4 or 5; subject and detail 1-3 digits.
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: +|$)")
_DIGITS = frozenset(b"0123456789")


@dataclass(frozen=True, slots=True)
class EnhancedStatus:
    """An RFC 3463 enhanced status code such as ``5.1.1``."""

    klass: int
    subject: int
    detail: int

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete server reply.

    ``lines`` hold the text of each line after the code and separator, with the enhanced
    status code removed from the lines that carried it (it lives in ``enhanced``).
    """

    code: int
    lines: tuple[str, ...]
    enhanced: EnhancedStatus | None = None

    @property
    def text(self) -> str:
        """All lines joined by a space, as a user reads the reply in one cell."""
        return " ".join(filter(None, self.lines))

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        enhanced = f" {self.enhanced}" if self.enhanced else ""
        return f"{self.code}{enhanced} {self.text}".rstrip()

    def wire_lines(self) -> list[str]:
        """The reply as the server sent it (enhanced code restored), for transcripts."""
        enhanced = f"{self.enhanced} " if self.enhanced else ""
        last = len(self.lines) - 1
        return [
            f"{self.code}{' ' if i == last else '-'}{enhanced}{line}".rstrip()
            for i, line in enumerate(self.lines)
        ]


def split_enhanced(code: int, lines: list[str]) -> tuple[EnhancedStatus | None, tuple[str, ...]]:
    """Pull the enhanced status code off the first line, and off the others that repeat it.

    The enhanced class must match the reply's first digit (RFC 2034 §3); otherwise the
    text is left alone, as it may be something else that merely looks like a code.
    """
    match = _ENHANCED.match(lines[0])
    if match is None or int(match.group(1)) != code // 100:
        return None, tuple(lines)
    prefix = match.group(0).rstrip(" ")
    enhanced = EnhancedStatus(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    stripped = [
        line[len(prefix) :].lstrip(" ")
        if line == prefix or line.startswith(prefix + " ")
        else line
        for line in lines
    ]
    return enhanced, tuple(stripped)


def _reply_code(line: bytes) -> int:
    if (
        len(line) < 3
        or line[0] not in b"2345"
        or line[1] not in _DIGITS
        or line[2] not in _DIGITS
        or (len(line) > 3 and line[3] not in b" -")
    ):
        raise RemoteProtocolError("malformed reply code", line)
    return int(line[:3])


def _make_reply(code: int, lines: list[str]) -> Reply:
    if lines[0][:1].isdigit():
        enhanced, text = split_enhanced(code, lines)
        return Reply(code, text, enhanced)
    return Reply(code, tuple(lines))


@functools.lru_cache(maxsize=1024)
def _single_line_reply(line: bytes) -> Reply:
    """A one-line reply. Servers repeat the same few ("250 2.1.5 Ok") thousands of times,
    and a Reply is immutable, so parsing each distinct line once is safe and saves most of
    the parser's time on a busy connection."""
    return _make_reply(_reply_code(line), [line[4:].decode("utf-8", "replace")])


class ReplyParser:
    """Turns a stream of bytes from the server into :class:`Reply` values.

    Use it like ``h11``: ``receive_data(chunk)``, then call ``next_reply()`` until it
    returns ``None`` (more bytes needed). A malformed or oversized reply raises
    :class:`RemoteProtocolError` carrying the offending bytes; the parser is then dead and
    raises the same error again, because nothing after garbage can be trusted.

    Lines end in CRLF; a bare LF is tolerated (and its CR-less line taken as is), as
    Postfix's client does, since refusing it would help no one.
    """

    __slots__ = ("_buf", "_code", "_error", "_lines", "_pos", "_size")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._code = 0  # code of the multiline reply in progress, 0 when none
        self._lines: list[str] = []
        self._size = 0
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole reply (bounded by the limits)."""
        return len(self._buf) - self._pos + self._size

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            return
        buf = self._buf
        if self._pos:
            del buf[: self._pos]
            self._pos = 0
        buf += data

    def next_reply(self) -> Reply | None:
        if self._error is not None:
            raise self._error
        buf = self._buf
        while True:
            pos = self._pos
            end = buf.find(b"\n", pos)
            if end < 0:
                # + 1: the CR of a line of exactly MAX_REPLY_LINE may come before its LF.
                if len(buf) - pos > MAX_REPLY_LINE + 1:
                    self._fail(f"reply line longer than {MAX_REPLY_LINE} bytes", buf[pos:])
                return None
            self._pos = end + 1
            stop = end - 1 if end > pos and buf[end - 1] == 0x0D else end
            if stop - pos > MAX_REPLY_LINE:
                self._fail(f"reply line longer than {MAX_REPLY_LINE} bytes", buf[pos : end + 1])
            line = bytes(buf[pos:stop])
            if not self._code and line[3:4] != b"-":
                try:
                    return _single_line_reply(line)
                except RemoteProtocolError as error:
                    self._fail(error.reason, line)
            reply = self._take_line(line)
            if reply is not None:
                return reply

    def _take_line(self, line: bytes) -> Reply | None:
        try:
            code = _reply_code(line)
        except RemoteProtocolError as error:
            self._fail(error.reason, line)
        if self._code and code != self._code:
            self._fail(f"reply code changed from {self._code} to {code} mid-reply", line)
        self._lines.append(line[4:].decode("utf-8", "replace"))
        self._size += len(line) + 2
        if self._size > MAX_REPLY_BYTES:
            self._fail(f"reply larger than {MAX_REPLY_BYTES} bytes", line)
        if len(self._lines) > MAX_REPLY_LINES:
            self._fail(f"reply longer than {MAX_REPLY_LINES} lines", line)
        if len(line) > 3 and line[3] == 0x2D:  # "-": more lines follow
            self._code = code
            return None
        lines = self._lines
        self._lines = []
        self._code = 0
        self._size = 0
        return _make_reply(code, lines)

    def _fail(self, reason: str, offending: bytes | bytearray) -> NoReturn:
        self._error = RemoteProtocolError(reason, bytes(offending[: MAX_REPLY_LINE + 2]))
        self._buf = bytearray()
        self._pos = 0
        self._lines = []
        self._size = 0
        raise self._error
