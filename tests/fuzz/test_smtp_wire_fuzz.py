"""No SMTP command can be created by data, and no outcome is claimed that the wire does
not show.

The client's bytes are read here the way a server reads them (commands line by line, the
message after a 354 until the lone dot, dot-stuffing undone) by :class:`WireServer`, an
oracle that shares no code with ``core.smtp``. Addresses and bodies are drawn from
adversarial text (CR, LF, NUL, ``\\r\\n.\\r\\n``, ``RCPT TO:``, angle brackets); the server
answers each command with a drawn reply; the driver interleaves everything a driver may
do (partial writes, a held end of data, timeouts, a lost connection, an abort, a failed
TLS handshake). Then:

* each command on the wire is one of the session's own, with an address that was given;
* each message the server took is exactly a submitted body, whole;
* a recipient is reported accepted only if the server accepted it and its message, and
  each recipient of a delivered message is reported accepted;
* every transaction is reported once, and nothing is written after the session closed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import event as count
from hypothesis import given
from hypothesis import strategies as st

from core.smtp import (
    Body,
    ClientSession,
    Closed,
    Outcome,
    Ready,
    SessionConfig,
    SessionFailed,
    StartTLS,
    TLSPolicy,
    Transaction,
    TransactionDone,
    UnsafeArgumentError,
    commands,
)
from tests.fuzz.profile import FUZZ, TIMEOUT

pytestmark = TIMEOUT

#: Text that tries to end a command or a message early, or to look like one.
TRAPS = [
    "\r\n", "\r", "\n", "\0", "\r\n.\r\n", "\n.\n", "\r\n.\r\nRCPT TO:<evil@attacker.test>\r\n",
    "RCPT TO:<evil@attacker.test>", "MAIL FROM:<>", "DATA\r\n", "QUIT", "<", ">", " ", "..",
    ".", "\u2028", "\x85", "\u00e9", "SIZE=1", "=?utf-8?q?x?=",
]  # fmt: skip
adversarial = st.lists(st.one_of(st.sampled_from(TRAPS), st.text(max_size=6)), max_size=6).map(
    "".join
)
_ORDINARY = st.sampled_from(["ann@dest.test", "bob@dest.test", "j\u00fcrgen@dest.test"])
#: An ordinary address with one trap put in somewhere: each trap meets the builders often
#: even in the short run.
_TRAPPED = st.builds(
    lambda address, trap, at: address[:at] + trap + address[at:],
    _ORDINARY,
    st.sampled_from(TRAPS),
    st.integers(0, 16),
)
#: Mostly addresses that pass, so that conversations get deep; the rest adversarial.
addresses = st.one_of(
    _ORDINARY,
    _ORDINARY,
    _TRAPPED,
    st.builds(lambda a, b: f"{a}@{b}.test", adversarial, adversarial),
)

_PATH = rb"<([^<>\r\n]*)>"
_PARAM = rb"(?: (?:SIZE=[0-9]+|BODY=8BITMIME|SMTPUTF8))*"
COMMAND = re.compile(
    rb"(EHLO|HELO) client\.test|STARTTLS|DATA|RSET|QUIT"
    rb"|MAIL FROM:" + _PATH + _PARAM + rb"|RCPT TO:" + _PATH + _PARAM
)


# ---- the builders: one line or a refusal -----------------------------------------------


def _must_refuse(value: str, pattern: str) -> bool:
    return re.search(pattern, value) is not None


@FUZZ
@given(adversarial, st.lists(adversarial, max_size=3))
def test_a_command_is_one_line_or_refused(value: str, params: list[str]) -> None:
    cases: list[tuple[Callable[[str], bytes], str, bytes]] = [
        (commands.mail_from, "[\r\n\0<>]", b"MAIL FROM:<%s>"),
        (commands.rcpt_to, "[\r\n\0<>]|^$", b"RCPT TO:<%s>"),
        (commands.ehlo, r"[\r\n\0\s]|^$", b"EHLO %s"),
        (commands.helo, r"[\r\n\0\s]|^$", b"HELO %s"),
    ]
    for build, unsafe, shape in cases:
        try:
            line = build(value)
        except UnsafeArgumentError:
            assert _must_refuse(value, unsafe), f"refused a safe value {value!r}"
            continue
        assert not _must_refuse(value, unsafe), f"let {value!r} through: {line!r}"
        assert line == shape % value.encode() + b"\r\n"
    try:
        line = commands.mail_from("a@b.test", tuple(params))
    except UnsafeArgumentError:
        assert any(_must_refuse(p, r"[\r\n\0\s]") for p in params)
    else:
        assert (
            line == b"MAIL FROM:<a@b.test>" + b"".join(b" " + p.encode() for p in params) + b"\r\n"
        )


# ---- a server that reads the wire ------------------------------------------------------


@dataclass
class WireServer:
    """Reads the client's bytes as an SMTP server does and answers with drawn replies."""

    draw: st.DataObject
    keywords: tuple[str, ...]
    buffer: bytes = b""
    in_data: bool = False
    message: list[bytes] = field(default_factory=list)
    #: the envelope: recipients accepted since MAIL (None: no MAIL accepted)
    envelope: list[str] | None = None
    data_ok: bool = False
    #: (body, recipients, taken) of each end of data read, once its reply was given to
    #: the client; before, in ``unheard``. ``taken``: the reply was 250.
    heard: list[tuple[bytes, list[str], bool]] = field(default_factory=list)
    unheard: list[tuple[bytes, list[str], bool]] = field(default_factory=list)
    greeted: bool = False

    def answer(self, code: int, *lines: str) -> bytes:
        lines = lines or ("ok",)
        return b"".join(
            f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode()
            for i, line in enumerate(lines)
        )

    def pick(self, usual: int, label: str) -> int:
        """Mostly the usual answer, so that conversations get deep; else a refusal."""
        others = [421, 450, 451, 452, 500, 502, 503, 550, 552, 554]
        return self.draw.draw(st.sampled_from([usual] * 90 + others), label=label)

    def take(self, data: bytes, given: set[str]) -> bytes:
        """Read ``data``; return the replies to whatever it completed."""
        self.buffer += data
        out = b""
        while (end := self.buffer.find(b"\r\n")) >= 0:
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            out += self.body_line(line) if self.in_data else self.command(line, given)
        return out

    def body_line(self, line: bytes) -> bytes:
        if line != b".":
            self.message.append(line[1:] if line.startswith(b".") else line)
            return b""
        self.in_data = False
        body = b"".join(part + b"\r\n" for part in self.message)
        self.message = []
        code = self.pick(250, "end of data")
        self.unheard.append((body, self.envelope or [], code == 250))
        self.envelope = None
        return self.answer(code)

    def command(self, line: bytes, given: set[str]) -> bytes:
        match = COMMAND.fullmatch(line)
        assert match is not None, f"not one of the session's commands: {line!r}"
        verb = line.split(b" ")[0].split(b":")[0]
        if verb in (b"MAIL", b"RCPT"):
            path = match.group(2 if verb == b"MAIL" else 3).decode()
            assert path in given, f"an address no one gave: {path!r}"
        if verb in (b"EHLO", b"HELO"):
            code = self.pick(250, "ehlo")
            self.envelope = None
            if code != 250:
                return self.answer(code)
            return self.answer(250, "mx.test", *(self.keywords if verb == b"EHLO" else ()))
        if verb == b"STARTTLS":
            return self.answer(self.draw.draw(st.sampled_from([220, 454]), label="starttls"))
        if verb == b"MAIL":
            code = self.pick(250, "mail")
            self.envelope = [] if code == 250 else None
            return self.answer(code)
        if verb == b"RCPT":
            code = self.pick(self.draw.draw(st.sampled_from([250, 251])), "rcpt")
            if code < 300 and self.envelope is not None:
                self.envelope.append(match.group(3).decode())
            return self.answer(code)
        if verb == b"DATA":
            code = self.pick(354, "data")
            self.in_data = code == 354
            return self.answer(code)
        if verb == b"RSET":
            self.envelope = None
            return self.answer(250)
        assert verb == b"QUIT"
        return self.answer(221)


def normalised(data: bytes) -> bytes:
    """What a server must receive for ``data``: CRLF line ends, one at the end."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") else data + b"\r\n"


KEYWORDS = ["PIPELINING", "SIZE 100000", "SIZE 60", "STARTTLS", "SMTPUTF8", "8BITMIME"]
CONFIGS = [SessionConfig("client.test", tls=tls) for tls in TLSPolicy]


@FUZZ
@given(st.data(), st.sampled_from(CONFIGS), st.lists(st.sampled_from(KEYWORDS), unique=True))
def test_data_never_becomes_a_command_and_outcomes_match_the_wire(
    data: st.DataObject, config: SessionConfig, keywords: list[str]
) -> None:
    server = WireServer(data, tuple(keywords))
    held = data.draw(st.integers(0, 3), label="end-of-data holds")

    def hold(_: Transaction) -> bool:
        nonlocal held
        held -= 1
        return held < 0

    session = ClientSession(config, on_end_of_data=hold)
    given: set[str] = set()
    submitted: list[Transaction] = []
    bodies: dict[bytes, Transaction] = {}
    reported: list[TransactionDone] = []
    closed = False
    wire = server.answer(220, "mx.test ESMTP")

    first = ["submit"] * data.draw(st.integers(0, 3), label="submits first")
    for step in range(data.draw(st.integers(5, 60), label="steps")):
        action = (
            first.pop()
            if first
            else data.draw(
                # Mostly turns, so that conversations get deep; an ending now and then.
                st.sampled_from(
                    ["turn"] * 24 + ["submit"] * 8 + ["quit", "timeout", "lost", "abort"]
                ),
                label="action",
            )
        )
        if action == "submit":
            recipients = tuple(data.draw(st.lists(addresses, min_size=1, max_size=3)))
            sender = data.draw(addresses | st.just(""), label="sender")
            raw = data.draw(adversarial, label="body") + f"\r\n#{step}".encode().decode()
            transaction = Transaction(sender, recipients, Body.from_bytes(raw.encode()))
            try:
                session.submit(transaction)
            except UnsafeArgumentError as error:
                assert re.search("[\r\n\0<>]", error.value) or not error.value
                continue
            except Exception as error:  # only an ending session may refuse
                assert "ending" in str(error), error
                continue
            submitted.append(transaction)
            given.update((sender, *recipients))
            bodies[normalised(raw.encode())] = transaction
        elif action == "quit":
            session.quit()
        elif action == "timeout":
            session.timed_out()
        elif action == "lost":
            session.connection_lost("fuzz")
        elif action == "abort":
            session.abort("fuzz")
        else:  # turns: the server's pending replies in, the client's bytes out
            for _ in range(data.draw(st.integers(1, 4), label="turns")):
                if not session.closed:
                    session.receive_data(wire)
                    server.heard += server.unheard
                    server.unheard = []
                limit = data.draw(st.sampled_from([1, 7, 100, 1 << 20]), label="write limit")
                written = b"".join(session.data_to_send(limit))
                assert not (closed and written), "bytes written after Closed"
                wire = server.take(written, given)
        while (event := session.next_event()) is not None:
            assert not closed, f"{event} after Closed"
            if isinstance(event, TransactionDone):
                assert all(event.transaction is not r.transaction for r in reported)
                reported.append(event)
            elif isinstance(event, StartTLS):
                if data.draw(st.booleans(), label="handshake fails"):
                    session.tls_failed("fuzz")
                else:
                    session.tls_established()
            elif isinstance(event, Closed):
                closed = True
            else:
                assert isinstance(event, (Ready, SessionFailed))
        if closed:
            break
    session.connection_lost("fuzz over")
    while (event := session.next_event()) is not None:
        if isinstance(event, TransactionDone):
            reported.append(event)

    count(f"delivered {min(sum(taken for *_, taken in server.heard), 3)}+")
    count(f"reported {min(len(reported), 3)}+")
    # Every message the server took is a submitted body, whole.
    # (RFC 2920 §3.1: a DATA taken with no recipient taken gets an empty message.)
    for body, taken_for, _ in server.heard + server.unheard:
        assert body in bodies or not (body or taken_for), f"a message no one sent: {body!r}"
    # Accepted only with the server's word, and every delivery reported accepted; one
    # whose end-of-data reply the client never heard is "possibly delivered", whatever
    # that reply was: never "not delivered", since the server may have taken it.
    delivered = {id(bodies[b]): rcpts for b, rcpts, taken in server.heard if taken and rcpts}
    unheard = {id(bodies[b]): rcpts for b, rcpts, _ in server.unheard if rcpts}
    for done in reported:
        accepted = [r.recipient for r in done.results if r.outcome is Outcome.ACCEPTED]
        assert sorted(accepted) == sorted(delivered.get(id(done.transaction), [])), done
        maybe = [r.recipient for r in done.results if r.outcome is Outcome.AMBIGUOUS]
        assert sorted(maybe) == sorted(unheard.get(id(done.transaction), [])), done
    # Every transaction once: reported, or never begun and handed back.
    left = session.unstarted()
    assert len(reported) + len(left) == len(submitted)
    assert {id(t) for t in submitted} == {id(d.transaction) for d in reported} | {
        id(t) for t in left
    }


@pytest.mark.parametrize("trap", [t for t in TRAPS if re.search("[\r\n\0<>]", t)])
def test_each_injecting_trap_is_refused_in_an_address(trap: str) -> None:
    """The traps above that must never pass, one by one (what the fuzz relies on)."""
    with pytest.raises(UnsafeArgumentError):
        commands.rcpt_to(f"ann{trap}@dest.test")
    with pytest.raises(UnsafeArgumentError):
        commands.mail_from(f"ann{trap}@dest.test")
