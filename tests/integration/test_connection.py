"""The connection driver against real SMTP servers on loopback: our scriptable lab server
and aiosmtpd, a server we did not write. Every conversation goes over a real socket."""

from __future__ import annotations

import asyncio
import socket

import pytest

from core.connection import ConnectionConfig, ListSource, SMTPConnection, Target, deliver
from core.lab import Behaviour, Fault, LabServer, Stage, TLSMode, unknown_users
from core.lab.aiosmtpd_server import AiosmtpdServer
from core.smtp import Body, FailureKind, Outcome, Phase, SessionConfig, TLSPolicy, Transaction
from tests.integration.support import (
    SENDER,
    config,
    message,
    outcomes,
    target,
    transactions,
)

# ---- delivering ---------------------------------------------------------------------------


async def test_pipelined_transactions_on_one_connection_arrive_exactly_once() -> None:
    async with LabServer() as server:
        txns = transactions(25, per_message=2)
        report = await deliver(target(server), txns, config())
        await server.wait_until_idle()
    assert report.failure is None
    assert report.extensions.pipelining
    assert outcomes(report.results) == [Outcome.ACCEPTED] * 50
    assert server.stats.connections == 1
    received = sorted((m.recipients, m.data) for m in server.messages)
    expected = sorted((t.recipients, message(n)) for n, t in enumerate(txns))
    assert received == expected
    commands = server.connections[0].commands
    assert commands[0] == "EHLO client.test"
    assert commands[-1] == "QUIT"
    assert sum(c.startswith("MAIL FROM:") for c in commands) == 25


async def test_lock_step_without_pipelining() -> None:
    async with LabServer(Behaviour(pipelining=False)) as server:
        report = await deliver(target(server), transactions(5, per_message=3), config())
    assert report.failure is None
    assert not report.extensions.pipelining
    assert outcomes(report.results) == [Outcome.ACCEPTED] * 15
    assert len(server.messages) == 5


async def test_helo_only_server_gets_helo_after_502() -> None:
    async with LabServer(Behaviour(helo_only=True)) as server:
        report = await deliver(target(server), transactions(2), config())
    assert report.failure is None
    assert outcomes(report.results) == [Outcome.ACCEPTED] * 2
    assert server.connections[0].commands[:2] == ["EHLO client.test", "HELO client.test"]
    assert all(m.mail_options == () for m in server.messages)


async def test_aiosmtpd_a_server_we_did_not_write() -> None:
    async with AiosmtpdServer() as server:
        txns = transactions(10, per_message=2)
        report = await deliver(target(server), txns, config())
        await server.wait_for_messages(10)
    assert report.failure is None
    assert outcomes(report.results) == [Outcome.ACCEPTED] * 20
    assert sorted(m.data for m in server.messages) == sorted(message(n) for n in range(10))


async def test_size_and_8bitmime_parameters_sent_when_advertised_and_needed() -> None:
    eight_bit = Transaction(
        SENDER, ("a@lab.test",), Body.from_bytes("Subject: x\r\n\r\nGrüße\r\n".encode())
    )
    seven_bit = Transaction(SENDER, ("b@lab.test",), Body.from_bytes(message(1)))
    async with LabServer() as server:
        report = await deliver(target(server), [eight_bit, seven_bit], config())
    assert report.failure is None
    mails = [c for c in server.connections[0].commands if c.startswith("MAIL")]
    assert mails == [
        f"MAIL FROM:<{SENDER}> SIZE={eight_bit.body.size} BODY=8BITMIME",
        f"MAIL FROM:<{SENDER}> SIZE={seven_bit.body.size}",
    ]


async def test_null_sender() -> None:
    async with LabServer() as server:
        bounce = Transaction("", ("postmaster@lab.test",), Body.from_bytes(message(0)))
        report = await deliver(target(server), [bounce], config())
    assert outcomes(report.results) == [Outcome.ACCEPTED]
    assert server.connections[0].commands[1].startswith("MAIL FROM:<> ")


async def test_message_over_the_servers_size_limit_is_refused_without_sending() -> None:
    big = Transaction(SENDER, ("a@lab.test",), Body.from_bytes(message(0, b"x" * 900 + b"\r\n")))
    async with LabServer(Behaviour(size_limit=500)) as server:
        report = await deliver(target(server), [big, *transactions(1)], config())
    assert outcomes(report.results) == [Outcome.PERMANENT, Outcome.ACCEPTED]
    assert "limit of 500 octets" in report.results[0].reason
    assert sum(c.startswith("MAIL") for c in server.connections[0].commands) == 1


async def test_internationalised_address_to_a_server_without_smtputf8() -> None:
    txn = Transaction(SENDER, ("jörg@lab.test", "plain@lab.test"), Body.from_bytes(message(0)))
    async with LabServer(Behaviour(smtputf8=False)) as server:
        report = await deliver(target(server), [txn], config())
    assert outcomes(report.results) == [Outcome.PERMANENT, Outcome.ACCEPTED]
    assert "SMTPUTF8" in report.results[0].reason
    assert server.messages[0].recipients == ("plain@lab.test",)


async def test_internationalised_address_with_smtputf8() -> None:
    txn = Transaction(SENDER, ("jörg@lab.test",), Body.from_bytes(message(0)))
    async with LabServer() as server:
        report = await deliver(target(server), [txn], config())
    assert outcomes(report.results) == [Outcome.ACCEPTED]
    assert "SMTPUTF8" in server.messages[0].mail_options


async def test_streamed_large_body_arrives_intact() -> None:
    line = b"0123456789" * 7 + b"\n"
    chunk = line * 1000  # LF line endings: the encoder makes them CRLF on the way out
    chunks = 300  # about 21 MB
    size = (len(line) + 1) * 1000 * chunks
    body = Body.from_chunks(lambda: (chunk for _ in range(chunks)), size=size, eight_bit=False)
    async with LabServer(Behaviour(size_limit=64 * 1024 * 1024)) as server:
        txn = Transaction(SENDER, ("a@lab.test",), body)
        report = await deliver(target(server), [txn], config())
    assert outcomes(report.results) == [Outcome.ACCEPTED]
    data = server.messages[0].data
    assert len(data) == len(line) * 1000 * chunks + 1000 * chunks  # every LF became CRLF
    assert data == chunk.replace(b"\n", b"\r\n") * chunks


# ---- refusals, per recipient and per connection ---------------------------------------------


async def test_each_rcpt_reply_decides_for_its_recipient() -> None:
    behaviour = Behaviour(
        faults=(
            unknown_users("r0-1@lab.test"),
            Fault(Stage.RCPT, 452, "4.2.2 Mailbox full", only={"r0-2@lab.test"}),
        )
    )
    async with LabServer(behaviour) as server:
        report = await deliver(target(server), transactions(1, per_message=3), config())
    assert outcomes(report.results) == [Outcome.ACCEPTED, Outcome.PERMANENT, Outcome.TRANSIENT]
    unknown = report.results[1]
    assert unknown.reply is not None
    assert (unknown.reply.code, str(unknown.reply.enhanced)) == (550, "5.1.1")
    assert unknown.stage is Phase.RCPT
    assert server.messages[0].recipients == ("r0-0@lab.test",)


async def test_greylisted_first_then_accepted_on_the_next_connection() -> None:
    from core.lab import Greylist

    async with LabServer(Behaviour(greylist=Greylist(retry_after=120))) as server:
        first = await deliver(target(server), transactions(1), config())
        second = await deliver(target(server), transactions(1), config())
    assert outcomes(first.results) == [Outcome.GREYLISTED]
    assert first.results[0].retry_after == 120.0
    assert outcomes(second.results) == [Outcome.ACCEPTED]
    assert len(server.messages) == 1


@pytest.mark.parametrize(
    ("stage", "code", "expected"),
    [
        (Stage.MAIL, 451, Outcome.TRANSIENT),
        (Stage.MAIL, 553, Outcome.PERMANENT),
        (Stage.DATA, 554, Outcome.PERMANENT),
        (Stage.END_OF_DATA, 452, Outcome.TRANSIENT),
        (Stage.END_OF_DATA, 550, Outcome.PERMANENT),
    ],
)
async def test_a_transaction_reply_decides_for_all_its_recipients(
    stage: Stage, code: int, expected: Outcome
) -> None:
    fault = Fault(stage, code, f"{code // 100}.7.1 Refused here", times=1)
    async with LabServer(Behaviour(faults=(fault,))) as server:
        report = await deliver(target(server), transactions(2, per_message=2), config())
    assert report.failure is None
    assert outcomes(report.results) == [expected, expected, Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert report.results[0].reply is not None and report.results[0].reply.code == code
    assert len(server.messages) == 1


@pytest.mark.parametrize("stage", [Stage.GREETING, Stage.EHLO])
@pytest.mark.parametrize("code", [421, 450, 554])
async def test_refusal_before_any_transaction_leaves_everyone_unattempted(
    stage: Stage, code: int
) -> None:
    async with LabServer(Behaviour(faults=(Fault(stage, code, "4.3.0 Not now"),))) as server:
        report = await deliver(target(server), transactions(3), config())
    assert report.failure is not None
    assert report.failure.kind is FailureKind.REJECTED
    assert report.failure.reply is not None and report.failure.reply.code == code
    assert outcomes(report.results) == [Outcome.UNATTEMPTED] * 3
    assert server.messages == []


async def test_421_at_rcpt_decides_that_recipient_and_frees_the_rest() -> None:
    fault = Fault(Stage.RCPT, 421, "4.3.2 Going down", only={"r0-1@lab.test"})
    async with LabServer(Behaviour(faults=(fault,))) as server:
        report = await deliver(target(server), transactions(2, per_message=3), config())
    assert report.failure is not None and report.failure.kind is FailureKind.REJECTED
    assert outcomes(report.results) == [
        Outcome.TRANSIENT,  # accepted, but the message never went out
        Outcome.TRANSIENT,  # the 421 itself
        Outcome.UNATTEMPTED,
        Outcome.UNATTEMPTED,
        Outcome.UNATTEMPTED,
        Outcome.UNATTEMPTED,
    ]
    assert server.messages == []


async def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = await deliver(Target("mx.lab.test", "127.0.0.1", port), transactions(2), config())
    assert report.failure is not None
    assert (report.failure.kind, report.failure.phase) == (FailureKind.REFUSED, Phase.CONNECT)
    assert outcomes(report.results) == [Outcome.UNATTEMPTED] * 2


async def test_max_transactions_per_connection() -> None:
    async with LabServer() as server:
        cfg = ConnectionConfig(SessionConfig("client.test", TLSPolicy.OFF), max_transactions=3)
        report = await deliver(target(server), transactions(5), cfg)
    assert outcomes(report.results) == [Outcome.ACCEPTED] * 3 + [Outcome.UNATTEMPTED] * 2
    assert report.transactions == 3
    assert server.connections[0].commands[-1] == "QUIT"


# ---- STARTTLS -------------------------------------------------------------------------------


async def test_opportunistic_tls_encrypts_when_offered() -> None:
    async with LabServer(Behaviour(tls=TLSMode.OFFER)) as server:
        report = await deliver(target(server), transactions(2), config(TLSPolicy.MAY))
    assert report.failure is None
    assert report.tls is not None and report.tls.version.startswith("TLSv1.")
    assert report.tls.cipher
    assert all(m.tls for m in server.messages) and len(server.messages) == 2
    assert not report.extensions.starttls  # the second EHLO no longer offers it


async def test_tls_off_never_starts_tls() -> None:
    async with LabServer(Behaviour(tls=TLSMode.OFFER)) as server:
        report = await deliver(target(server), transactions(1), config(TLSPolicy.OFF))
    assert report.tls is None
    assert not server.messages[0].tls
    assert "STARTTLS" not in server.connections[0].commands


async def test_aiosmtpd_starttls() -> None:
    async with AiosmtpdServer(starttls=True, require_starttls=True) as server:
        report = await deliver(target(server), transactions(1), config(TLSPolicy.MAY))
        await server.wait_for_messages(1)
    assert report.failure is None and report.tls is not None
    assert server.messages[0].tls


async def test_require_tls_fails_when_not_offered() -> None:
    async with LabServer() as server:
        report = await deliver(target(server), transactions(1), config(TLSPolicy.REQUIRE))
    assert report.failure is not None and report.failure.kind is FailureKind.TLS
    assert outcomes(report.results) == [Outcome.UNATTEMPTED]
    assert server.connections[0].commands == ["EHLO client.test", "QUIT"]


@pytest.mark.parametrize(
    ("policy", "delivered"), [(TLSPolicy.MAY, True), (TLSPolicy.REQUIRE, False)]
)
async def test_starttls_refused(policy: TLSPolicy, delivered: bool) -> None:
    async with LabServer(Behaviour(tls=TLSMode.REFUSE)) as server:
        report = await deliver(target(server), transactions(1), config(policy))
    assert (report.failure is None) is delivered
    assert outcomes(report.results) == [
        Outcome.ACCEPTED if delivered else Outcome.UNATTEMPTED
    ]


async def test_broken_tls_handshake_is_a_tls_failure() -> None:
    async with LabServer(Behaviour(tls=TLSMode.BROKEN)) as server:
        report = await deliver(
            target(server), transactions(1), config(TLSPolicy.MAY, tls_handshake=5.0)
        )
    assert report.failure is not None and report.failure.kind is FailureKind.TLS
    assert outcomes(report.results) == [Outcome.UNATTEMPTED]
    assert server.messages == []


# ---- transcript and cancellation ----------------------------------------------------------------


async def test_transcript_shows_the_conversation_with_the_body_redacted() -> None:
    secret = b"The secret body line\r\n"
    txn = Transaction(SENDER, ("a@lab.test",), Body.from_bytes(message(0, secret)))
    async with LabServer() as server:
        report = await deliver(target(server), [txn], config())
    lines = report.transcript.lines()
    text = "\n".join(lines)
    assert "C: EHLO client.test" in text
    assert "S: 220 mx.lab.test" in text
    assert f"C: <message body, {txn.body.size} octets>" in text
    assert "C: RCPT TO:<a@lab.test>" in text
    assert "C: QUIT" in text
    assert "secret" not in text
    assert all(line[2] == ":" and line[5] == ":" for line in lines)  # timestamped


async def test_cancelling_a_connection_settles_every_recipient() -> None:
    from core.lab import Act, Hostile

    seen: list[Outcome] = []
    silent_data = Hostile(Stage.END_OF_DATA, Act.SILENCE)
    async with LabServer(Behaviour(hostile=(silent_data,))) as server:
        connection = SMTPConnection(
            target(server), config(), ListSource(transactions(1)), lambda r: seen.append(r.outcome)
        )
        task = asyncio.ensure_future(connection.run())
        await server.wait_for(lambda: server.stats.unanswered == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen == [Outcome.AMBIGUOUS]


async def test_an_address_with_crlf_fails_alone_and_injects_nothing() -> None:
    evil = Transaction(
        SENDER, ("victim@lab.test>\r\nRCPT TO:<extra@lab.test",), Body.from_bytes(message(0))
    )
    async with LabServer() as server:
        report = await deliver(target(server), [evil, *transactions(1)], config())
    assert outcomes(report.results) == [Outcome.PERMANENT, Outcome.ACCEPTED]
    assert "not allowed in an SMTP command" in report.results[0].reason
    commands = server.connections[0].commands
    assert not any("extra@lab.test" in command for command in commands)
    assert [m.recipients for m in server.messages] == [("r0-0@lab.test",)]
