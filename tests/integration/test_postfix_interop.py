"""The driver against a real Postfix behind a real postgrey: what most MX hosts we deliver to
run, and the greylisting many put in front of it. The lab servers show the driver does what
we think SMTP says; these show Postfix agrees: its greylisting reply is classified as such,
the retry gets through, PIPELINING and dot-stuffing survive, 8-bit bodies and STARTTLS work,
and what lands in the mailbox is byte for byte what we sent.

One Postfix (with STARTTLS and postgrey) serves the module, because starting one costs about
two seconds; each test uses its own sender, so its greylisting triplets and its mailbox
filter are its own. Skipped without Postfix and postgrey, except under CI, where it fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from core.connection import ConnectionConfig, ConnectionReport, Target, Timeouts, deliver
from core.smtp import (
    Body,
    Outcome,
    Phase,
    RecipientResult,
    ReplyKind,
    SessionConfig,
    TLSPolicy,
    Transaction,
    classify,
)
from tests.integration.mta import (
    PostfixMX,
    RecordingProxy,
    as_stored,
    iter_header_names,
    split_prepended,
)

DOMAIN = "interop.test"
#: postgrey's --delay. Its clock is whole seconds, so the wait is between 1 and 2 s.
GREYLIST_DELAY = 2
#: Added to the wait the greylisting asked for: postgrey reads the wall clock, we the
#: monotonic one, and the two may drift apart by a few parts per million.
CLOCK_MARGIN = 0.1
#: After that wait, how often and how long to keep retrying.
RETRY_STEP = 0.5
RETRY_LIMIT = 20.0
DATE = "Tue, 25 Nov 2025 09:00:00 +0000"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def mx() -> Iterator[PostfixMX]:
    with PostfixMX(DOMAIN, greylist_delay=GREYLIST_DELAY, tls=True) as server:
        yield server


def config(tls: TLSPolicy = TLSPolicy.OFF, server: PostfixMX | None = None) -> ConnectionConfig:
    """Our client's settings, with short timeouts: Postfix on loopback answers in
    milliseconds, and a hung test should fail well inside the module's time."""
    context = server.tls.client_context() if server is not None and server.tls else None
    return ConnectionConfig(
        SessionConfig("client.test", tls),
        Timeouts(connect=5, greeting=10, command=10, data=10, end_of_data=10, quit=5),
        tls_context=context,
    )


def message(sender: str, recipient: str, subject: str, body: bytes) -> bytes:
    """A complete message with the headers a real one has, so Postfix adds none of its own
    (it adds Date and Message-Id only when missing, and only for local clients)."""
    head = (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n"
        f"Date: {DATE}\r\nMessage-ID: <{subject.replace(' ', '-')}@sender.test>\r\n\r\n"
    )
    return head.encode() + body


def transaction(sender: str, recipient: str, subject: str, body: bytes) -> Transaction:
    """One message to one recipient; its tag is the message as given, to compare with
    what Postfix stored (``Body.wire`` is dot-stuffed)."""
    data = message(sender, recipient, subject, body)
    return Transaction(sender, (recipient,), Body.from_bytes(data), tag=data)


def sent(txn: Transaction) -> bytes:
    """The message ``transaction()`` was given."""
    assert isinstance(txn.tag, bytes)
    return txn.tag


def explain(report: ConnectionReport, server: PostfixMX) -> str:
    """Our side of the conversation and Postfix's logs, for assertion messages."""
    return "\n".join(report.transcript.lines()) + "\n" + server.log_tail()


# ---- getting past greylisting ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery that was greylisted first: the first connection, then every retry."""

    first: ConnectionReport
    retries: list[ConnectionReport]

    @property
    def accepted(self) -> ConnectionReport:
        return self.retries[-1]


def regroup(results: list[RecipientResult]) -> list[Transaction]:
    """The transactions again, each with only the recipients in ``results``, in order: what
    a scheduler sends when it retries greylisted recipients."""
    grouped: dict[int, tuple[Transaction, list[str]]] = {}
    for result in results:
        txn = result.transaction
        grouped.setdefault(id(txn), (txn, []))[1].append(result.recipient)
    return [
        Transaction(txn.sender, tuple(rcpts), txn.body, txn.needs_smtputf8, txn.tag)
        for txn, rcpts in grouped.values()
    ]


async def deliver_past_greylisting(
    server: PostfixMX,
    txns: list[Transaction],
    cfg: ConnectionConfig,
    target: Target | None = None,
) -> Delivery:
    """Deliver ``txns``, which must all be greylisted at first; then wait as long as the
    reply asked (its hint, else postgrey's configured delay) and retry what is still
    greylisted every ``RETRY_STEP`` s, up to ``RETRY_LIMIT`` s, until all is accepted.

    The first wait is the time the server set, not a guess at when something will be
    ready: postgrey accepts once ``delay`` whole seconds of its clock passed since it first
    saw the triplet, which is at most ``delay`` seconds after it answered, so the first
    retry passes. Retrying earlier only gets greylisted again (postgrey counts from the
    first attempt); the loop is the bound on a server that keeps refusing.
    """
    target = target or server.target()
    first = await deliver(target, txns, cfg)
    answered = time.monotonic()
    assert first.failure is None, explain(first, server)
    assert all(r.outcome is Outcome.GREYLISTED for r in first.results), explain(first, server)
    hints = [r.retry_after for r in first.results if r.retry_after is not None]
    assert server.greylist_delay is not None
    wait = max(hints) if hints else float(server.greylist_delay)
    await asyncio.sleep(max(0.0, answered + wait + CLOCK_MARGIN - time.monotonic()))

    deadline = time.monotonic() + RETRY_LIMIT
    pending = list(first.results)
    retries: list[ConnectionReport] = []
    while True:
        report = await deliver(target, regroup(pending), cfg)
        retries.append(report)
        assert report.failure is None, explain(report, server)
        pending = [r for r in report.results if r.outcome is Outcome.GREYLISTED]
        unexpected = [
            r for r in report.results if r.outcome not in (Outcome.ACCEPTED, Outcome.GREYLISTED)
        ]
        assert not unexpected, explain(report, server)
        if not pending:
            return Delivery(first, retries)
        assert time.monotonic() + RETRY_STEP < deadline, (
            f"still greylisted {RETRY_LIMIT} s after the wait\n" + explain(report, server)
        )
        await asyncio.sleep(RETRY_STEP)


# ---- the wire, as a proxy saw it ----------------------------------------------------------


def seen_before(
    record: list[tuple[str, bytes]], client: bytes, server: bytes, *, nth: int = 1
) -> bool:
    """True if the client had sent the ``nth`` ``client`` before the server's first
    ``server`` reached the proxy (so before the client could have read it): that command
    was pipelined.

    Works on each direction's whole stream, so a command split across reads still counts
    at the read that completed it."""
    streams = {"C": b"", "S": b""}
    ends: dict[str, list[tuple[int, int]]] = {"C": [], "S": []}  # (stream length, index)
    for index, (tag, data) in enumerate(record):
        streams[tag] += data
        ends[tag].append((len(streams[tag]), index))

    def index_of(tag: str, needle: bytes, nth: int) -> int:
        found = -1
        for _ in range(nth):
            found = streams[tag].find(needle, found + 1)
            assert found >= 0, f"{needle!r} did not go by {nth} times ({tag})"
        return next(index for end, index in ends[tag] if end >= found + len(needle))

    return index_of("C", client, nth) < index_of("S", server, 1)


# ---- the tests ----------------------------------------------------------------------------


async def test_greylisted_first_then_accepted_and_stored_byte_for_byte(mx: PostfixMX) -> None:
    """postgrey's real reply (450 4.2.0 "Greylisted, see http://postgrey...", no retry
    hint) must classify as greylisting, or the scheduler would back off as for a failure;
    and after the retry, Postfix must store exactly what we sent under its trace headers."""
    sender, recipient = "greylist@sender.test", f"someone@{DOMAIN}"
    txn = transaction(sender, recipient, "greylisting", b"Hello from the interop test.\r\n")

    delivery = await deliver_past_greylisting(mx, [txn], config())

    [greylisted] = delivery.first.results
    reply = greylisted.reply
    assert reply is not None
    assert (reply.code, str(reply.enhanced), greylisted.stage) == (450, "4.2.0", Phase.RCPT)
    assert "Greylisted, see http://postgrey" in reply.text
    assert classify(reply).kind is ReplyKind.GREYLISTED
    [accepted] = delivery.accepted.results
    assert accepted.outcome is Outcome.ACCEPTED
    assert accepted.reply is not None and "queued as" in accepted.reply.text

    [stored] = await mx.wait_for_messages(1, recipient)
    trace, content = split_prepended(stored)
    assert content == as_stored(sent(txn))
    assert list(iter_header_names(stored)) == [
        "Return-Path",
        "X-Original-To",
        "Delivered-To",
        "X-Greylist",
        "Received",
    ]
    assert trace[0] == f"Return-Path: <{sender}>\n".encode()


async def test_pipelined_transactions_on_one_connection_all_delivered(mx: PostfixMX) -> None:
    """PIPELINING against Postfix's own implementation of it, including the hard case of a
    pipelined DATA after every RCPT was greylisted (Postfix then answers DATA with 554)."""
    sender = "pipelining@sender.test"
    txns = [
        transaction(sender, f"pipe{n}@{DOMAIN}", f"pipelined {n}", f"Message {n}.\r\n".encode())
        for n in range(4)
    ]
    async with RecordingProxy(mx.target()) as proxy:
        delivery = await deliver_past_greylisting(mx, txns, config(), proxy.target())

    assert delivery.first.extensions.pipelining
    # Greylisted: every RCPT refused, Postfix answers the pipelined DATA with 554 and we
    # go on to the next transaction on the same connection.
    assert delivery.first.transactions == 4
    assert [len(r.results) for r in delivery.retries] == [4]
    assert delivery.accepted.transactions == 4
    assert all(r.outcome is Outcome.ACCEPTED for r in delivery.accepted.results)
    assert len(proxy.connections) == 2  # the greylisted connection and the accepted one
    first_wire, accepted_wire = proxy.connections
    # RFC 2920: the envelope went before Postfix answered MAIL; after the 354, the body,
    # its end and the next envelope went before Postfix answered the end of data.
    assert seen_before(first_wire, b"RCPT TO:<pipe0@", b"250 2.1.0")
    assert seen_before(accepted_wire, b"RCPT TO:<pipe0@", b"250 2.1.0")
    assert seen_before(accepted_wire, b"MAIL FROM:<pipelining@", b"queued as", nth=2)
    assert mx.log_lines("improper command pipelining") == []

    for n, txn in enumerate(txns):
        [stored] = await mx.wait_for_messages(1, f"pipe{n}@{DOMAIN}")
        assert split_prepended(stored)[1] == as_stored(sent(txn))


async def test_relaying_and_unknown_users_are_refused_for_good(mx: PostfixMX) -> None:
    """Each RCPT reply decides for its own recipient: a 554 relay refusal and a 550 unknown
    user are permanent, while the recipient beside them is only greylisted."""
    sender = "refused@sender.test"
    recipients = (f"known@{DOMAIN}", "someone@elsewhere.test", f"no.such.user@{DOMAIN}")
    body = Body.from_bytes(message(sender, recipients[0], "refusals", b"Hello.\r\n"))
    report = await deliver(mx.target(), [Transaction(sender, recipients, body)], config())

    assert report.failure is None, explain(report, mx)
    known, elsewhere, unknown = report.results
    assert known.outcome is Outcome.GREYLISTED
    assert elsewhere.outcome is Outcome.PERMANENT
    assert elsewhere.reply is not None
    assert (elsewhere.reply.code, str(elsewhere.reply.enhanced)) == (554, "5.7.1")
    assert "Relay access denied" in elsewhere.reply.text
    assert unknown.outcome is Outcome.PERMANENT
    assert unknown.reply is not None
    assert (unknown.reply.code, str(unknown.reply.enhanced)) == (550, "5.1.1")
    assert "User unknown" in unknown.reply.text
    assert mx.maildir_messages(recipients[0]) == []


async def test_lines_starting_with_a_dot_arrive_intact(mx: PostfixMX) -> None:
    """Our dot-stuffing and Postfix's un-stuffing must be inverses: a line that is only a
    dot would otherwise end the message early, and a leading dot would be lost."""
    sender, recipient = "dots@sender.test", f"dots@{DOMAIN}"
    body = (
        b".\r\n"  # a line that is only a dot: the end marker, if not stuffed
        b"..\r\n"
        b".leading dot\r\n"
        b"...three dots\r\n"
        b"a line that ends with a dot.\r\n"
        b". \r\n"
        b"\r\n.\r\n"
        b"."  # the last line, with no line end: the encoder must add one before ".\r\n"
    )
    txn = transaction(sender, recipient, "dots", body)
    await deliver_past_greylisting(mx, [txn], config())

    [stored] = await mx.wait_for_messages(1, recipient)
    content = split_prepended(stored)[1]
    assert content == as_stored(message(sender, recipient, "dots", body[:-1] + b".\r\n"))


async def test_8bitmime_body_arrives_intact(mx: PostfixMX) -> None:
    """An 8-bit body is declared (BODY=8BITMIME) and stored unchanged: no byte >= 128 may
    be altered or stripped on the way."""
    sender, recipient = "eightbit@sender.test", f"utf8@{DOMAIN}"
    body = "Grüße aus Köln, 日本語, ça va? ½ € ✓\r\n".encode() + bytes(range(128, 256)) + b"\r\n"
    txn = transaction(sender, recipient, "eight bit", body)
    delivery = await deliver_past_greylisting(mx, [txn], config())

    assert delivery.accepted.extensions.eightbitmime
    mails = [line for line in delivery.accepted.transcript.lines() if "MAIL FROM:" in line]
    assert mails and mails[0].endswith(f"SIZE={txn.body.size} BODY=8BITMIME")
    [stored] = await mx.wait_for_messages(1, recipient)
    assert split_prepended(stored)[1] == as_stored(sent(txn))


async def test_starttls_required_and_verified(mx: PostfixMX) -> None:
    """STARTTLS with OpenSSL on the other end (not Python's ssl on both), certificate
    verified against the lab CA, on the greylisted connection and on the retry."""
    sender, recipient = "tls@sender.test", f"secure@{DOMAIN}"
    txn = transaction(sender, recipient, "over tls", b"Sent over STARTTLS.\r\n")
    delivery = await deliver_past_greylisting(mx, [txn], config(TLSPolicy.REQUIRE, mx))

    for report in (delivery.first, *delivery.retries):
        assert report.tls is not None, explain(report, mx)
        assert report.tls.version in ("TLSv1.2", "TLSv1.3")
    [stored] = await mx.wait_for_messages(1, recipient)
    trace, content = split_prepended(stored)
    assert content == as_stored(sent(txn))
    received = next(header for header in trace if header.startswith(b"Received:"))
    assert b"with ESMTPS" in received
    tls = delivery.accepted.tls
    assert tls is not None
    assert f"(using {tls.version}".encode() in received


async def test_lock_step_when_postfix_does_not_offer_pipelining() -> None:
    """Without PIPELINING each command waits for the previous reply; the proxy is the judge
    (Postfix only checks the commands that must end a group, such as DATA). This instance's
    postgrey also says how long to wait ("%s seconds"), and the retry honours that hint."""
    hint_text = "Greylisted, please try again in %s seconds"
    async with PostfixMX(
        DOMAIN, greylist_delay=GREYLIST_DELAY, greylist_text=hint_text, pipelining=False
    ) as server:
        sender = "lockstep@sender.test"
        txns = [
            transaction(sender, f"step{n}@{DOMAIN}", f"lock step {n}", b"One at a time.\r\n")
            for n in range(3)
        ]
        async with RecordingProxy(server.target()) as proxy:
            delivery = await deliver_past_greylisting(server, txns, config(), proxy.target())

        assert not delivery.first.extensions.pipelining
        [greylisted, *_] = delivery.first.results
        assert greylisted.reply is not None
        assert (greylisted.reply.code, str(greylisted.reply.enhanced)) == (450, "4.2.0")
        assert "Greylisted, please try again in" in greylisted.reply.text
        hints = [r.retry_after for r in delivery.first.results]
        assert all(hint is not None and 0 < hint <= GREYLIST_DELAY for hint in hints), hints
        assert all(r.outcome is Outcome.ACCEPTED for r in delivery.accepted.results)
        accepted_wire = proxy.connections[-1]
        assert not seen_before(accepted_wire, b"RCPT TO:<step0@", b"250 2.1.0")
        assert not seen_before(accepted_wire, b"DATA\r\n", b"250 2.1.5")
        assert not seen_before(accepted_wire, b"MAIL FROM:<lockstep@", b"queued as", nth=2)
        for n, txn in enumerate(txns):
            [stored] = await server.wait_for_messages(1, f"step{n}@{DOMAIN}")
            assert split_prepended(stored)[1] == as_stored(sent(txn))
