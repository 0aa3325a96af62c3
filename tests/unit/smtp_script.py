"""A scripted SMTP server for the sans-IO session, so that tests read like transcripts.

``Conversation`` wraps a :class:`ClientSession`: ``server(bytes)`` feeds what the server
says and returns the events it caused; ``client()`` returns what the session writes now,
as one bytes value (``batch()`` keeps the list). No sockets, no clocks, no threads.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.smtp import (
    Body,
    ClientSession,
    Event,
    Outcome,
    Phase,
    Ready,
    SessionConfig,
    TLSPolicy,
    Transaction,
    TransactionDone,
)

HELO_NAME = "client.test"
PLAIN = SessionConfig(HELO_NAME, tls=TLSPolicy.OFF)
GREETING = b"220 mx.test ESMTP ready\r\n"
SENDER = "sender@origin.test"


def reply(code: int, *lines: str) -> bytes:
    """The wire bytes of one reply: ``reply(250, "a", "b")`` is ``250-a CRLF 250 b CRLF``."""
    lines = lines or ("",)
    out = [f"{code}-{line}".encode() for line in lines[:-1]]
    out.append(f"{code} {lines[-1]}".encode())
    return b"".join(line + b"\r\n" for line in out)


def ehlo_reply(*keywords: str) -> bytes:
    return reply(250, "mx.test greets client.test", *keywords)


OK = reply(250, "2.0.0 Ok")
GO_AHEAD = reply(354, "End data with <CR><LF>.<CR><LF>")
QUEUED = reply(250, "2.0.0 Ok: queued as 4F2A1")
BYE = reply(221, "2.0.0 Bye")


def txn(
    *recipients: str,
    sender: str = SENDER,
    body: bytes | Body = b"Subject: hi\r\n\r\nHello.\r\n",
    needs_smtputf8: bool = False,
) -> Transaction:
    if isinstance(body, bytes):
        body = Body.from_bytes(body)
    return Transaction(sender, recipients or ("rcpt@dest.test",), body, needs_smtputf8)


def streamed(chunks: Iterable[bytes], *, size: int = 100, eight_bit: bool = False) -> Body:
    parts = list(chunks)
    return Body.from_chunks(lambda: iter(parts), size=size, eight_bit=eight_bit)


def as_done(event: Event | None) -> TransactionDone:
    assert isinstance(event, TransactionDone), event
    return event


def outcomes(event: Event | None) -> list[tuple[str, Outcome]]:
    """(recipient, outcome) for each result of a TransactionDone, in recipient order."""
    return [(result.recipient, result.outcome) for result in as_done(event).results]


class Conversation:
    """One client session and the scripted server that talks to it."""

    def __init__(
        self,
        config: SessionConfig = PLAIN,
        *,
        limit: int = 1 << 20,
        trace: list[tuple[str, object]] | None = None,
    ) -> None:
        self.session = ClientSession(config, None if trace is None else trace.append)
        self.limit = limit

    def batch(self) -> list[bytes]:
        return self.session.data_to_send(self.limit)

    def client(self) -> bytes:
        """Everything the session wants written now (commands count as sent)."""
        return b"".join(self.batch())

    def server(self, data: bytes) -> list[Event]:
        """The server says ``data``; the events that caused, in order."""
        self.session.receive_data(data)
        return self.events()

    def events(self) -> list[Event]:
        found = []
        while (event := self.session.next_event()) is not None:
            found.append(event)
        return found

    @property
    def phase(self) -> Phase:
        return self.session.phase


def ready(
    *keywords: str, config: SessionConfig = PLAIN, limit: int = 1 << 20
) -> Conversation:
    """A conversation past the greeting and EHLO, idle, its Ready event taken."""
    conv = Conversation(config, limit=limit)
    assert conv.server(GREETING) == []
    assert conv.client() == f"EHLO {config.helo_name}\r\n".encode()
    events = conv.server(ehlo_reply(*keywords))
    assert len(events) == 1 and isinstance(events[0], Ready), events
    return conv
