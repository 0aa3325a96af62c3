"""The SMTP client session as a sans-IO state machine (our h11).

Bytes in (``receive_data``), bytes out (``data_to_send``), events out (``next_event``).
It owns the conversation: greeting, EHLO (HELO on 500/502), STARTTLS, transactions with
or without PIPELINING (RFC 2920), RSET, QUIT. It never touches a socket, a clock or
asyncio; the driver feeds it, writes what it asks, upgrades TLS when told, and tells it
when the peer closed or a phase timed out.

Each command the session sends leaves an entry in a queue of expected replies; every
reply is matched to the head of that queue and handed to the handler for that command
(``_HANDLERS``, the readable transition table). A reply that arrives before the command
it would answer was handed to the driver is a protocol error (a server that talks
ahead of the client, as Postfix's postscreen "pregreet" test catches).
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from core.smtp import commands
from core.smtp.body import Body
from core.smtp.classify import ReplyKind, classify
from core.smtp.errors import BodyLineTooLongError, LocalProtocolError, RemoteProtocolError
from core.smtp.extensions import NO_EXTENSIONS, Extensions, parse_ehlo
from core.smtp.limits import BODY_CHUNK
from core.smtp.reply import Reply, ReplyParser


class Phase(enum.Enum):
    """What the session is waiting for; the driver picks its timeout from this."""

    # Members are singletons: hash by identity in C, not by name in Python (hot path).
    __hash__ = object.__hash__

    CONNECT = "connect"  # the driver's: TCP connect under way
    GREETING = "greeting"
    EHLO = "ehlo"
    HELO = "helo"
    STARTTLS = "starttls"
    TLS_HANDSHAKE = "tls-handshake"
    AUTH = "auth"
    READY = "ready"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    BODY = "body"
    END_OF_DATA = "end-of-data"
    RSET = "rset"
    QUIT = "quit"
    CLOSED = "closed"


class TLSPolicy(enum.Enum):
    """STARTTLS use, after Postfix's ``smtp_tls_security_level``."""

    OFF = "off"  # never, even when offered
    MAY = "may"  # when offered; certificate not verified; plaintext if it is refused
    REQUIRE = "require"  # or the connection fails


class Outcome(enum.Enum):
    """What happened to one recipient on this connection."""

    ACCEPTED = "accepted"
    GREYLISTED = "greylisted"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    #: no reply concerned this recipient (connection failed before its RCPT was answered):
    #: free to be tried on another MX at once.
    UNATTEMPTED = "unattempted"
    #: the end of data was sent but its reply never came: it may have been delivered.
    AMBIGUOUS = "ambiguous"


_NO_SMTPUTF8 = "the receiving server does not support SMTPUTF8 (RFC 6531)"
_STARTTLS_INJECTION = "data after the STARTTLS reply, before TLS"

#: The class of a positive reply to each transaction command (RFC 5321 §4.2.1: the first
#: digit decides; §4.3.2). A positive reply of the other class is a protocol error.
_POSITIVE_CLASS = {Phase.MAIL: 2, Phase.RCPT: 2, Phase.DATA: 3, Phase.END_OF_DATA: 2}

_OUTCOME_OF = {
    ReplyKind.POSITIVE: Outcome.ACCEPTED,
    ReplyKind.GREYLISTED: Outcome.GREYLISTED,
    ReplyKind.TRANSIENT: Outcome.TRANSIENT,
    ReplyKind.PERMANENT: Outcome.PERMANENT,
}


class FailureKind(enum.Enum):
    """Why a connection as a whole ended early."""

    REFUSED = "refused"  # connect failed (driver)
    TIMEOUT = "timeout"  # a phase took longer than its timeout (driver)
    TLS = "tls"  # STARTTLS missing under require, refused, or handshake failed
    REJECTED = "rejected"  # 4xx/5xx to the greeting, EHLO/HELO; or 421 at any point
    CLOSED = "closed"  # the server closed the connection
    PROTOCOL = "protocol"  # the server broke the protocol
    LOCAL = "local"  # our side gave up (a body that could not be encoded)
    AUTH = "auth"  # the login was refused, or could not be made safely (no TLS, no PLAIN/LOGIN)


@dataclass(frozen=True, slots=True)
class Transaction:
    """One message to some recipients on one connection.

    ``needs_smtputf8`` is set by the message layer when headers carry raw UTF-8 (RFC 6532);
    non-ASCII addresses are detected here.
    """

    sender: str
    recipients: tuple[str, ...]
    body: Body
    needs_smtputf8: bool = False
    #: The caller's own reference (the engine's job), carried back in results untouched.
    tag: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """The outcome for one recipient; ``reply`` is the reply that decided it, if any."""

    transaction: Transaction
    index: int
    outcome: Outcome
    reply: Reply | None = None
    stage: Phase | None = None
    retry_after: float | None = None
    reason: str = ""

    @property
    def recipient(self) -> str:
        return self.transaction.recipients[self.index]


# ---- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The session is idle and wants a transaction (``submit``) or ``quit()``."""

    extensions: Extensions


@dataclass(frozen=True, slots=True)
class StartTLS:
    """The server said 220 to STARTTLS: upgrade now, then call ``tls_established``."""


@dataclass(frozen=True, slots=True)
class TransactionDone:
    transaction: Transaction
    results: tuple[RecipientResult, ...]


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """The connection ended early. Transactions in flight were reported before this."""

    kind: FailureKind
    phase: Phase
    reply: Reply | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Closed:
    """QUIT was answered (or the server closed after we asked to quit)."""


Event = Ready | StartTLS | TransactionDone | SessionFailed | Closed

#: A transcript sink, called with one tuple per line so that a C ``append`` can be it:
#: ("C", command bytes), ("S", Reply), ("B", body size), ("E", text).
Trace = Callable[[tuple[str, object]], None]

#: Called by ``data_to_send()`` with the transaction whose end-of-data marker it is about
#: to hand out (with a body under ``BODY_CHUNK``: whose body and marker), before they
#: count as sent: the one moment to record "possibly delivered from here on" durably
#: before the server can act on the marker. True: hand it out now.
#: False: hold it (``data_to_send()`` stops there; call it again once the record is made,
#: which lets a caller commit the marks of many connections at once). If the hook raises,
#: the marker is not handed out and the exception propagates to the driver, which aborts.
EndOfDataHook = Callable[["Transaction"], bool]


@dataclass(slots=True, eq=False)  # compared and hashed by identity
class _Flight:
    """A transaction under way: what each recipient's RCPT got, and how far we are."""

    txn: Transaction
    params: tuple[str, ...]
    to_send: list[int]  # recipient indexes still to be sent RCPT (lock-step) or sent
    verdicts: dict[int, RecipientResult] = field(default_factory=dict)
    accepted: list[int] = field(default_factory=list)
    mail_reply: Reply | None = None
    rcpt_cursor: int = 0  # next index into to_send that gets a reply
    discarding: bool = False  # 354 came with no accepted recipient: send "." only


#: An expected reply: the command it answers and the transaction it belongs to. A plain
#: tuple, since one is made per command on the hot path.
_Expect = tuple[Phase, "_Flight | None"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """A relay's login (AUTH PLAIN, else LOGIN). Never in a transcript or a ``repr``;
    ``ValueError`` (which never quotes them) when either cannot be sent."""

    user: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        commands.credential("the relay user name", self.user)
        commands.credential("the relay password", self.password)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    helo_name: str
    tls: TLSPolicy = TLSPolicy.MAY
    #: Use PIPELINING when the server offers it.
    pipelining: bool = True
    #: Log in before the first transaction (relay mode); only ever over TLS.
    credentials: Credentials | None = None
    #: The connection is TLS from its first byte (port 465, RFC 8314): no STARTTLS.
    implicit_tls: bool = False


class ClientSession:
    """One SMTP client conversation. See the module docstring for the contract."""

    def __init__(
        self,
        config: SessionConfig,
        trace: Trace | None = None,
        on_end_of_data: EndOfDataHook | None = None,
    ) -> None:
        commands.ehlo(config.helo_name)  # refuse a bad HELO name now, not mid-conversation
        self.config = config
        self._end_of_data_hook = on_end_of_data
        self.extensions: Extensions = NO_EXTENSIONS
        self._pipelined = False  # PIPELINING offered and allowed (RFC 2920)
        self.tls_active = config.implicit_tls
        self._authenticated = False
        #: AUTH LOGIN's answers still to give (user, then password), one per 334.
        self._login_answers: deque[bytes] = deque()
        self._trace = trace
        self._parser = ReplyParser()
        self._expect: deque[_Expect] = deque()
        self._sent = 0  # how many of the expected replies answer commands already handed out
        # What to write: (bytes or a streamed body, replies it asks for, the transaction
        # whose end of data it is, if it is one: announced before it is handed out).
        self._out: deque[tuple[bytes | Iterator[bytes], int, Transaction | None]] = deque()
        self._events: deque[Event] = deque()
        self._queue: deque[Transaction] = deque()
        self._phase = Phase.GREETING
        #: Replies taken so far; a driver restarts its phase clock when this moves.
        self.replies_received = 0
        self._ready = False  # greeted, EHLO done, TLS settled
        self._quitting = False  # quit once the queue is done
        self._unusable = False  # quit now, leave the queue for another connection
        self._waiting_ready = False  # a Ready event is outstanding
        self._expect.append((Phase.GREETING, None))
        self._sent = 1  # the greeting answers the connect itself

    # ---- inputs from the driver --------------------------------------------------------

    @property
    def awaited(self) -> Transaction | None:
        """The transaction whose reply the session waits for now (None when it waits for
        none, e.g. for the greeting): with pipelining, not always the latest one sent."""
        if self._sent:
            flight = self._expect[0][1]
            return flight.txn if flight is not None else None
        return None

    @property
    def phase(self) -> Phase:
        """The reply or action the session is waiting for (for per-phase timeouts)."""
        if self._sent:
            return self._expect[0][0]
        if self._out and not isinstance(self._out[0][0], bytes):
            return Phase.BODY
        return self._phase

    @property
    def closed(self) -> bool:
        return self._phase is Phase.CLOSED

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the server; replies are matched and acted on at once."""
        if self.closed:
            return
        if self._phase is Phase.TLS_HANDSHAKE and not self.tls_active and len(data):
            # Plaintext that arrives after the 220 to STARTTLS but before the handshake
            # would be read as if it had come over TLS (CVE-2011-0411), however it is split.
            self._fail(FailureKind.PROTOCOL, reason=_STARTTLS_INJECTION)
            return
        parser = self._parser
        parser.receive_data(data)
        try:
            while True:
                reply = parser.next_reply()
                if reply is None:
                    return
                self._on_reply(reply)
                if self._phase is Phase.CLOSED:
                    return
        except RemoteProtocolError as error:
            if self._trace:
                self._trace(("E", f"protocol error: {error.reason}: {error.offending!r}"))
            self._fail(FailureKind.PROTOCOL, reason=error.reason)

    def data_to_send(self, limit: int = 1 << 20) -> list[bytes]:
        """Bytes to write now, at most about ``limit`` of a streamed body at a time.

        Commands handed out here count as sent: their replies may now arrive.
        """
        out: list[bytes] = []
        size = 0
        queue = self._out
        while queue and size < limit:
            payload, answers, end_of = queue[0]
            if isinstance(payload, bytes):
                if (
                    end_of is not None
                    and self._end_of_data_hook is not None
                    and not self._end_of_data_hook(end_of)
                ):
                    break  # held until the record is made: the caller asks again
                queue.popleft()
                out.append(payload)
                size += len(payload)
                self._sent += answers
                continue
            try:
                chunk = next(payload, None)
            except BodyLineTooLongError as error:
                self._body_failed(error)
                break
            if chunk is None:
                queue.popleft()
                self._sent += answers
                continue
            out.append(chunk)
            size += len(chunk)
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def submit(self, transaction: Transaction) -> None:
        """Queue a transaction; it starts as soon as the session is ready for it."""
        if self._quitting or self._phase is Phase.CLOSED:
            raise LocalProtocolError("cannot submit a transaction to a session that is ending")
        if not transaction.recipients:
            raise LocalProtocolError("a transaction needs at least one recipient")
        commands.mail_from(transaction.sender)  # raise UnsafeArgumentError now, from here
        for recipient in transaction.recipients:
            commands.rcpt_to(recipient)
        self._queue.append(transaction)
        if self._ready and self._phase is Phase.READY:
            self._waiting_ready = False
            self._start_next()

    def quit(self) -> None:
        """Finish what is queued, then say QUIT."""
        if self._quitting or self._phase is Phase.CLOSED:
            return
        self._quitting = True
        if self._phase is Phase.READY:
            self._send_quit()

    def tls_established(self) -> None:
        """The driver finished the TLS handshake: greet again (RFC 3207 §4.2)."""
        if self._phase is not Phase.TLS_HANDSHAKE:
            raise LocalProtocolError("tls_established() outside a STARTTLS handshake")
        self.tls_active = True
        self._set_extensions(NO_EXTENSIONS)
        self._command(commands.ehlo(self.config.helo_name), Phase.EHLO)

    def tls_failed(self, detail: str) -> None:
        self._fail(FailureKind.TLS, reason=f"TLS handshake failed: {detail}")

    def connection_lost(self, detail: str = "") -> None:
        """The peer closed (or the socket broke). Normal after QUIT, a failure otherwise."""
        if self._phase is Phase.CLOSED:
            return
        if self._phase is Phase.QUIT:
            self._close()
            return
        reason = f"connection closed by the server during {self.phase.value}"
        self._fail(FailureKind.CLOSED, reason=f"{reason}: {detail}" if detail else reason)

    def timed_out(self) -> None:
        """The driver's timer for the current phase fired."""
        if self._phase is Phase.CLOSED:
            return
        if self._phase is Phase.QUIT:
            self._close()
            return
        self._fail(FailureKind.TIMEOUT, reason=f"no answer in time during {self.phase.value}")

    def abort(self, detail: str) -> None:
        """Our side gives up (the caller is shutting down); everything pending is reported."""
        if self._phase is not Phase.CLOSED:
            self._fail(FailureKind.LOCAL, reason=detail)

    def unstarted(self) -> list[Transaction]:
        """Transactions submitted but never begun (after a failure): try them elsewhere."""
        pending = list(self._queue)
        self._queue.clear()
        return pending

    # ---- replies ----------------------------------------------------------------------

    def _on_reply(self, reply: Reply) -> None:
        self.replies_received += 1
        if self._trace:
            self._trace(("S", reply))
        if not self._sent:
            if reply.code == 421:  # RFC 5321 §3.8: may come unasked when the server shuts down
                self._fail(FailureKind.REJECTED, reply=reply)
                return
            raise RemoteProtocolError(
                "the server replied before the command was sent", str(reply).encode()
            )
        phase = self._expect[0][0]
        positive = _POSITIVE_CLASS.get(phase)
        if positive and reply.code < 400 and reply.code // 100 != positive:
            # Read as a success it would report mail as accepted that was never sent.
            raise RemoteProtocolError(
                f"reply {reply.code} makes no sense to {phase.value}", str(reply).encode()
            )
        phase, flight = self._expect.popleft()
        self._sent -= 1
        if reply.code == 421 and phase is not Phase.QUIT:
            self._on_service_closing(phase, flight, reply)
            return
        _HANDLERS[phase](self, reply, flight)

    def _on_greeting(self, reply: Reply, _: _Flight | None) -> None:
        if reply.code != 220:
            self._fail(FailureKind.REJECTED, reply=reply, phase=Phase.GREETING)
            return
        self._command(commands.ehlo(self.config.helo_name), Phase.EHLO)

    def _on_ehlo(self, reply: Reply, _: _Flight | None) -> None:
        if reply.code == 250:
            self._greeted(parse_ehlo(reply))
        elif reply.code in (500, 502):
            self._command(commands.helo(self.config.helo_name), Phase.HELO)
        else:
            self._fail(FailureKind.REJECTED, reply=reply, phase=Phase.EHLO)

    def _on_helo(self, reply: Reply, _: _Flight | None) -> None:
        if reply.code == 250:
            self._greeted(NO_EXTENSIONS)
        else:
            self._fail(FailureKind.REJECTED, reply=reply, phase=Phase.HELO)

    def _set_extensions(self, extensions: Extensions) -> None:
        self.extensions = extensions
        self._pipelined = self.config.pipelining and extensions.pipelining

    def _greeted(self, extensions: Extensions) -> None:
        self._set_extensions(extensions)
        policy = self.config.tls
        if not self.tls_active and policy is not TLSPolicy.OFF:
            if extensions.starttls:
                self._command(commands.STARTTLS, Phase.STARTTLS)
                return
            if policy is TLSPolicy.REQUIRE:
                self._fail(
                    FailureKind.TLS,
                    phase=Phase.STARTTLS,
                    reason="the server does not offer STARTTLS, which the settings require",
                )
                return
        self._settled()

    def _settled(self) -> None:
        """TLS is settled: log in when the settings say so, then take transactions."""
        credentials = self.config.credentials
        if credentials is None or self._authenticated:
            self._ready = True
            self._become_ready()
            return
        self._phase = Phase.AUTH
        if not self.tls_active:
            self._fail(
                FailureKind.AUTH,
                phase=Phase.AUTH,
                reason="no TLS, so no login: a password is never sent in the clear",
            )
            return
        mechanisms = self.extensions.auth_mechanisms
        if "PLAIN" in mechanisms:
            line = commands.auth_plain(credentials.user, credentials.password)
            self._command(line, Phase.AUTH, shown=b"AUTH PLAIN " + commands.HIDDEN)
        elif "LOGIN" in mechanisms:
            self._login_answers = deque(
                (
                    commands.auth_login_answer("user name", credentials.user),
                    commands.auth_login_answer("password", credentials.password),
                )
            )
            self._command(commands.AUTH_LOGIN, Phase.AUTH)
        else:
            offered = " ".join(sorted(mechanisms)) or "none"
            self._fail(
                FailureKind.AUTH,
                phase=Phase.AUTH,
                reason=f"the server offers no AUTH PLAIN or LOGIN (offered: {offered})",
            )

    def _on_auth(self, reply: Reply, _: _Flight | None) -> None:
        if reply.code == 235:
            self._authenticated = True
            self._login_answers.clear()
            self._settled()
        elif reply.code == 334 and self._login_answers:
            self._command(self._login_answers.popleft(), Phase.AUTH, shown=commands.HIDDEN)
        else:
            self._login_answers.clear()
            self._fail(FailureKind.AUTH, reply=reply, phase=Phase.AUTH)

    def _on_starttls(self, reply: Reply, _: _Flight | None) -> None:
        if reply.code == 220:
            self._phase = Phase.TLS_HANDSHAKE
            if self._parser.buffered:
                # Plaintext sent after the 220 would be taken as if it came over TLS:
                # the STARTTLS injection of CVE-2011-0411. Refuse it.
                raise RemoteProtocolError(_STARTTLS_INJECTION)
            self._events.append(StartTLS())
            return
        if self.config.tls is TLSPolicy.REQUIRE:
            self._fail(FailureKind.TLS, reply=reply, phase=Phase.STARTTLS)
            return
        self._settled()

    def _on_mail(self, reply: Reply, flight: _Flight | None) -> None:
        assert flight is not None
        if not reply.is_positive:
            flight.mail_reply = reply
            if not self._pipelined:
                self._finish(flight, rset=False)
            return
        if not self._pipelined:
            self._send_rcpt(flight, flight.to_send[0])

    def _on_rcpt(self, reply: Reply, flight: _Flight | None) -> None:
        assert flight is not None
        index = flight.to_send[flight.rcpt_cursor]
        flight.rcpt_cursor += 1
        if flight.mail_reply is None:
            if reply.is_positive:
                flight.accepted.append(index)
            else:
                flight.verdicts[index] = self._result(flight, index, reply, Phase.RCPT)
        if self._pipelined:
            return
        if flight.rcpt_cursor < len(flight.to_send):
            self._send_rcpt(flight, flight.to_send[flight.rcpt_cursor])
        elif flight.accepted:
            self._command(commands.DATA, Phase.DATA, flight)
        else:
            self._finish(flight, rset=True)

    def _on_data(self, reply: Reply, flight: _Flight | None) -> None:
        assert flight is not None
        if not reply.is_positive:
            if flight.mail_reply is None:
                for index in flight.accepted:
                    flight.verdicts[index] = self._result(flight, index, reply, Phase.DATA)
            self._finish(flight, rset=flight.mail_reply is None)
            return
        if not flight.accepted or flight.mail_reply is not None:
            # RFC 2920 §3.1: DATA accepted though no recipient was: send an empty message.
            flight.discarding = True
            self._command(commands.END_OF_DATA, Phase.END_OF_DATA, flight)
            return
        body = flight.txn.body
        if self._trace:
            self._trace(("B", body.size))
        # The end-of-data hook gates the marker; a body small enough to share the marker's
        # write is gated with it, so that a held marker never costs a second write.
        if body.wire is not None and len(body.wire) <= BODY_CHUNK:
            self._out.append((body.wire, 0, flight.txn))
            self._out.append((commands.END_OF_DATA, 1, None))
        else:
            self._out.append((body.stream(), 0, None))
            self._out.append((commands.END_OF_DATA, 1, flight.txn))
        self._expect.append((Phase.END_OF_DATA, flight))
        # RFC 2920 §3.2: the next envelope may follow the end of data in the same write.
        if self._pipelined:
            self._start_next(after_data=True)

    def _on_end_of_data(self, reply: Reply, flight: _Flight | None) -> None:
        assert flight is not None
        if not flight.discarding:
            for index in flight.accepted:
                flight.verdicts[index] = self._result(flight, index, reply, Phase.END_OF_DATA)
        self._finish(flight, rset=flight.discarding)

    def _on_rset(self, reply: Reply, _: _Flight | None) -> None:
        if reply.code != 250:
            self._unusable = True  # a server that cannot reset gets no more mail from us
        if not self._expect:
            self._become_ready()

    def _on_quit(self, reply: Reply, _: _Flight | None) -> None:
        self._close()

    def _on_service_closing(self, phase: Phase, flight: _Flight | None, reply: Reply) -> None:
        """421 (RFC 5321 §3.8): the server is closing; the reply decides what it answered."""
        if flight is not None and flight.mail_reply is None:
            if phase is Phase.RCPT:
                index = flight.to_send[flight.rcpt_cursor]
                flight.rcpt_cursor += 1
                flight.verdicts[index] = self._result(flight, index, reply, Phase.RCPT)
            elif phase in (Phase.DATA, Phase.END_OF_DATA) and not flight.discarding:
                for index in flight.accepted:
                    flight.verdicts[index] = self._result(flight, index, reply, phase)
        self._fail(FailureKind.REJECTED, reply=reply, phase=phase, current=flight)

    # ---- transactions -----------------------------------------------------------------

    def _become_ready(self) -> None:
        self._phase = Phase.READY
        if self._queue and not self._unusable:
            self._start_next()
        elif self._quitting or self._unusable:
            self._send_quit()
        elif not self._waiting_ready:
            self._waiting_ready = True
            self._events.append(Ready(self.extensions))

    def _start_next(self, after_data: bool = False) -> None:
        """Begin queued transactions until one has to wait for replies."""
        while self._queue:
            txn = self._queue.popleft()
            flight = self._open_flight(txn)
            if flight is None:
                continue  # refused locally, reported; try the next one
            self._phase = Phase.MAIL
            self._command(commands.mail_from(txn.sender, flight.params), Phase.MAIL, flight)
            if self._pipelined:
                for index in flight.to_send:
                    self._send_rcpt(flight, index)
                self._command(commands.DATA, Phase.DATA, flight)
            return
        if not after_data:
            self._become_ready()

    def _open_flight(self, txn: Transaction) -> _Flight | None:
        """Check what the server can take; refusals are reported here, without a command."""
        ext = self.extensions
        flight = _Flight(txn, (), list(range(len(txn.recipients))))
        utf8 = txn.needs_smtputf8 or not txn.sender.isascii()
        wide = [i for i, rcpt in enumerate(txn.recipients) if not rcpt.isascii()]
        whole = ""
        if utf8 and not ext.smtputf8:
            whole = f"{_NO_SMTPUTF8}, which this message's sender address or headers need"
        elif ext.size_limit and txn.body.size > ext.size_limit:
            whole = (
                f"the message ({txn.body.size} octets) is larger than the receiving "
                f"server's limit of {ext.size_limit} octets (SIZE): make the message "
                "smaller, e.g. link to large files instead of attaching them"
            )
        refused = flight.to_send if whole else (wide if not ext.smtputf8 else [])
        for index in refused:
            flight.verdicts[index] = RecipientResult(
                txn,
                index,
                Outcome.PERMANENT,
                reason=whole or f"{_NO_SMTPUTF8}, which this internationalised address needs",
            )
        if refused:
            flight.to_send = [i for i in flight.to_send if i not in flight.verdicts]
            if not flight.to_send:
                self._report(flight)
                return None
        params = []
        if ext.size:
            params.append(f"SIZE={txn.body.size}")
        if txn.body.eight_bit and ext.eightbitmime:
            params.append("BODY=8BITMIME")
        if (utf8 or wide) and ext.smtputf8:
            params.append("SMTPUTF8")
        flight.params = tuple(params)
        return flight

    def _send_rcpt(self, flight: _Flight, index: int) -> None:
        self._command(commands.rcpt_to(flight.txn.recipients[index]), Phase.RCPT, flight)

    def _result(
        self, flight: _Flight, index: int, reply: Reply, stage: Phase
    ) -> RecipientResult:
        verdict = classify(reply)
        return RecipientResult(
            flight.txn, index, _OUTCOME_OF[verdict.kind], reply, stage, verdict.retry_after
        )

    def _finish(self, flight: _Flight, *, rset: bool) -> None:
        """A transaction has all its replies: report it, reset if needed, go on."""
        self._report(flight)
        if rset:
            self._command(commands.RSET, Phase.RSET)
        elif not self._expect:  # else the next transaction was pipelined behind this one
            self._start_next()

    def _report(self, flight: _Flight) -> None:
        if flight.mail_reply is not None:
            for index in flight.to_send:
                if index not in flight.verdicts:
                    flight.verdicts[index] = self._result(
                        flight, index, flight.mail_reply, Phase.MAIL
                    )
        results = tuple(flight.verdicts[i] for i in sorted(flight.verdicts))
        self._events.append(TransactionDone(flight.txn, results))

    def _body_failed(self, error: BodyLineTooLongError) -> None:
        """A streamed body held a line SMTP cannot carry: abandon it without the end marker."""
        streaming = next(
            flight
            for phase, flight in itertools.islice(self._expect, self._sent, None)
            if phase is Phase.END_OF_DATA
        )
        assert streaming is not None
        for index in streaming.accepted:
            streaming.verdicts[index] = RecipientResult(
                streaming.txn, index, Outcome.PERMANENT, stage=Phase.BODY, reason=str(error)
            )
        self._out.clear()
        self._fail(FailureKind.LOCAL, phase=Phase.BODY, reason=str(error))

    # ---- plumbing ---------------------------------------------------------------------

    def _command(
        self,
        line: bytes,
        phase: Phase,
        flight: _Flight | None = None,
        *,
        shown: bytes | None = None,
    ) -> None:
        """Queue a command; ``shown`` is what the trace gets instead of a secret line."""
        if self._trace:
            self._trace(("C", line if shown is None else shown))
        self._expect.append((phase, flight))
        self._out.append((line, 1, None))

    def _send_quit(self) -> None:
        self._quitting = True
        self._phase = Phase.QUIT
        self._command(commands.QUIT, Phase.QUIT)

    def _close(self) -> None:
        self._phase = Phase.CLOSED
        self._out.clear()  # a QUIT not yet handed out is not written after Closed
        self._events.append(Closed())

    def _fail(
        self,
        kind: FailureKind,
        *,
        reply: Reply | None = None,
        phase: Phase | None = None,
        reason: str = "",
        current: _Flight | None = None,
    ) -> None:
        """End the session: settle every transaction in flight, then report the failure.

        ``current`` is a transaction whose last expected reply was just taken off the queue.
        """
        if self._phase is Phase.CLOSED:
            return  # ended already (the peer closed during a TLS handshake that then failed)
        if self._phase is Phase.QUIT:
            # Nothing is in flight, and a failure, if any, was reported already: just end,
            # as connection_lost() and timed_out() do.
            self._close()
            return
        failed_in = phase or self.phase
        why = reason or (str(reply) if reply else kind.value)
        flights = [current] if current is not None else []
        flights += [flight for _, flight in self._expect if flight is not None]
        delivered_maybe = {
            id(flight)
            for phase, flight in itertools.islice(self._expect, self._sent)
            if phase is Phase.END_OF_DATA
        }
        for flight in dict.fromkeys(flights):  # each once, in order
            self._settle(flight, failed_in, why, ambiguous=id(flight) in delivered_maybe)
        self._expect.clear()
        self._out.clear()
        self._sent = 0
        self._events.append(SessionFailed(kind, failed_in, reply, reason))
        if kind is FailureKind.REJECTED and reply is not None and reply.code != 421:
            self._send_quit()  # RFC 5321 §3.1: after a refusal, QUIT and wait for the reply
        elif kind is FailureKind.TLS and failed_in is Phase.STARTTLS:
            self._send_quit()  # still a sane plaintext conversation
        else:
            self._close()

    def _settle(self, flight: _Flight, phase: Phase, reason: str, *, ambiguous: bool) -> None:
        """Give every recipient of a broken transaction the outcome it has honestly earned.

        ``ambiguous``: its end of data went out and no reply came, so the server may have
        taken the message; saying "not delivered" could make us send it twice.
        """
        for index in flight.to_send:
            if index in flight.verdicts or flight.mail_reply is not None:
                continue
            if index in flight.accepted:
                outcome = Outcome.AMBIGUOUS if ambiguous else Outcome.TRANSIENT
                flight.verdicts[index] = RecipientResult(
                    flight.txn, index, outcome, stage=phase, reason=reason
                )
            else:
                flight.verdicts[index] = RecipientResult(
                    flight.txn, index, Outcome.UNATTEMPTED, reason=reason
                )
        self._report(flight)


_Handler = Callable[[ClientSession, Reply, "_Flight | None"], None]

#: The transition table: which handler reads the reply to each command.
_HANDLERS: dict[Phase, _Handler] = {
    Phase.GREETING: ClientSession._on_greeting,
    Phase.EHLO: ClientSession._on_ehlo,
    Phase.HELO: ClientSession._on_helo,
    Phase.STARTTLS: ClientSession._on_starttls,
    Phase.AUTH: ClientSession._on_auth,
    Phase.MAIL: ClientSession._on_mail,
    Phase.RCPT: ClientSession._on_rcpt,
    Phase.DATA: ClientSession._on_data,
    Phase.END_OF_DATA: ClientSession._on_end_of_data,
    Phase.RSET: ClientSession._on_rset,
    Phase.QUIT: ClientSession._on_quit,
}
