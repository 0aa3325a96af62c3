"""Scripted replies: faults at each stage, 421s, unknown users, greylisting."""

from __future__ import annotations

import pytest

from core.lab import Behaviour, Fault, Greylist, LabServer, Stage, service_closing, unknown_users
from tests.lab.client import RawClient, Reply


async def run_transaction(client: RawClient) -> list[Reply]:
    """EHLO, MAIL, RCPT, DATA, body, QUIT lock-step; the replies up to the first failure."""
    replies = [await client.hello()]
    if replies[0].code >= 400:
        return replies
    for line in ("MAIL FROM:<a@s.test>", "RCPT TO:<b@r.test>", "DATA"):
        replies.append(await client.command(line))
        if replies[-1].code >= 400:
            return replies
    await client.send(b"body\r\n.\r\n")
    replies.append(await client.reply())
    return replies


@pytest.mark.parametrize(
    ("stage", "position"),
    [(Stage.EHLO, 0), (Stage.MAIL, 1), (Stage.RCPT, 2), (Stage.DATA, 3), (Stage.END_OF_DATA, 4)],
)
@pytest.mark.parametrize("code", [451, 554])
async def test_a_fault_replaces_the_reply_at_its_stage(
    stage: Stage, position: int, code: int
) -> None:
    fault = Fault(stage, code, f"{code // 100}.7.1 Scripted no at {stage.value}")
    async with (
        LabServer(Behaviour(faults=(fault,))) as server,
        await RawClient.connect(server.address) as client,
    ):
        if stage is Stage.EHLO:
            await client.reply()
            replies = [await client.command("EHLO c.lab.test")]
        else:
            replies = await run_transaction(client)
        assert replies[position].first == f"{code} {code // 100}.7.1 Scripted no at {stage.value}"
        assert len(replies) == position + 1
        assert (await client.command("NOOP")).code == 250  # the connection goes on
    assert server.messages == []


async def test_a_fault_at_the_greeting_leaves_only_quit() -> None:
    fault = Fault(Stage.GREETING, 554, "5.7.1 No SMTP service here")
    async with (
        LabServer(Behaviour(faults=(fault,))) as server,
        await RawClient.connect(server.address) as client,
    ):
        assert (await client.reply()).first == "554 5.7.1 No SMTP service here"
        assert (await client.command("EHLO c.lab.test")).code == 503
        assert (await client.command("QUIT")).code == 221
        assert await client.read_some() == b""


@pytest.mark.parametrize(
    "stage", [Stage.GREETING, Stage.EHLO, Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.END_OF_DATA]
)
async def test_421_at_any_stage_then_close(stage: Stage) -> None:
    async with (
        LabServer(Behaviour(faults=(service_closing(stage),))) as server,
        await RawClient.connect(server.address) as client,
    ):
        if stage is Stage.GREETING:
            replies = [await client.reply()]
        else:
            replies = await run_transaction(client)
        assert replies[-1].first.startswith("421 4.3.2 Service shutting down")
        assert await client.read_some() == b""
    assert server.messages == []


async def test_a_multiline_fault_with_close() -> None:
    fault = Fault(Stage.MAIL, 550, "5.7.1 first line\n5.7.1 second line", close=True)
    async with (
        LabServer(Behaviour(faults=(fault,))) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        reply = await client.command("MAIL FROM:<a@s.test>")
        assert reply.lines == ("5.7.1 first line", "5.7.1 second line")
        assert await client.read_some() == b""


async def test_unknown_users_are_rejected_and_the_others_accepted() -> None:
    behaviour = Behaviour(faults=(unknown_users("Ghost@R.test", "nobody@r.test"),))
    async with (
        LabServer(behaviour) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.send(
            b"MAIL FROM:<a@s.test>\r\n"
            b"RCPT TO:<ghost@r.test>\r\n"
            b"RCPT TO:<alive@r.test>\r\n"
            b"RCPT TO:<nobody@r.test>\r\n"
            b"DATA\r\n"
        )
        replies = await client.replies(5)
        assert [r.first for r in replies] == [
            "250 2.1.0 Ok",
            "550 5.1.1 <ghost@r.test>: Recipient address rejected: User unknown",
            "250 2.1.5 Ok",
            "550 5.1.1 <nobody@r.test>: Recipient address rejected: User unknown",
            "354 End data with <CR><LF>.<CR><LF>",
        ]
        await client.send(b"hi\r\n.\r\n")
        assert (await client.reply()).code == 250
    assert server.messages[0].recipients == ("alive@r.test",)


async def test_a_predicate_chooses_the_addresses_and_times_limits_a_fault() -> None:
    fault = Fault(
        Stage.RCPT,
        452,
        "4.2.2 <{address}>: mailbox full",
        only=lambda a: a.startswith("f"),
        times=1,
    )
    async with (
        LabServer(Behaviour(faults=(fault,))) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.command("MAIL FROM:<a@s.test>")
        assert (await client.command("RCPT TO:<ok@r.test>")).code == 250
        assert (await client.command("RCPT TO:<full@r.test>")).first == (
            "452 4.2.2 <full@r.test>: mailbox full"
        )
        assert (await client.command("RCPT TO:<full@r.test>")).code == 250


async def test_a_mail_fault_only_for_some_senders() -> None:
    fault = Fault(Stage.MAIL, 553, "5.7.1 <{address}>: Sender address rejected", only="bad@s.test")
    async with (
        LabServer(Behaviour(faults=(fault,))) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        assert (await client.command("MAIL FROM:<bad@s.test>")).first == (
            "553 5.7.1 <bad@s.test>: Sender address rejected"
        )
        assert (await client.command("MAIL FROM:<good@s.test>")).code == 250


async def test_a_fault_that_fires_once_then_the_retry_succeeds() -> None:
    fault = Fault(Stage.END_OF_DATA, 451, "4.3.0 Try again", times=1)
    async with (
        LabServer(Behaviour(faults=(fault,))) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        assert (await client.send_mail("a@s.test", ["b@r.test"], b"x\r\n")).code == 451
        assert (await client.send_mail("a@s.test", ["b@r.test"], b"x\r\n")).code == 250
    assert len(server.messages) == 1


def test_fault_values_are_checked() -> None:
    with pytest.raises(ValueError, match=r"200\.\.599"):
        Fault(Stage.MAIL, 99, "x")
    with pytest.raises(ValueError, match="MAIL and RCPT"):
        Fault(Stage.DATA, 554, "x", only={"a@b.test"})
    assert service_closing(Stage.RCPT).closes
    assert Fault(Stage.RCPT, 550, "x", close=True).closes
    assert not Fault(Stage.RCPT, 550, "x").closes


# ---- greylisting ------------------------------------------------------------------------


async def test_greylisting_first_attempt_then_accept() -> None:
    async with LabServer(Behaviour(greylist=Greylist(retry_after=120))) as server:
        async with await RawClient.connect(server.address) as client:
            await client.hello()
            await client.command("MAIL FROM:<a@s.test>")
            assert (await client.command("RCPT TO:<b@r.test>")).first == (
                "451 4.7.1 Greylisted, try again in 120 seconds"
            )
            # Another pair is greylisted on its own.
            assert (await client.command("RCPT TO:<c@r.test>")).code == 451
            await client.command("RSET")
        # A new connection, later: accepted.
        async with await RawClient.connect(server.address) as client:
            await client.hello()
            assert (await client.send_mail("a@s.test", ["b@r.test"], b"x\r\n")).code == 250
    assert [m.recipients for m in server.messages] == [("b@r.test",)]


async def test_greylisting_without_a_hint() -> None:
    async with (
        LabServer(Behaviour(greylist=Greylist(hint=False))) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.command("MAIL FROM:<a@s.test>")
        assert (await client.command("RCPT TO:<b@r.test>")).first == "450 4.2.0 Greylisted"
        assert (await client.command("RCPT TO:<b@r.test>")).code == 250


async def test_greylisting_minimum_delay_on_a_hand_moved_clock() -> None:
    now = [1000.0]
    behaviour = Behaviour(greylist=Greylist(min_delay=60))
    async with (
        LabServer(behaviour, clock=lambda: now[0]) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.command("MAIL FROM:<a@s.test>")
        assert (await client.command("RCPT TO:<b@r.test>")).code == 451
        now[0] += 59
        assert (await client.command("RCPT TO:<b@r.test>")).code == 451  # too early
        now[0] += 1
        assert (await client.command("RCPT TO:<B@R.test>")).code == 250  # case-blind
        now[0] += 10_000
        await client.command("RSET")
        await client.command("MAIL FROM:<a@s.test>")
        assert (await client.command("RCPT TO:<b@r.test>")).code == 250  # stays passed


async def test_a_fault_on_a_bdat_chunk_ends_the_transaction() -> None:
    fault = Fault(Stage.BDAT, 554, "5.6.0 Chunk refused")
    async with (
        LabServer(Behaviour(chunking=True, faults=(fault,))) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.send(b"MAIL FROM:<a@s.test>\r\nRCPT TO:<b@r.test>\r\nBDAT 3\r\nabc")
        assert [r.code for r in await client.replies(3)] == [250, 250, 554]
        await client.send(b"BDAT 3 LAST\r\ndef")
        assert (await client.reply()).code == 503
    assert server.messages == []
