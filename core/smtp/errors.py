"""The errors of the sans-IO SMTP layer, split as h11 splits them.

``RemoteProtocolError`` is the server's fault (garbage, oversized or out-of-grammar
replies); ``LocalProtocolError`` is ours (a command used in the wrong state, unsafe data
handed to a command builder). Neither is ever raised for an ordinary 4xx/5xx reply: those
are outcomes, not errors.
"""

from __future__ import annotations


class SMTPError(Exception):
    """Base of every error raised by ``core.smtp``."""


class RemoteProtocolError(SMTPError):
    """The server broke the protocol. ``offending`` keeps the bytes, for the transcript."""

    def __init__(self, reason: str, offending: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.offending = offending


class LocalProtocolError(SMTPError):
    """The caller asked for something the protocol or the session's state does not allow."""


class UnsafeArgumentError(LocalProtocolError, ValueError):
    """A command argument holds bytes that could end the command early (CR, LF, NUL).

    Raised before anything is written, so no data can ever become an SMTP command.
    """

    def __init__(self, what: str, value: str) -> None:
        super().__init__(f"{what} {value!r} contains a character not allowed in an SMTP command")
        self.what = what
        self.value = value


class BodyLineTooLongError(LocalProtocolError, ValueError):
    """A body line exceeds RFC 5321 §4.5.3.1.6's 998 octets; the message layer must encode."""

    def __init__(self, line_number: int, length: int) -> None:
        super().__init__(
            f"message line {line_number} is {length} octets long; SMTP allows at most 998"
        )
        self.line_number = line_number
        self.length = length
