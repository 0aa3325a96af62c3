"""The asyncio driver of one SMTP connection: the only code that touches an SMTP socket.

One task per connection, as in the Erlang client this product descends from. The hot path
(bytes in, replies matched, next commands out) runs inside the protocol callbacks with no
task switch; the task itself only does what must be awaited (connect, the TLS upgrade) and
waits for the end. :meth:`_Driver.pump` is the one place that turns session events,
socket failures and timeouts into per-recipient outcomes. Protocol logic lives in
``core.smtp``: nothing here parses a reply.

Reads use :class:`asyncio.BufferedProtocol` into one reused buffer: a plain ``Protocol``
pays a fresh 256 KiB allocation per ``recv()`` (python/cpython#85451), which on our
machines costs about 2.5x CPU per message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from core.smtp import (
    ClientSession,
    Closed,
    Extensions,
    FailureKind,
    LocalProtocolError,
    Outcome,
    Phase,
    Ready,
    RecipientResult,
    Reply,
    SessionConfig,
    SessionFailed,
    StartTLS,
    Transaction,
    TransactionDone,
)
from core.smtp.extensions import NO_EXTENSIONS
from core.smtp.limits import BODY_CHUNK

_READ_BUFFER = 64 * 1024
_TRANSCRIPT_ENTRIES = 5000
_AHEAD = 3  # transactions handed to the session and not yet done


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed per phase; defaults from RFC 5321 §4.5.3.2 unless noted."""

    connect: float = 30.0  # not in the RFC; Postfix's smtp_connect_timeout
    greeting: float = 300.0  # §4.5.3.2.1 initial 220 message
    command: float = 300.0  # §4.5.3.2.2-3 MAIL and RCPT; EHLO, HELO, RSET alike
    data: float = 120.0  # §4.5.3.2.4 DATA initiation
    body_block: float = 180.0  # §4.5.3.2.5 each block of the body to drain
    end_of_data: float = 600.0  # §4.5.3.2.6 DATA termination
    tls_handshake: float = 300.0  # Postfix's smtp_starttls_timeout
    # Postfix waits 300 s; a server that ignores QUIT has nothing left to tell us, so
    # we give its connection slot back sooner.
    quit: float = 30.0
    #: The whole connection, however its server paces its replies: each phase keeps
    #: RFC 5321's generous clock (a shorter end-of-data wait causes duplicates), and this
    #: watchdog bounds a hostile server that answers each command just in time.
    session: float = 3600.0

    def for_phase(self, phase: Phase) -> float:
        if phase is Phase.GREETING:
            return self.greeting
        if phase is Phase.DATA:
            return self.data
        if phase is Phase.BODY:
            return self.body_block
        if phase is Phase.END_OF_DATA:
            return self.end_of_data
        if phase is Phase.TLS_HANDSHAKE:
            return self.tls_handshake
        if phase is Phase.QUIT:
            return self.quit
        if phase is Phase.CONNECT:
            return self.connect
        return self.command


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: ``host`` is the MX name (for SNI and reports), ``address`` its IP."""

    host: str
    address: str
    port: int = 25

    def __str__(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.host} ({address}:{self.port})"


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    session: SessionConfig
    timeouts: Timeouts = Timeouts()
    #: Transactions on one connection before QUIT (connection reuse).
    max_transactions: int = 100
    #: TLS context for STARTTLS, or for the whole connection when the session says
    #: ``implicit_tls``; None: encrypt without verifying (Postfix's ``may``).
    tls_context: ssl.SSLContext | None = None


class TransactionSource(Protocol):
    """Hands the connection its next transaction when it can take one (None: no more)."""

    def next_transaction(self) -> Transaction | None: ...


class ListSource:
    """A fixed list of transactions, for tests, benchmarks and single sends."""

    def __init__(self, transactions: list[Transaction]) -> None:
        self._pending = deque(transactions)

    def next_transaction(self) -> Transaction | None:
        return self._pending.popleft() if self._pending else None


@dataclass(frozen=True, slots=True)
class TLSInfo:
    version: str
    cipher: str
    bits: int


@dataclass(slots=True)
class Transcript:
    """The conversation, with the body reduced to its size.

    The session appends one ``(kind, payload)`` tuple per line straight into ``entries``
    (a C call on the hot path); the driver adds a ``("T", time)`` entry whenever bytes
    arrive or leave, which dates the lines after it. Lines are formatted only when read,
    and the oldest are dropped past a bound so that a long reused connection cannot grow
    it without limit.
    """

    entries: deque[tuple[str, object]] = field(
        default_factory=lambda: deque(maxlen=_TRANSCRIPT_ENTRIES)
    )

    def stamp(self) -> None:
        self.entries.append(("T", time.time()))

    def note(self, text: str) -> None:
        self.entries.append(("E", text))

    def lines(self) -> list[str]:
        out: list[str] = []
        clock = "--:--:--.---"
        for kind, payload in self.entries:
            if kind == "T" and isinstance(payload, float):
                millis = int(payload % 1 * 1000)
                clock = f"{time.strftime('%H:%M:%S', time.localtime(payload))}.{millis:03d}"
                continue
            for text in _render(kind, payload):
                out.append(f"{clock} {text}")
        return out


def _render(kind: str, payload: object) -> list[str]:
    if kind == "C" and isinstance(payload, bytes):
        return ["C: " + payload.decode("utf-8", "replace").rstrip("\r\n")]
    if kind == "S" and isinstance(payload, Reply):
        return ["S: " + line for line in payload.wire_lines()]
    if kind == "B":
        return [f"C: <message body, {payload} octets>", "C: ."]
    return [f"-- {payload}"]


@dataclass(frozen=True, slots=True)
class ConnectionReport:
    """Everything one connection did: per-recipient results and, if it ended early, why."""

    target: Target
    results: tuple[RecipientResult, ...]
    failure: SessionFailed | None
    extensions: Extensions
    tls: TLSInfo | None
    transcript: Transcript
    transactions: int

    @property
    def ok(self) -> bool:
        return self.failure is None


ResultCallback = Callable[[RecipientResult], None]
#: Told the session's phase, and the transaction whose reply it waits for (None between
#: transactions), whenever either changes: for a live per-recipient display.
PhaseCallback = Callable[[Phase, Transaction | None], None]
#: Asked before an end-of-data marker goes out (see ``core.smtp.session.EndOfDataHook``):
#: True to send it now; False to hold it, in which case the gate calls ``resume`` once
#: the record is made (so that one commit can cover the markers of many connections).
EndOfDataGate = Callable[[Transaction, Callable[[], None]], bool]


class _Driver(asyncio.BufferedProtocol):
    """Feeds the socket to the session and the session's bytes to the socket."""

    def __init__(
        self,
        config: ConnectionConfig,
        source: TransactionSource,
        on_result: ResultCallback | None,
        on_end_of_data: EndOfDataGate | None = None,
        on_phase: PhaseCallback | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._gate = on_end_of_data
        self.config = config
        self.source = source
        self.on_result = on_result
        self.on_phase = on_phase
        self._shown_phase: Phase | None = None
        self._shown_transaction: Transaction | None = None
        self.transcript = transcript if transcript is not None else Transcript()
        self.session = ClientSession(
            config.session,
            trace=self.transcript.entries.append,
            on_end_of_data=self._end_of_data if on_end_of_data else None,
        )
        self.results: list[RecipientResult] = []
        self.failure: SessionFailed | None = None
        self.submitted = 0
        self.in_flight = 0
        self.done = self.loop.create_future()
        self.tls_wanted = self.loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._buffer = memoryview(bytearray(_READ_BUFFER))
        self._paused = False
        #: A TLS handshake is under way: nothing may be written on the plaintext transport,
        #: though a server's first TLS bytes (its greeting, with implicit TLS) may already
        #: reach the session before start_tls() hands over the new transport.
        self.handshaking = False
        self._body_chunks = 0  # body chunks written: each one restarts the body's clock
        self._seen_progress = -1
        self._timed_phase: Phase | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def _end_of_data(self, transaction: Transaction) -> bool:
        assert self._gate is not None
        return self._gate(transaction, self.pump)

    # ---- transport callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.transcript.stamp()
        self._arm_timer()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.transcript.stamp()
        self.session.receive_data(self._buffer[:nbytes])
        self.pump()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        detail = str(exc) if exc else ""
        try:
            if self.session.phase is Phase.TLS_HANDSHAKE:
                # asyncio's TLS layer reports a failed handshake here, before start_tls
                # raises.
                self.session.tls_failed(detail or "the server closed the connection")
            else:
                self.session.connection_lost(detail)
            self.pump()
        finally:
            self.finish()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self.pump()

    # ---- the one loop -----------------------------------------------------------------

    def pump(self) -> None:
        """Write what the session wants written and act on its events, until it is idle."""
        session = self.session
        transport = self.transport
        while True:
            # Write until the session has nothing more or the transport pushes back
            # (pause_writing() is called from inside write()); resume_writing() pumps again.
            # Bytes the kernel takes at once never pause us, so we must not stop sooner.
            while transport is not None and not self._paused and not self.handshaking:
                try:
                    data = session.data_to_send(BODY_CHUNK * 4)
                except Exception as error:  # the end-of-data hook could not record
                    session.abort(f"stopped before the end of data: {error}")
                    transport.abort()
                    transport = None
                    continue
                if not data:
                    break
                transport.writelines(data)
                if session.phase is Phase.BODY:
                    self._body_chunks += 1
            event = session.next_event()
            if event is None:
                break
            if isinstance(event, TransactionDone):
                self.in_flight -= 1
                self._record(event.results)
                self._feed()
            elif isinstance(event, Ready):
                self._feed()
                if self.in_flight == 0:
                    session.quit()
            elif isinstance(event, StartTLS):
                self.tls_wanted.set_result(True)
            elif isinstance(event, SessionFailed):
                self.failure = event
                self._record(self._unstarted_results(event.detail or event.kind.value))
            elif isinstance(event, Closed):
                # Transactions still queued when the session quit on its own (a server
                # that cannot RSET) were never started: they go back to the caller.
                self._record(self._unstarted_results("the server could not go on"))
                if transport is not None:
                    transport.close()
                self.finish()
        self._arm_timer()

    def _feed(self) -> None:
        """Keep two transactions queued behind the one in flight.

        Replies come in batches (the end of data of one message with the envelope replies
        of the next): when the 354 of message k+1 arrives, message k is not yet reported
        done, and message k+2 must already be queued so that its envelope can follow the
        body of k+1 in the same write (RFC 2920 §3.2). One fewer costs a round trip each.
        """
        session = self.session
        while (
            self.in_flight < _AHEAD
            and self.submitted < self.config.max_transactions
            and not session.closed
            and self.failure is None
        ):
            txn = self.source.next_transaction()
            if txn is None:
                return
            self.submitted += 1
            try:
                session.submit(txn)
            except LocalProtocolError as error:  # an address that could inject a command
                self._record(
                    [
                        RecipientResult(txn, index, Outcome.PERMANENT, reason=str(error))
                        for index in range(len(txn.recipients))
                    ]
                )
                continue
            self.in_flight += 1

    def _record(self, results: tuple[RecipientResult, ...] | list[RecipientResult]) -> None:
        self.results.extend(results)
        if self.on_result is not None:
            for result in results:
                self.on_result(result)

    def _unstarted_results(self, why: str) -> list[RecipientResult]:
        results = [
            RecipientResult(txn, index, Outcome.UNATTEMPTED, reason=why)
            for txn in self.session.unstarted()
            for index in range(len(txn.recipients))
        ]
        self.in_flight = 0
        return results

    # ---- one timer per phase ----------------------------------------------------------

    def _arm_timer(self) -> None:
        """Restart the phase's clock when the phase changed or a reply came; re-arm the
        loop timer only when the new deadline is earlier than the armed one."""
        phase = self.session.phase
        if self.on_phase is not None:
            awaited = self.session.awaited
            if phase is not self._shown_phase or awaited is not self._shown_transaction:
                self._shown_phase, self._shown_transaction = phase, awaited
                self.on_phase(phase, awaited)
        if phase is Phase.CLOSED:
            self._cancel_timer()
            return
        progress = self.session.replies_received + self._body_chunks
        if phase is self._timed_phase and progress == self._seen_progress:
            return
        self._timed_phase = phase
        self._seen_progress = progress
        self._deadline = self.loop.time() + self.config.timeouts.for_phase(phase)
        if self._timer is not None and self._timer.when() > self._deadline:
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.session.closed:
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        if self.session.phase is Phase.TLS_HANDSHAKE:
            return  # the task's own timeout around the handshake decides
        self.session.timed_out()
        self.pump()
        if self.transport is not None and not self.session.closed:
            # A polite QUIT after a timeout has its own (short) clock, armed by pump().
            return
        self.finish()

    def overran(self) -> None:
        """The connection's overall watchdog fired: end it as a timeout, now."""
        if self.session.closed:
            return
        self.session.timed_out()
        self.pump()
        self.finish()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def finish(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)
        if not self.tls_wanted.done():
            self.tls_wanted.set_result(False)


class SMTPConnection:
    """One connection to one MX address, delivering what ``source`` hands it.

    ``run()`` never raises for anything the network or the server does: every outcome
    is in the returned :class:`ConnectionReport` (and was passed to ``on_result`` as it
    happened). Cancelling the task settles every recipient in flight before re-raising.
    """

    def __init__(
        self,
        target: Target,
        config: ConnectionConfig,
        source: TransactionSource,
        on_result: ResultCallback | None = None,
        *,
        on_end_of_data: EndOfDataGate | None = None,
        on_phase: PhaseCallback | None = None,
    ) -> None:
        self.target = target
        self.config = config
        self.source = source
        self.on_result = on_result
        self.on_end_of_data = on_end_of_data
        self.on_phase = on_phase
        self.tls: TLSInfo | None = None
        #: The conversation so far, readable while it goes on (say, to keep it with a
        #: recipient's failure as that failure is reported).
        self.transcript = Transcript()

    async def run(self) -> ConnectionReport:
        loop = asyncio.get_running_loop()
        driver = _Driver(
            self.config,
            self.source,
            self.on_result,
            self.on_end_of_data,
            self.on_phase,
            self.transcript,
        )
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: driver, self.target.address, self.target.port),
                self.config.timeouts.connect,
            )
        except (TimeoutError, OSError) as error:
            return self._unconnected(driver, error)
        if self.config.session.implicit_tls:
            # TLS from the first byte (port 465): the same handshake as after STARTTLS,
            # on its own clock, its failures reported as TLS failures.
            await self._upgrade(driver, implicit=True)
        watchdog = loop.call_later(self.config.timeouts.session, driver.overran)
        try:
            while not driver.done.done():
                if await driver.tls_wanted:
                    await self._upgrade(driver)
                    driver.tls_wanted = loop.create_future()
                    if driver.done.done():
                        break
                else:
                    await driver.done
        except asyncio.CancelledError:
            driver.session.abort("delivery was cancelled")
            driver.pump()
            driver.finish()
            raise
        finally:
            watchdog.cancel()
        return ConnectionReport(
            self.target,
            tuple(driver.results),
            driver.failure,
            driver.session.extensions,
            self.tls,
            driver.transcript,
            driver.submitted,
        )

    async def _upgrade(self, driver: _Driver, *, implicit: bool = False) -> None:
        loop = asyncio.get_running_loop()
        transport = driver.transport
        assert transport is not None
        context = self.config.tls_context or _unverified_context()
        driver.handshaking = True
        try:
            upgraded = await asyncio.wait_for(
                loop.start_tls(transport, driver, context, server_hostname=self.target.host),
                self.config.timeouts.tls_handshake,
            )
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError) as error:
            driver.handshaking = False
            detail = "no answer in time" if isinstance(error, TimeoutError) else str(error)
            driver.session.tls_failed(detail or type(error).__name__)
            driver.pump()
            driver.finish()
            return
        driver.handshaking = False
        if upgraded is None:  # the transport closed under us
            driver.session.connection_lost("during the TLS handshake")
            driver.pump()
            driver.finish()
            return
        assert isinstance(upgraded, asyncio.Transport)
        driver.transport = upgraded
        self._note_tls(driver, upgraded)
        if not implicit:  # after STARTTLS the session greets again
            driver.session.tls_established()
        driver.pump()

    def _note_tls(self, driver: _Driver, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            name, _, bits = ssl_object.cipher()
            self.tls = TLSInfo(ssl_object.version() or "", name, bits)
            driver.transcript.note(f"TLS established: {self.tls.version} {name}")

    def _unconnected(self, driver: _Driver, error: BaseException) -> ConnectionReport:
        driver._cancel_timer()
        if isinstance(error, TimeoutError):
            failure = SessionFailed(FailureKind.TIMEOUT, Phase.CONNECT, detail="connect timed out")
        else:
            detail = (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
            failure = SessionFailed(FailureKind.REFUSED, Phase.CONNECT, detail=detail)
        driver.transcript.stamp()
        driver.transcript.note(f"connect to {self.target} failed: {failure.detail}")
        return ConnectionReport(
            self.target, (), failure, NO_EXTENSIONS, None, driver.transcript, 0
        )


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    """Opportunistic TLS as Postfix's ``may``: encrypt, accept any certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def deliver(
    target: Target,
    transactions: list[Transaction],
    config: ConnectionConfig,
    on_result: ResultCallback | None = None,
) -> ConnectionReport:
    """Deliver a list of transactions over one connection (what tests and ``send`` use).

    Unlike a bare :class:`SMTPConnection`, whose source keeps what it never handed out,
    the report covers every recipient of the list: those the connection never reached
    (it failed first, or ``max_transactions`` was reached) are ``unattempted``.
    """
    source = ListSource(transactions)
    report = await SMTPConnection(target, config, source, on_result).run()
    failure = report.failure
    why = (failure.detail or failure.kind.value) if failure else "not sent on this connection"
    left = [
        RecipientResult(txn, index, Outcome.UNATTEMPTED, reason=why)
        for txn in iter(source.next_transaction, None)
        for index in range(len(txn.recipients))
    ]
    if left and on_result is not None:
        for result in left:
            on_result(result)
    return dataclasses.replace(report, results=report.results + tuple(left)) if left else report
