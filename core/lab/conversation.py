"""One lab-server SMTP conversation: a stream in, replies out, as the behaviour scripts it.

Owns the server side of RFC 5321 for one connection (EHLO/HELO, STARTTLS, MAIL, RCPT,
DATA with dot-unstuffing, BDAT, RSET, NOOP, QUIT), answering pipelined commands in order
with one write per batch, and the points where a :class:`~core.lab.behaviour.Behaviour`
bends it (faults, greylisting, hostile acts). ``ServerState`` is what all connections of
one server share. It never opens a socket or listens (``core.lab.server`` does), never
grows a buffer past the behaviour's limits, and never waits without a time bound.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import re
import ssl
from collections.abc import Callable, Sequence

from core.lab import hostile
from core.lab.behaviour import (
    MAX_DISCARD,
    UNANSWERING_ACTS,
    Act,
    Behaviour,
    Fault,
    Stage,
    TLSMode,
)
from core.lab.greylist import GreylistMemory
from core.lab.records import ConnectionRecord, ReceivedMessage, Recorder

#: Bytes asked of the socket per read: a pipelined batch or a body chunk in one go.
READ_SIZE = 64 * 1024
#: Seconds a closing connection may take to say goodbye before it is aborted.
CLOSE_TIMEOUT = 1.0

_MAIL_ARG = re.compile(r"FROM:\s*<([^<>]*)>(.*)\Z", re.IGNORECASE | re.DOTALL)
_RCPT_ARG = re.compile(r"TO:\s*<([^<>]*)>(.*)\Z", re.IGNORECASE | re.DOTALL)
_BDAT_ARG = re.compile(r"(\d{1,12})(?:\s+(LAST))?\s*\Z", re.IGNORECASE)
_END_OF_DATA = b"\r\n.\r\n"
_EMPTY_BODY = b".\r\n"


class ServerState:
    """What every connection of one server shares: its script, record, memory and TLS."""

    __slots__ = (
        "_fault_fired",
        "_faults",
        "_hang_ups",
        "_hostile",
        "_hostile_fired",
        "_hung_up",
        "behaviour",
        "greylist",
        "hostile_stages",
        "recorder",
        "stopping",
        "tls_context",
    )

    def __init__(
        self,
        behaviour: Behaviour,
        recorder: Recorder,
        tls_context: ssl.SSLContext | None,
        clock: Callable[[], float],
    ) -> None:
        self.behaviour = behaviour
        self.recorder = recorder
        self.tls_context = tls_context
        self.greylist = GreylistMemory(behaviour.greylist, clock) if behaviour.greylist else None
        self._faults = {stage: behaviour.faults_at(stage) for stage in Stage}
        self._hostile = {stage: behaviour.hostile_at(stage) for stage in Stage}
        self.hostile_stages = frozenset(stage for stage in Stage if self._hostile[stage])
        self._fault_fired = [0] * len(behaviour.faults)
        self._hostile_fired = [0] * len(behaviour.hostile)
        self._hang_ups = {
            stage: tuple(rule for rule in behaviour.hang_ups if rule.stage is stage)
            for stage in (Stage.DATA, Stage.END_OF_DATA)
        }
        self._hung_up: set[tuple[Stage, str]] = set()
        self.stopping = False

    def fault(self, stage: Stage, address: str = "") -> Fault | None:
        """The fault that fires now at ``stage`` (counting it), if any."""
        if not self._fault_fired:
            return None  # the common case, kept cheap
        for index, fault in self._faults[stage]:
            if fault.matches(address) and (
                fault.times is None or self._fault_fired[index] < fault.times
            ):
                self._fault_fired[index] += 1
                return fault
        return None

    def hangs_up(self, stage: Stage, recipients: Sequence[str]) -> bool:
        """Whether the server hangs up now, at ``stage`` of a transaction for ``recipients``
        (counting it: each listed recipient is hung up on once per stage)."""
        rules = self._hang_ups.get(stage)
        if not rules:
            return False  # the common case, kept cheap
        for address in recipients:
            key = address.lower()
            if (stage, key) not in self._hung_up and any(key in r.recipients for r in rules):
                self._hung_up.add((stage, key))
                return True
        return False

    def act(self, stage: Stage) -> Act | None:
        """The hostile act that fires now at ``stage`` (counting it), if any."""
        for index, rule in self._hostile[stage]:
            if rule.times is None or self._hostile_fired[index] < rule.times:
                self._hostile_fired[index] += 1
                return rule.act
        return None


class _Mode(enum.Enum):
    COMMAND = "command"
    BODY = "body"  # after 354, until the lone dot
    BDAT = "bdat"  # inside a BDAT chunk
    REJECTED = "rejected"  # greeting was a 4xx/5xx: only QUIT does anything
    DISCARD_LINE = "discard-line"  # the rest of an overlong command line


class _Follow(enum.Enum):
    """What must happen after a reply is on the wire."""

    NONE = "none"
    CLOSE = "close"
    STARTTLS = "starttls"
    BROKEN_TLS = "broken-tls"


#: (the stage whose hostile acts apply, or None for none; the reply; what follows it)
_Answer = tuple[Stage | None, bytes, _Follow]


def _build(code: int, enhanced: str | None, text: str) -> bytes:
    status = f"{enhanced} " if enhanced else ""
    return f"{code} {status}{text}\r\n".encode()


#: Most replies are a handful of constants: build each once.
_format = functools.lru_cache(maxsize=512)(_build)


def _format_fault(fault: Fault, address: str) -> bytes:
    lines = fault.lines(address)
    last = len(lines) - 1
    return "".join(
        f"{fault.code}{' ' if i == last else '-'}{line}\r\n" for i, line in enumerate(lines)
    ).encode()


def unstuff(raw: bytes) -> bytes:
    """RFC 5321 §4.5.2: drop the first dot of every line that starts with one."""
    data = raw.replace(b"\r\n.", b"\r\n")
    return data[1:] if data.startswith(b".") else data


class Conversation:
    """The server side of one connection. ``run()`` it once; it closes the stream."""

    def __init__(
        self,
        state: ServerState,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: ConnectionRecord,
    ) -> None:
        self.state = state
        self.behaviour = state.behaviour
        self.recorder = state.recorder
        self.reader = reader
        self.writer = writer
        self.record = record
        self._enhanced = self.behaviour.enhanced_status_codes and not self.behaviour.helo_only
        self._buf = bytearray()
        self._pos = 0
        self._out: list[bytes] = []
        self._mode = _Mode.COMMAND
        self._closing = False
        self._abort = False
        self._errors = 0
        self._tls = False
        self._helo: str | None = None
        self._esmtp = False
        # the transaction
        self._sender: str | None = None
        self._mail_options: tuple[str, ...] = ()
        self._recipients: list[str] = []
        # the body (DATA) or chunks (BDAT) under way
        self._body_fresh = True
        self._body_checked = False
        self._scan = 0
        self._discarded = 0
        self._chunks = bytearray()
        self._bdat_left = 0
        self._bdat_last = False
        self._handlers: dict[str, Callable[[str], _Answer]] = {
            "EHLO": self._ehlo,
            "HELO": self._helo_command,
            "STARTTLS": self._starttls_command,
            "MAIL": self._mail,
            "RCPT": self._rcpt,
            "DATA": self._data,
            "BDAT": self._bdat,
            "RSET": self._rset,
            "NOOP": self._noop,
            "QUIT": self._quit,
            "VRFY": self._vrfy,
            "HELP": self._help,
        }

    # ---- the one loop ---------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._greet()
            while not self._closing:
                try:
                    async with asyncio.timeout(self.behaviour.idle_timeout):
                        data = await self.reader.read(READ_SIZE)
                except TimeoutError:
                    self._out.append(self._r(421, "4.4.2", "Error: timeout exceeded"))
                    await self._flush()
                    break
                if not data:
                    break
                self._buf += data
                await self._process()
        except OSError:
            pass  # the client went away (reset, broken pipe, TLS alert): nothing to answer
        finally:
            await self._close()

    async def _greet(self) -> None:
        b = self.behaviour
        fault = self.state.fault(Stage.GREETING)
        follow = _Follow.NONE
        if fault is None:
            reply = _format(220, None, f"{b.hostname} {b.banner}")
        else:
            reply = _format_fault(fault, "")
            if fault.closes:
                follow = _Follow.CLOSE
            elif fault.code >= 400:
                self._mode = _Mode.REJECTED
        await self._deliver(Stage.GREETING, reply, follow)
        await self._flush()

    async def _process(self) -> None:
        """Handle every complete command (or body) in the buffer, then write the replies."""
        while not self._closing:
            mode = self._mode
            if mode is _Mode.BODY:
                if not await self._take_body():
                    break
            elif mode is _Mode.BDAT:
                if not await self._take_chunk():
                    break
            elif mode is _Mode.DISCARD_LINE:
                end = self._buf.find(b"\n", self._pos)
                if end < 0:
                    self._pos = len(self._buf)
                    break
                self._pos = end + 1
                self._mode = _Mode.COMMAND
            else:
                line = self._next_line()
                if line is None:
                    break
                stage, reply, follow = self._command(line)
                hostile_stages = self.state.hostile_stages
                if follow is _Follow.NONE and (not hostile_stages or stage not in hostile_stages):
                    if reply:  # BDAT answers once its chunk is in
                        self._out.append(reply)
                else:
                    await self._deliver(stage, reply, follow)
        if self._pos:
            del self._buf[: self._pos]
            self._scan = max(self._scan - self._pos, 0)
            self._pos = 0
        await self._flush()

    def _next_line(self) -> bytes | None:
        """The next whole command line (CRLF or a bare LF removed), or None for "need more".

        A line longer than the limit is answered 500 and skipped, whether its end is in
        the buffer or still to come (then it is thrown away as it arrives).
        """
        buf = self._buf
        limit = self.behaviour.max_command_line
        while not self._closing:
            end = buf.find(b"\n", self._pos)
            if end < 0:
                if len(buf) - self._pos >= limit:
                    self._pos = len(buf)
                    self._mode = _Mode.DISCARD_LINE
                    self._out.append(self._error(500, "5.5.2", "Error: line too long"))
                return None
            line = bytes(buf[self._pos : end])
            self._pos = end + 1
            if len(line) < limit:
                return line[:-1] if line.endswith(b"\r") else line
            self._out.append(self._error(500, "5.5.2", "Error: line too long"))
        return None

    async def _flush(self) -> None:
        if self._out:
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            if not self.writer.is_closing():
                self.writer.write(data)
                await self.writer.drain()

    async def _deliver(self, stage: Stage | None, reply: bytes, follow: _Follow) -> None:
        """Put one reply on the wire the way the behaviour says, then do what follows it."""
        act = self.state.act(stage) if stage in self.state.hostile_stages else None
        if act is None:
            self._out.append(reply)
        else:
            await self._flush()
            await self._perform(act, reply)
            if act in UNANSWERING_ACTS:
                self._closing = True
                return
        if follow is _Follow.NONE:
            return
        await self._flush()
        if follow is _Follow.CLOSE:
            self._closing = True
        elif follow is _Follow.STARTTLS:
            await self._upgrade()
        else:  # BROKEN_TLS: the client's handshake gets garbage as the server's answer
            await hostile.answer_with_garbage(self.reader, self.writer, self.behaviour.idle_timeout)
            self._closing = True

    async def _perform(self, act: Act, reply: bytes) -> None:
        b = self.behaviour
        code = int(reply[:3]) if reply[:3].isdigit() else 250
        if act is Act.DRIP:
            await hostile.drip(self.writer, reply, b.drip_interval)
        elif act is Act.TALK_AHEAD:
            self.writer.write(reply + hostile.UNSOLICITED)
            await self.writer.drain()
        elif act is Act.SILENCE:
            await hostile.silence(self.reader, b.idle_timeout)
        elif act is Act.GARBAGE:
            self.writer.write(hostile.GARBAGE)
            await self.writer.drain()
            await hostile.silence(self.reader, b.idle_timeout)
        elif act is Act.LONG_LINE:
            await hostile.long_line(self.writer, code, b.long_line_size, b.idle_timeout)
            await hostile.silence(self.reader, b.idle_timeout)
        elif act is Act.ENDLESS:
            await hostile.endless(self.writer, code, b.endless_max_bytes, b.endless_max_seconds)
            self._abort = True  # what is still queued is more of the same: drop it
        # Act.CLOSE: nothing goes out

    async def _upgrade(self) -> None:
        """STARTTLS said 220: discard what was pipelined behind it and shake hands."""
        del self._buf[:]
        self._pos = 0
        assert self.state.tls_context is not None
        try:
            await self.writer.start_tls(
                self.state.tls_context, ssl_handshake_timeout=self.behaviour.idle_timeout
            )
        except OSError:  # ssl.SSLError, ConnectionError and TimeoutError all are
            self.recorder.tls(self.record, ok=False)
            self._closing = True
            return
        self.recorder.tls(self.record, ok=True)
        # RFC 3207 §4.2: forget everything learnt before TLS; the client says EHLO again.
        self._tls = True
        self._helo = None
        self._esmtp = False
        self._reset()

    async def _close(self) -> None:
        transport = self.writer.transport
        if self.state.stopping or self._abort:
            transport.abort()
            return
        self.writer.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.writer.wait_closed()
        except asyncio.CancelledError:
            transport.abort()
            raise
        except OSError:  # TimeoutError included
            transport.abort()

    # ---- replies -------------------------------------------------------------------------

    def _r(self, code: int, enhanced: str | None, text: str) -> bytes:
        return _format(code, enhanced if self._enhanced else None, text)

    def _error(self, code: int, enhanced: str, text: str) -> bytes:
        """A reply to a client mistake; too many of them end the connection."""
        self._errors += 1
        if self._errors > self.behaviour.max_errors:
            self._closing = True
            return self._r(421, "4.7.0", "Error: too many errors")
        return self._r(code, enhanced, text)

    # ---- commands ------------------------------------------------------------------------

    def _command(self, line: bytes) -> _Answer:
        text = line.decode("utf-8", "replace")
        self.recorder.command(self.record, text)
        if self.record.command_count > self.behaviour.max_commands:
            return None, self._r(421, "4.7.0", "Error: too many commands"), _Follow.CLOSE
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if self._mode is _Mode.REJECTED and verb != "QUIT":
            return None, self._error(503, "5.5.1", "Error: no SMTP service here"), _Follow.NONE
        handler = self._handlers.get(verb)
        if handler is None:
            return None, self._error(500, "5.5.2", "Error: command not recognized"), _Follow.NONE
        return handler(arg.strip())

    def _faulted(self, stage: Stage, address: str = "") -> tuple[Fault | None, _Answer | None]:
        """The fault at ``stage``; with the answer to give at once if it rejects."""
        fault = self.state.fault(stage, address)
        if fault is None:
            return None, None
        follow = _Follow.CLOSE if fault.closes else _Follow.NONE
        answer = (stage, _format_fault(fault, address), follow)
        return fault, (answer if fault.code >= 400 or fault.closes else None)

    def _answer(
        self, stage: Stage, reply: bytes, fault: Fault | None, address: str = ""
    ) -> _Answer:
        """The normal answer, unless a (2xx/3xx) fault gives its own words."""
        if fault is None:
            return stage, reply, _Follow.NONE
        return stage, _format_fault(fault, address), _Follow.NONE

    def _reset(self) -> None:
        """Forget the transaction (RFC 5321 §4.1.1.5), including BDAT chunks received."""
        self._sender = None
        self._mail_options = ()
        self._recipients = []
        self._chunks.clear()
        self._discarded = 0

    def _ehlo(self, arg: str) -> _Answer:
        b = self.behaviour
        if b.helo_only:
            return (
                Stage.EHLO,
                self._error(502, "5.5.1", "Error: command not recognized"),
                _Follow.NONE,
            )
        if not arg:
            return Stage.EHLO, self._error(501, "5.5.4", "Syntax: EHLO hostname"), _Follow.NONE
        fault, rejected = self._faulted(Stage.EHLO)
        if rejected is not None:
            return rejected
        self._helo, self._esmtp = arg, True
        self._reset()
        if fault is not None:
            return self._answer(Stage.EHLO, b"", fault)
        lines = [b.hostname]
        if b.pipelining:
            lines.append("PIPELINING")
        lines.append(f"SIZE {b.size_limit}")
        if b.tls is not TLSMode.NONE and not self._tls:
            lines.append("STARTTLS")
        if b.enhanced_status_codes:
            lines.append("ENHANCEDSTATUSCODES")
        if b.eightbitmime:
            lines.append("8BITMIME")
        if b.smtputf8:
            lines.append("SMTPUTF8")
        if b.chunking:
            lines.append("CHUNKING")
        last = len(lines) - 1
        reply = "".join(f"250{' ' if i == last else '-'}{line}\r\n" for i, line in enumerate(lines))
        return Stage.EHLO, reply.encode(), _Follow.NONE

    def _helo_command(self, arg: str) -> _Answer:
        if not arg:
            return Stage.HELO, self._error(501, "5.5.4", "Syntax: HELO hostname"), _Follow.NONE
        fault, rejected = self._faulted(Stage.HELO)
        if rejected is not None:
            return rejected
        self._helo, self._esmtp = arg, False
        self._reset()
        return self._answer(Stage.HELO, _format(250, None, self.behaviour.hostname), fault)

    def _starttls_command(self, arg: str) -> _Answer:
        mode = self.behaviour.tls
        stage = Stage.STARTTLS
        if mode is TLSMode.NONE:
            return stage, self._error(502, "5.5.1", "Error: command not recognized"), _Follow.NONE
        if self._tls:
            return stage, self._error(554, "5.5.1", "Error: TLS already active"), _Follow.NONE
        if not self._esmtp:
            return stage, self._error(503, "5.5.1", "Error: send EHLO first"), _Follow.NONE
        if arg:
            return stage, self._error(501, "5.5.4", "Syntax: STARTTLS"), _Follow.NONE
        fault, rejected = self._faulted(stage)
        if rejected is not None:
            return rejected
        if mode is TLSMode.REFUSE:
            reply = self._r(454, "4.7.0", "TLS not available due to local problem")
            return stage, reply, _Follow.NONE
        follow = _Follow.BROKEN_TLS if mode is TLSMode.BROKEN else _Follow.STARTTLS
        _, reply, _ = self._answer(stage, self._r(220, "2.0.0", "Ready to start TLS"), fault)
        return stage, reply, follow

    def _params_error(self, params: list[str]) -> bytes | None:
        """The reply refusing a MAIL parameter, or None if they are all fine."""
        b = self.behaviour
        for param in params:
            key, _, value = param.partition("=")
            key = key.upper()
            if not self._esmtp:
                return self._error(555, "5.5.4", f"Unsupported option: {param}")
            if key == "SIZE" and value.isdigit():
                if int(value) > b.size_limit:
                    return self._r(552, "5.3.4", "Message size exceeds fixed limit")
            elif key == "BODY" and value.upper() in ("7BIT", "8BITMIME"):
                if value.upper() == "8BITMIME" and not b.eightbitmime:
                    return self._error(555, "5.5.4", f"Unsupported option: {param}")
            elif key == "SMTPUTF8" and not value and b.smtputf8:
                pass
            else:
                return self._error(555, "5.5.4", f"Unsupported option: {param}")
        return None

    def _mail(self, arg: str) -> _Answer:
        stage = Stage.MAIL
        if self._helo is None:
            return stage, self._error(503, "5.5.1", "Error: send HELO/EHLO first"), _Follow.NONE
        if self.behaviour.tls is TLSMode.REQUIRE and not self._tls:
            reply = self._r(530, "5.7.0", "Must issue a STARTTLS command first")
            return stage, reply, _Follow.NONE
        if self._sender is not None:
            return stage, self._error(503, "5.5.1", "Error: nested MAIL command"), _Follow.NONE
        match = _MAIL_ARG.match(arg)
        if match is None:
            return stage, self._error(501, "5.5.4", "Syntax: MAIL FROM:<address>"), _Follow.NONE
        sender, params = match.group(1), match.group(2).split()
        refused = self._params_error(params)
        if refused is not None:
            return stage, refused, _Follow.NONE
        if not sender.isascii() and "SMTPUTF8" not in (p.upper() for p in params):
            reply = self._r(553, "5.6.7", "Error: non-ASCII address needs SMTPUTF8")
            return stage, reply, _Follow.NONE
        fault, rejected = self._faulted(stage, sender)
        if rejected is not None:
            return rejected
        self._sender, self._mail_options = sender, tuple(params)
        self.recorder.transaction()
        return self._answer(stage, self._r(250, "2.1.0", "Ok"), fault, sender)

    def _rcpt(self, arg: str) -> _Answer:
        stage = Stage.RCPT
        if self._sender is None:
            return stage, self._error(503, "5.5.1", "Error: need MAIL command"), _Follow.NONE
        match = _RCPT_ARG.match(arg)
        if match is None or match.group(2).strip():
            return stage, self._error(501, "5.5.4", "Syntax: RCPT TO:<address>"), _Follow.NONE
        recipient = match.group(1)
        if len(self._recipients) >= self.behaviour.max_recipients:
            return stage, self._r(452, "4.5.3", "Error: too many recipients"), _Follow.NONE
        utf8 = any(option.upper() == "SMTPUTF8" for option in self._mail_options)
        if not recipient.isascii() and not utf8:
            reply = self._r(553, "5.6.7", "Error: non-ASCII address needs SMTPUTF8")
            return stage, reply, _Follow.NONE
        fault, rejected = self._faulted(stage, recipient)
        if rejected is not None:
            return rejected
        greylist = self.state.greylist
        if greylist is not None and not greylist.admits(self._sender, recipient):
            code, enhanced, text = greylist.reply()
            return stage, self._r(code, enhanced, text), _Follow.NONE
        self._recipients.append(recipient)
        return self._answer(stage, self._r(250, "2.1.5", "Ok"), fault, recipient)

    def _data(self, arg: str) -> _Answer:
        stage = Stage.DATA
        if arg:
            return stage, self._error(501, "5.5.4", "Syntax: DATA"), _Follow.NONE
        if self._sender is None:
            return stage, self._error(503, "5.5.1", "Error: need MAIL command"), _Follow.NONE
        if not self._recipients:
            return stage, self._r(554, "5.5.1", "Error: no valid recipients"), _Follow.NONE
        fault, rejected = self._faulted(stage)
        if rejected is not None:
            return rejected
        if self.state.hangs_up(stage, self._recipients):
            self._reset()
            return stage, b"", _Follow.CLOSE  # what was answered before goes out first
        self._mode = _Mode.BODY
        self._body_fresh = True
        self._body_checked = False
        self._discarded = 0
        reply = _format(354, None, "End data with <CR><LF>.<CR><LF>")
        return self._answer(stage, reply, fault)

    def _bdat(self, arg: str) -> _Answer:
        stage = Stage.BDAT
        if not self.behaviour.chunking or not self._esmtp:
            return stage, self._error(502, "5.5.1", "Error: command not recognized"), _Follow.NONE
        match = _BDAT_ARG.match(arg)
        if match is None:
            reply = self._r(501, "5.5.4", "Syntax: BDAT size [LAST]")
            return stage, reply, _Follow.CLOSE  # the chunk's length is unknown: cannot go on
        self._bdat_left = int(match.group(1))
        self._bdat_last = match.group(2) is not None
        self._mode = _Mode.BDAT
        return stage, b"", _Follow.NONE  # answered once the chunk is in

    def _rset(self, arg: str) -> _Answer:
        fault, rejected = self._faulted(Stage.RSET)
        if rejected is not None:
            return rejected
        self._reset()
        return self._answer(Stage.RSET, self._r(250, "2.0.0", "Ok"), fault)

    def _noop(self, arg: str) -> _Answer:
        fault, rejected = self._faulted(Stage.NOOP)
        if rejected is not None:
            return rejected
        return self._answer(Stage.NOOP, self._r(250, "2.0.0", "Ok"), fault)

    def _quit(self, arg: str) -> _Answer:
        fault = self.state.fault(Stage.QUIT)
        reply = _format_fault(fault, "") if fault else self._r(221, "2.0.0", "Bye")
        return Stage.QUIT, reply, _Follow.CLOSE

    def _vrfy(self, arg: str) -> _Answer:
        return None, self._r(252, "2.0.0", "Cannot VRFY user"), _Follow.NONE

    def _help(self, arg: str) -> _Answer:
        return None, self._r(214, "2.0.0", "See RFC 5321"), _Follow.NONE

    # ---- message bodies ------------------------------------------------------------------

    async def _check_body_stage(self) -> bool:
        """At the first body bytes: fire a BODY fault or act. True if the body goes on."""
        self._body_checked = True
        fault = self.state.fault(Stage.BODY)
        act = self.state.act(Stage.BODY) if Stage.BODY in self.state.hostile_stages else None
        if fault is None and act is None:
            return True
        await self._flush()
        reply = _format_fault(fault, "") if fault is not None else b""
        if act is None:
            self._out.append(reply)
        else:
            await self._perform(act, reply)
            if fault is None and act not in UNANSWERING_ACTS:
                return True  # a drip of nothing, or an unsolicited 250 mid-body
        self._closing = True  # a reply mid-body leaves the body's fate undefined: hang up
        return False

    async def _take_body(self) -> bool:
        """Consume the DATA body from the buffer. True once it ended (and was answered)."""
        buf, start = self._buf, self._pos
        if start >= len(buf):
            return False
        if not self._body_checked and not await self._check_body_stage():
            return False
        if self._body_fresh:
            head = bytes(buf[start : start + 3])
            if len(head) < 3 and _EMPTY_BODY.startswith(head):
                return False
            self._body_fresh = False
            if head == _EMPTY_BODY:
                self._pos = start + 3
                await self._end_of_message(b"", dot_stuffed=True)
                return True
            self._scan = start
        end = buf.find(_END_OF_DATA, self._scan)
        if end < 0:
            self._scan = max(start, len(buf) - len(_END_OF_DATA) + 1)
            if len(buf) - start > self.behaviour.size_limit:
                # Too big: keep scanning for the end, throw the bytes away.
                keep = len(_END_OF_DATA) - 1
                dropped = len(buf) - start - keep
                del buf[start : start + dropped]
                self._discarded += dropped
                self._scan = start
                if self._discarded > MAX_DISCARD:
                    self._out.append(self._r(421, "4.3.4", "Error: message far too big"))
                    self._closing = True
            return False
        raw = bytes(buf[start : end + 2])
        self._pos = end + len(_END_OF_DATA)
        await self._end_of_message(raw, dot_stuffed=True)
        return True

    async def _take_chunk(self) -> bool:
        """Consume a BDAT chunk from the buffer. True once it is in (and was answered)."""
        available = len(self._buf) - self._pos
        if self._bdat_left and not available:
            return False
        take = min(available, self._bdat_left)
        if len(self._chunks) + take <= self.behaviour.size_limit and not self._discarded:
            self._chunks += self._buf[self._pos : self._pos + take]
        else:
            self._discarded += take
            self._chunks.clear()
        self._pos += take
        self._bdat_left -= take
        if self._discarded > MAX_DISCARD:
            self._out.append(self._r(421, "4.3.4", "Error: message far too big"))
            self._closing = True
            return False
        if self._bdat_left:
            return False
        self._mode = _Mode.COMMAND
        if self._sender is None or not self._recipients:
            self._chunks.clear()
            reply = self._error(503, "5.5.1", "Error: need MAIL and RCPT commands")
            await self._deliver(Stage.BDAT, reply, _Follow.NONE)
        elif self._bdat_last:
            data = bytes(self._chunks)
            self._chunks.clear()
            await self._end_of_message(data, dot_stuffed=False)
        else:
            fault = self.state.fault(Stage.BDAT)
            follow = _Follow.CLOSE if fault is not None and fault.closes else _Follow.NONE
            if fault is None:
                reply = self._r(250, "2.0.0", f"{len(self._chunks)} octets received")
            else:
                reply = _format_fault(fault, "")
                if fault.code >= 400:  # the transaction is over
                    self._reset()
            await self._deliver(Stage.BDAT, reply, follow)
        return True

    async def _end_of_message(self, raw: bytes, *, dot_stuffed: bool) -> None:
        """The message is in: record it and answer, as the behaviour says."""
        self._mode = _Mode.COMMAND
        stage = Stage.END_OF_DATA
        too_big = self._discarded > 0 or len(raw) > self.behaviour.size_limit
        self._discarded = 0
        sender, recipients = self._sender, tuple(self._recipients)
        options = self._mail_options
        self._reset()
        assert sender is not None
        if too_big:
            reply = self._r(552, "5.3.4", "Error: message file too big")
            await self._deliver(stage, reply, _Follow.NONE)
            return
        fault = self.state.fault(stage)
        act = self.state.act(stage) if stage in self.state.hostile_stages else None
        if fault is not None and fault.code >= 400:
            reply = _format_fault(fault, "")
            follow = _Follow.CLOSE if fault.closes else _Follow.NONE
        else:
            if act is None and self.state.hangs_up(stage, recipients):
                act = Act.CLOSE  # the body is in: recorded as unanswered, never answered
            message = ReceivedMessage(
                sender=sender,
                recipients=recipients,
                data=unstuff(raw) if dot_stuffed else raw,
                tls=self._tls,
                helo=self._helo or "",
                mail_options=options,
                connection=self.record.number,
            )
            if act in UNANSWERING_ACTS:
                self.recorder.message_unanswered(message)
            else:
                self.recorder.message(message)
            number = self.recorder.stats.messages
            queued = _build(
                250, "2.0.0" if self._enhanced else None, f"Ok: queued as L{number:06d}"
            )
            reply = _format_fault(fault, "") if fault is not None else queued
            follow = _Follow.CLOSE if fault is not None and fault.closes else _Follow.NONE
        if act is None:
            self._out.append(reply)
            if follow is _Follow.CLOSE:
                await self._flush()
                self._closing = True
            return
        await self._flush()
        await self._perform(act, reply)
        if act in UNANSWERING_ACTS or follow is _Follow.CLOSE:
            self._closing = True
