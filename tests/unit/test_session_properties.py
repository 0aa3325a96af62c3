"""Properties of the session that must hold for every chunking and every server.

1. A valid conversation gives the same events and the same bytes out however the
   server's bytes are split.
2. Whatever a server sends (garbage, mutated conversations, random replies in any order),
   the session raises nothing, fails only in the ways a server can make it fail, and
   accounts for every recipient of every transaction exactly once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.smtp import (
    ClientSession,
    Closed,
    Event,
    FailureKind,
    Outcome,
    Phase,
    Ready,
    SessionConfig,
    SessionFailed,
    StartTLS,
    TLSPolicy,
    Transaction,
    TransactionDone,
)
from tests.unit.smtp_script import (
    BYE,
    GO_AHEAD,
    GREETING,
    HELO_NAME,
    OK,
    QUEUED,
    ehlo_reply,
    reply,
    streamed,
    txn,
)

# ---- a conversation is a script of client actions and server turns --------------------

#: bytes: a server turn; a Transaction: submit it; "quit"; "tls": the handshake is done.
Step = bytes | Transaction | str


def submit(transaction: Transaction) -> Transaction:
    return transaction


quit_, tls_up = "quit", "tls"


def act(session: ClientSession, step: Transaction | str) -> None:
    if isinstance(step, Transaction):
        session.submit(step)
    elif step == quit_:
        session.quit()
    else:
        assert step == tls_up
        session.tls_established()


PLAIN = SessionConfig(HELO_NAME, tls=TLSPolicy.OFF)
MAY = SessionConfig(HELO_NAME, tls=TLSPolicy.MAY)
A, B, C = "a@dest.test", "b@dest.test", "c@dest.test"


@dataclass(frozen=True)
class Script:
    config: SessionConfig
    steps: tuple[Step, ...]


SCRIPTS = {
    "lock-step": Script(PLAIN, (
        b"220-mx.test ESMTP\r\n220 welcome\r\n",
        ehlo_reply("8BITMIME", "SIZE 100000", "ENHANCEDSTATUSCODES"),
        submit(txn(A, B, C, body=b"Subject: x\n\n.dot line\nend")),
        OK, OK, reply(550, "5.1.1 <b@dest.test>: Recipient address rejected"),
        reply(250, "2.1.5 forwarded"), GO_AHEAD, QUEUED,
        quit_, BYE,
    )),
    "pipelined": Script(PLAIN, (
        GREETING,
        ehlo_reply("PIPELINING", "8BITMIME", "SIZE"),
        submit(txn(A, B, body="Grüße\r\n".encode())),
        submit(txn(C, body=b"second\r\n")),
        submit(txn(A, needs_smtputf8=True)),
        OK + OK + reply(450, "4.2.0 Greylisted, try again in 300 seconds") + GO_AHEAD,
        QUEUED + OK + OK + GO_AHEAD,
        reply(451, "4.7.1 Please try again later"),
        quit_, BYE,
    )),
    "starttls": Script(MAY, (
        GREETING,
        ehlo_reply("STARTTLS", "PIPELINING"),
        reply(220, "2.0.0 Ready to start TLS"),
        tls_up,
        ehlo_reply("PIPELINING", "AUTH PLAIN LOGIN", "SMTPUTF8"),
        submit(txn("jürgen@dest.test", B)),
        OK + OK + OK + reply(554, "5.5.1 Error: no valid recipients"),
        OK,
        submit(txn(C, body=streamed([b"x" * 100 + b"\n"] * 30, size=3030))),
        OK + OK + GO_AHEAD,
        reply(250, "2.0.0 Ok: queued as 12345"),
        quit_, reply(221, "Bye"),
    )),
    "helo": Script(PLAIN, (
        GREETING,
        reply(502, "5.5.2 Error: command not recognized"),
        reply(250, "mx.test"),
        submit(txn(A, B)),
        submit(txn("ü@dest.test", C)),
        reply(553, "5.7.1 <sender@origin.test>: Sender address rejected"),
        OK, OK, GO_AHEAD,
        b"250 Ok\n",
        quit_, BYE,
    )),
    "rejected": Script(PLAIN, (
        reply(554, "5.7.1 mx.test: client host blocked", "see https://blocklist.test"),
        BYE,
    )),
    "service-closing": Script(PLAIN, (
        GREETING,
        ehlo_reply("PIPELINING"),
        submit(txn(A, B, C)),
        submit(txn(C)),
        OK + OK + reply(421, "4.4.2 mx.test Error: timeout exceeded"),
    )),
    "bare-lf-multiline": Script(PLAIN, (
        b"220 mx.test\n",
        b"250-mx.test\n250-PIPELINING\n250 ENHANCEDSTATUSCODES\n",
        submit(txn(A)),
        b"250 2.1.0 Ok\n250 2.1.5 Ok\n354 go\n",
        b"550-5.7.1 Message rejected\n550-5.7.1 as spam, see\n550 5.7.1 https://x.test\n",
        quit_,
        b"221 2.0.0 Bye\n",
    )),
}


LogEntry = tuple[str, object]


def run(
    script: Script, split: Callable[[bytes], list[bytes]] = lambda turn: [turn]
) -> list[LogEntry]:
    """Play a script; the log interleaves events, bytes written and the phase per turn."""
    session = ClientSession(script.config)
    log: list[LogEntry] = []

    def drain() -> None:
        while (event := session.next_event()) is not None:
            log.append(("event", event))
        written = b"".join(session.data_to_send())
        if written:
            log.append(("out", written))

    for step in script.steps:
        if isinstance(step, bytes):
            for chunk in split(step):
                session.receive_data(chunk)
                drain()
        else:
            act(session, step)
            drain()
        log.append(("phase", session.phase))
    return log


def test_scripts_are_valid_conversations() -> None:
    """The baseline the chunking property compares against is itself right."""
    for name, script in SCRIPTS.items():
        log = run(script)
        events = [what for kind, what in log if kind == "event"]
        failures = [e for e in events if isinstance(e, SessionFailed)]
        if name == "rejected":
            assert [f.kind for f in failures] == [FailureKind.REJECTED]
        elif name == "service-closing":
            assert [f.kind for f in failures] == [FailureKind.REJECTED]
            assert failures[0].reply is not None and failures[0].reply.code == 421
        else:
            assert failures == [], (name, failures)
        assert isinstance(events[-1], Closed), name
    pipelined = run(SCRIPTS["pipelined"])
    outcomes = [
        [(r.recipient, r.outcome) for r in e.results]
        for kind, e in pipelined
        if kind == "event" and isinstance(e, TransactionDone)
    ]
    assert outcomes == [
        [(A, Outcome.ACCEPTED), (B, Outcome.GREYLISTED)],
        [(A, Outcome.PERMANENT)],  # needs SMTPUTF8: refused when its turn came, unsent
        [(C, Outcome.GREYLISTED)],
    ]
    assert any(kind == "event" and isinstance(e, StartTLS) for kind, e in run(SCRIPTS["starttls"]))


@st.composite
def splitters(draw: st.DrawFn) -> Callable[[bytes], list[bytes]]:
    """A function that cuts each server turn at points drawn for it."""
    cuts = draw(st.lists(st.lists(st.integers(0, 4000), max_size=12), min_size=12, max_size=12))
    turns = itertools.count()

    def split(turn: bytes) -> list[bytes]:
        chosen = cuts[next(turns) % len(cuts)]
        points = sorted({c % (len(turn) + 1) for c in chosen} | {0, len(turn)})
        return [turn[a:b] for a, b in itertools.pairwise(points)]

    return split


def one_byte_at_a_time(turn: bytes) -> list[bytes]:
    return [turn[i : i + 1] for i in range(len(turn))]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_one_byte_at_a_time_is_the_same_conversation(name: str) -> None:
    assert run(SCRIPTS[name], one_byte_at_a_time) == run(SCRIPTS[name])


@pytest.mark.parametrize("name", sorted(SCRIPTS))
@given(split=splitters())
def test_any_chunking_is_the_same_conversation(
    name: str, split: Callable[[bytes], list[bytes]]
) -> None:
    assert run(SCRIPTS[name], split) == run(SCRIPTS[name])


# ---- hostile servers: no exception, no transaction lost or reported twice --------------


class Ledger:
    """Drives a session and checks that the account of every transaction balances."""

    def __init__(self, config: SessionConfig) -> None:
        self.session = ClientSession(config)
        self.submitted: list[Transaction] = []
        self.reported: list[Transaction] = []
        self.failures: list[SessionFailed] = []
        self.closed = False

    def submit(self, transaction: Transaction) -> None:
        if not (self.session.closed or self.failures or self.closed):
            try:
                self.session.submit(transaction)
            except Exception as error:  # only a session that is ending may refuse
                assert self.session.closed or "ending" in str(error)
                return
            self.submitted.append(transaction)

    def feed(self, data: bytes) -> None:
        self.session.receive_data(data)
        self.pump()

    def pump(self) -> None:
        session = self.session
        while True:
            session.data_to_send()
            event = session.next_event()
            if event is None:
                return
            self.check(event)

    def check(self, event: Event) -> None:
        assert not self.closed, f"{event} after Closed"
        if isinstance(event, TransactionDone):
            assert all(event.transaction is not t for t in self.reported), "reported twice"
            assert any(event.transaction is t for t in self.submitted), "never submitted"
            self.reported.append(event.transaction)
            assert [r.index for r in event.results] == list(
                range(len(event.transaction.recipients))
            ), "each recipient once, in order"
            for result in event.results:
                assert result.transaction is event.transaction
                if result.outcome is Outcome.ACCEPTED:
                    # Only the server's positive answer to the end of data delivers.
                    assert result.stage is Phase.END_OF_DATA
                    assert result.reply is not None and 200 <= result.reply.code < 300
                if result.outcome is Outcome.AMBIGUOUS:
                    assert result.reply is None and result.stage is Phase.END_OF_DATA
                if result.reply is None:
                    assert result.reason, "an outcome without a reply says why"
        elif isinstance(event, SessionFailed):
            assert not self.failures, "one failure per session"
            assert event.kind in (FailureKind.PROTOCOL, FailureKind.REJECTED, FailureKind.TLS,
                                  FailureKind.CLOSED), event
            self.failures.append(event)
        elif isinstance(event, Closed):
            self.closed = True
        elif isinstance(event, StartTLS):
            self.session.tls_established()
        else:
            assert isinstance(event, Ready)

    def end(self) -> None:
        """The server hangs up; now every transaction must be accounted for."""
        self.session.connection_lost("test over")
        self.pump()
        assert self.session.closed
        left = self.session.unstarted()
        accounted = self.reported + left
        assert len(accounted) == len(self.submitted)
        assert all(any(t is s for s in accounted) for t in self.submitted)


GARBAGE_WORDS = [
    b"220", b"250", b"354", b"421", b"450", b"451", b"550", b"554", b"221", b"252", b"500",
    b"502", b"334", b"199", b"-", b" ", b"\r\n", b"\n", b"\r", b"2.0.0 ", b"4.7.1 ",
    b"PIPELINING", b"STARTTLS", b"SIZE 10", b"SIZE \xc2\xb2", b"greylisted", b"\x00", b"\xff",
    b"x" * 300,
]
smtpish = st.lists(st.sampled_from(GARBAGE_WORDS), max_size=60).map(b"".join)
garbage = st.one_of(st.binary(max_size=300), smtpish)


def chunks_of(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(
    st.sampled_from([PLAIN, MAY, SessionConfig(HELO_NAME, tls=TLSPolicy.REQUIRE)]),
    st.sampled_from(["start", "greeted", "in-transaction", "after-354"]),
    garbage,
    st.lists(st.integers(0, 400), max_size=8),
)
def test_garbage_never_raises_and_loses_nothing(
    config: SessionConfig, where: str, data: bytes, cuts: list[int]
) -> None:
    ledger = Ledger(PLAIN if where == "after-354" else config)
    keywords = ("PIPELINING",) if config.tls is TLSPolicy.OFF else ("PIPELINING", "STARTTLS")
    prefix: list[bytes] = {
        "start": [],
        "greeted": [GREETING],
        "in-transaction": [GREETING, ehlo_reply(*keywords)],
        "after-354": [GREETING, ehlo_reply("PIPELINING"), OK + OK + GO_AHEAD],
    }[where]
    ledger.submit(txn(A, B))
    ledger.submit(txn(C))
    for turn in prefix:
        ledger.feed(turn)
    for chunk in chunks_of(data, cuts):
        ledger.feed(chunk)
    if ledger.failures and ledger.failures[0].kind is FailureKind.PROTOCOL:
        assert ledger.session.closed
    ledger.end()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, int, bytes]:
    name = draw(st.sampled_from(sorted(SCRIPTS)))
    turns = [i for i, step in enumerate(SCRIPTS[name].steps) if isinstance(step, bytes)]
    index = draw(st.sampled_from(turns))
    turn = SCRIPTS[name].steps[index]
    assert isinstance(turn, bytes)
    at = draw(st.integers(0, len(turn)))
    how = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
    if how == "flip" and at < len(turn):
        turn = turn[:at] + bytes([turn[at] ^ draw(st.integers(1, 255))]) + turn[at + 1 :]
    elif how == "insert":
        turn = turn[:at] + draw(garbage) + turn[at:]
    elif how == "delete":
        turn = turn[:at] + turn[at + draw(st.integers(1, 20)) :]
    else:
        turn = turn[:at]
    return name, index, turn


@given(mutated(), st.lists(st.integers(0, 400), max_size=8))
def test_mutated_conversations_never_raise_and_lose_nothing(
    mutation: tuple[str, int, bytes], cuts: list[int]
) -> None:
    name, index, replacement = mutation
    script = SCRIPTS[name]
    ledger = Ledger(script.config)
    for i, step in enumerate(script.steps):
        if i == index:
            step = replacement
        if isinstance(step, bytes):
            for chunk in chunks_of(step, cuts):
                ledger.feed(chunk)
        elif isinstance(step, Transaction):
            ledger.submit(step)
            ledger.pump()
        elif step == quit_:
            ledger.session.quit()
            ledger.pump()
        # "tls": the ledger completes a handshake as soon as it is asked for one
    ledger.end()


REPLY_CODES = [220, 221, 250, 251, 252, 354, 334, 421, 450, 451, 452, 454, 500, 502, 503,
               550, 552, 554]
#: The answer an ordinary server gives in each phase, so that random runs get deep.
USUAL = {Phase.GREETING: 220, Phase.EHLO: 250, Phase.HELO: 250, Phase.STARTTLS: 220,
         Phase.MAIL: 250, Phase.RCPT: 250, Phase.DATA: 354, Phase.END_OF_DATA: 250,
         Phase.RSET: 250, Phase.QUIT: 221}
REPLY_LINES = ["Ok", "2.0.0 Ok", "PIPELINING", "STARTTLS", "SMTPUTF8", "SIZE 50", "SIZE ²",
               "8BITMIME", "4.7.1 greylisted, retry in 5 minutes", ""]


@given(st.data(), st.sampled_from([PLAIN, MAY]))
def test_a_random_server_never_raises_and_loses_nothing(
    data: st.DataObject, config: SessionConfig
) -> None:
    ledger = Ledger(config)
    session = ledger.session
    for _ in range(data.draw(st.integers(0, 40), label="turns")):
        action = data.draw(st.sampled_from(["reply"] * 5 + ["submit"] * 2 + ["quit", "burst"]))
        if action == "submit":
            recipients = data.draw(st.lists(st.sampled_from([A, B, C, "ü@dest.test"]),
                                            min_size=1, max_size=3))
            ledger.submit(txn(*recipients, body=data.draw(st.sampled_from(
                [b"x\r\n", "é\r\n".encode(), b"y" * 80 + b"\r\n"]))))
            ledger.pump()
        elif action == "quit":
            session.quit()
            ledger.pump()
        else:
            turn = b""
            for _ in range(3 if action == "burst" else 1):
                usual = [st.just(USUAL[session.phase])] if session.phase in USUAL else []
                code = data.draw(st.one_of(*usual, st.sampled_from(REPLY_CODES)))
                lines = data.draw(st.lists(st.sampled_from(REPLY_LINES), min_size=1,
                                           max_size=4))
                turn += reply(code, *lines)
            ledger.feed(turn)
        if session.closed:
            break
    ledger.end()
