"""What lab servers saw: received messages, connection logs, counters, and waiting on them.

Owns the record every lab server keeps so that a test can assert exactly what arrived
(and that nothing arrived twice) and can wait for it without sleeping. It never talks to
the network and never decides anything about SMTP: servers call it, tests read it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from core.lab.behaviour import MAX_LOGGED_COMMANDS


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message a server took responsibility for (or, in ``unanswered``, received whole
    without ever answering its end of data).

    ``data`` is the message as the client meant it: dot-unstuffed, lines ending in CRLF as
    they arrived, the terminating ``.`` line removed.
    """

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    tls: bool
    helo: str = ""
    mail_options: tuple[str, ...] = ()
    connection: int = 0


@dataclass(slots=True)
class ConnectionRecord:
    """One accepted connection: its number (from 1), peer, and the command lines it sent.

    ``commands`` keeps the first ``MAX_LOGGED_COMMANDS`` lines as text (BDAT payloads and
    message bodies are not commands); ``command_count`` counts them all.
    """

    number: int
    peer: str
    commands: list[str] = field(default_factory=list)
    command_count: int = 0
    tls: bool = False
    closed: bool = False


@dataclass(slots=True)
class LabStats:
    """Counters over a server's life."""

    connections: int = 0
    active: int = 0
    commands: int = 0
    #: MAIL commands answered 250.
    transactions: int = 0
    #: Messages accepted (``len(messages)``).
    messages: int = 0
    #: Messages received whole whose end of data was never answered.
    unanswered: int = 0
    tls_upgrades: int = 0
    tls_failures: int = 0


class Recorder:
    """The record of one server, and a way to wait until it says something.

    Waiting is event driven: every change that a test may wait for (a connection opened
    or closed, a message recorded) wakes the waiters, which re-check their predicate.
    """

    __slots__ = ("_changed", "connections", "messages", "stats", "unanswered")

    def __init__(self) -> None:
        self.messages: list[ReceivedMessage] = []
        self.unanswered: list[ReceivedMessage] = []
        self.connections: list[ConnectionRecord] = []
        self.stats = LabStats()
        self._changed: asyncio.Event | None = None

    # ---- written by servers -------------------------------------------------------------

    def connection_opened(self, peer: str) -> ConnectionRecord:
        self.stats.connections += 1
        self.stats.active += 1
        record = ConnectionRecord(self.stats.connections, peer)
        self.connections.append(record)
        self._notify()
        return record

    def connection_closed(self, record: ConnectionRecord) -> None:
        if record.closed:
            return
        record.closed = True
        self.stats.active -= 1
        self._notify()

    def command(self, record: ConnectionRecord, line: str) -> None:
        self.stats.commands += 1
        record.command_count += 1
        if record.command_count <= MAX_LOGGED_COMMANDS:
            record.commands.append(line)

    def transaction(self) -> None:
        self.stats.transactions += 1

    def message(self, message: ReceivedMessage) -> None:
        self.messages.append(message)
        self.stats.messages += 1
        self._notify()

    def message_unanswered(self, message: ReceivedMessage) -> None:
        self.unanswered.append(message)
        self.stats.unanswered += 1
        self._notify()

    def tls(self, record: ConnectionRecord, *, ok: bool) -> None:
        if ok:
            record.tls = True
            self.stats.tls_upgrades += 1
        else:
            self.stats.tls_failures += 1
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # ---- read by tests --------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate()`` is true; raise ``TimeoutError`` after ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    if self._changed is None:
                        self._changed = asyncio.Event()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"lab record did not get there in {timeout} s: {self.stats}"
            ) from None

    async def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Wait until at least ``count`` messages were accepted; return them all."""
        await self.wait_for(lambda: len(self.messages) >= count, timeout)
        return self.messages

    async def wait_until_idle(self, timeout: float = 5.0) -> None:
        """Wait until every connection accepted so far has ended."""
        await self.wait_for(lambda: self.stats.active == 0, timeout)
