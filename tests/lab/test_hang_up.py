"""A lab server hangs up mid-DATA on the recipients it is told to, once each, on the side
of the end-of-data marker it is told to: before the body (nothing taken) or after it
(received whole, never answered, recorded as unanswered)."""

from __future__ import annotations

import pytest

from core.lab import Behaviour, HangUp, LabServer, Stage
from core.lab.world import LabWorld
from tests.lab.client import RawClient

BODY = b"Subject: hi\r\n\r\nhello\r\n"


def hanging_up(stage: Stage, *recipients: str) -> Behaviour:
    return Behaviour(hang_ups=(HangUp(stage, frozenset(recipients)),))


async def envelope(client: RawClient, recipient: str) -> None:
    assert (await client.command("MAIL FROM:<s@sender.test>")).code == 250
    assert (await client.command(f"RCPT TO:<{recipient}>")).code == 250


async def test_before_the_body_the_354_never_comes_and_the_retry_goes_through() -> None:
    async with LabServer(hanging_up(Stage.DATA, "Hung@Lab.test")) as server:
        async with await RawClient.connect(server.address) as client:
            await client.hello()
            await envelope(client, "hung@lab.test")
            await client.send(b"DATA\r\n")
            assert await client.read_to_eof(limit=0) == b""
        async with await RawClient.connect(server.address) as client:
            await client.hello()
            reply = await client.send_mail("s@sender.test", ["hung@lab.test"], BODY)
            assert reply.code == 250
        await server.wait_until_idle()
    assert [m.recipients for m in server.messages] == [("hung@lab.test",)]
    assert server.unanswered == []


async def test_after_the_body_it_is_recorded_unanswered_and_the_retry_goes_through() -> None:
    async with LabServer(hanging_up(Stage.END_OF_DATA, "hung@lab.test")) as server:
        async with await RawClient.connect(server.address) as client:
            await client.hello()
            await envelope(client, "hung@lab.test")
            assert (await client.command("DATA")).code == 354
            await client.send(BODY + b".\r\n")
            assert await client.read_to_eof(limit=0) == b""
        await server.wait_until_idle()
        assert server.messages == []
        assert [m.recipients for m in server.unanswered] == [("hung@lab.test",)]
        assert server.unanswered[0].data == BODY
        async with await RawClient.connect(server.address) as client:
            await client.hello()
            reply = await client.send_mail("s@sender.test", ["hung@lab.test"], BODY)
            assert reply.code == 250
    assert [m.recipients for m in server.messages] == [("hung@lab.test",)]


async def test_other_recipients_share_the_connection_untouched() -> None:
    async with (
        LabServer(hanging_up(Stage.DATA, "hung@lab.test")) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        for n in range(3):
            reply = await client.send_mail("s@sender.test", [f"ok{n}@lab.test"], BODY)
            assert reply.code == 250
        await envelope(client, "hung@lab.test")
        await client.send(b"DATA\r\n")
        assert await client.read_to_eof(limit=0) == b""
    assert len(server.messages) == 3


async def test_a_transaction_with_a_listed_recipient_among_others_is_hung_up_on() -> None:
    async with (
        LabServer(hanging_up(Stage.DATA, "hung@lab.test")) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await envelope(client, "ok@lab.test")
        assert (await client.command("RCPT TO:<hung@lab.test>")).code == 250
        await client.send(b"DATA\r\n")
        assert await client.read_to_eof(limit=0) == b""
    assert server.messages == []


@pytest.mark.parametrize("stage", [Stage.GREETING, Stage.RCPT, Stage.BODY])
def test_only_the_two_sides_of_the_marker(stage: Stage) -> None:
    with pytest.raises(ValueError, match="DATA or END_OF_DATA"):
        HangUp(stage, frozenset({"a@lab.test"}))


async def test_a_world_lists_what_its_hosts_left_unanswered() -> None:
    behaviour = Behaviour(
        hostname="mx.hang.test",
        hang_ups=(HangUp(Stage.END_OF_DATA, frozenset({"hung@hang.test"})),),
    )
    world = LabWorld().host("mx.hang.test", behaviour).host("mx.plain.test")
    async with world:
        for host, recipient in (("mx.hang.test", "hung@hang.test"), ("mx.plain.test", "a@p.test")):
            address = (world.hosts[host].address, world.port)
            async with await RawClient.connect(address) as client:
                await client.hello()
                await envelope(client, recipient)
                assert (await client.command("DATA")).code == 354
                await client.send(BODY + b".\r\n")
                await client.read_some()
            await world.server(host).wait_until_idle()
        assert [m.recipients for m in world.unanswered()] == [("hung@hang.test",)]
        assert world.delivered_to() == ["a@p.test"]
