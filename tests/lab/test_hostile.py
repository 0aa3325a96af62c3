"""Hostile LabServers emit exactly the misbehaviour they claim, and stay bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.lab import GARBAGE, UNSOLICITED, Act, Behaviour, Hostile, LabServer, Stage
from tests.lab.client import RawClient


def hostile(stage: Stage, act: Act, **options: Any) -> Behaviour:
    return Behaviour(hostile=(Hostile(stage, act),), **options)


async def test_never_greets() -> None:
    async with LabServer(hostile(Stage.GREETING, Act.SILENCE)) as server:
        async with await RawClient.connect(server.address) as client:
            await client.send(b"EHLO c.lab.test\r\n")  # read and ignored
            with pytest.raises(TimeoutError):
                await client.read_some(timeout=0.2)
            assert server.stats.active == 1
        await server.wait_until_idle()  # the client left, so did the server
    assert server.connections[0].commands == []


async def test_silence_ends_at_the_idle_timeout() -> None:
    async with (
        LabServer(hostile(Stage.GREETING, Act.SILENCE, idle_timeout=0.2)) as server,
        await RawClient.connect(server.address) as client,
    ):
        assert await client.read_to_eof(limit=0) == b""


async def test_a_one_mebibyte_greeting_without_newline() -> None:
    async with LabServer(hostile(Stage.GREETING, Act.LONG_LINE)) as server:
        async with await RawClient.connect(server.address) as client:
            data = bytearray()
            while len(data) < 1024 * 1024:
                chunk = await client.read_some()
                assert chunk
                data += chunk
            assert bytes(data[:4]) == b"220 "
            assert len(data) == 1024 * 1024
            assert b"\n" not in data
            with pytest.raises(TimeoutError):  # then nothing more
                await client.read_some(timeout=0.1)
        await server.wait_until_idle()


async def test_endless_ehlo_continuation_until_the_client_leaves() -> None:
    async with LabServer(hostile(Stage.EHLO, Act.ENDLESS)) as server:
        async with await RawClient.connect(server.address) as client:
            await client.reply()
            await client.send(b"EHLO c.lab.test\r\n")
            for _ in range(20_000):  # a few MiB of 250- lines and never a last line
                line = await asyncio.wait_for(client.reader.readline(), 5)
                assert line.startswith(b"250-"), line
            client.writer.transport.abort()
        await server.wait_until_idle()


async def test_endless_stops_at_its_byte_bound() -> None:
    behaviour = hostile(Stage.EHLO, Act.ENDLESS, endless_max_bytes=200_000)
    async with (
        LabServer(behaviour) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.reply()
        await client.send(b"EHLO c.lab.test\r\n")
        data = await client.read_to_eof(limit=300_000)
        assert 200_000 <= len(data) < 300_000
        assert all(line.startswith(b"250-") for line in data.split(b"\r\n") if line)


async def test_endless_stops_at_its_time_bound_when_the_client_does_not_read() -> None:
    behaviour = hostile(Stage.EHLO, Act.ENDLESS, endless_max_seconds=0.2)
    async with (
        LabServer(behaviour) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.reply()
        await client.send(b"EHLO c.lab.test\r\n")
        await server.wait_until_idle()  # without the client reading a byte


async def test_garbage_greeting() -> None:
    async with (
        LabServer(hostile(Stage.GREETING, Act.GARBAGE)) as server,
        await RawClient.connect(server.address) as client,
    ):
        assert await client.reader.readexactly(len(GARBAGE)) == GARBAGE
        assert b"\x00" in GARBAGE and b"\xff" in GARBAGE


async def test_garbage_as_the_reply_to_mail() -> None:
    async with (
        LabServer(hostile(Stage.MAIL, Act.GARBAGE)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.send(b"MAIL FROM:<a@s.test>\r\n")
        assert await client.reader.readexactly(len(GARBAGE)) == GARBAGE


async def test_close_mid_data() -> None:
    async with (
        LabServer(hostile(Stage.BODY, Act.CLOSE)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.send(b"MAIL FROM:<a@s.test>\r\nRCPT TO:<b@r.test>\r\nDATA\r\n")
        assert [r.code for r in await client.replies(3)] == [250, 250, 354]
        await client.send(b"Subject: half a message\r\n")
        assert await client.read_to_eof(limit=0) == b""
    assert server.messages == []
    assert server.unanswered == []


async def test_close_after_end_of_data_without_a_reply() -> None:
    async with (
        LabServer(hostile(Stage.END_OF_DATA, Act.CLOSE)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.send(b"MAIL FROM:<a@s.test>\r\nRCPT TO:<b@r.test>\r\nDATA\r\n")
        await client.replies(3)
        await client.send(b"whole\r\n.\r\n")
        assert await client.read_to_eof(limit=0) == b""
    assert server.messages == []
    assert [(m.recipients, m.data) for m in server.unanswered] == [(("b@r.test",), b"whole\r\n")]
    assert server.stats.unanswered == 1


async def test_silence_after_end_of_data() -> None:
    async with (
        LabServer(hostile(Stage.END_OF_DATA, Act.SILENCE)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.send(b"MAIL FROM:<a@s.test>\r\nRCPT TO:<b@r.test>\r\nDATA\r\n")
        await client.replies(3)
        await client.send(b"whole\r\n.\r\n")
        await server.wait_for(lambda: len(server.unanswered) == 1)
        with pytest.raises(TimeoutError):
            await client.read_some(timeout=0.1)
    assert server.messages == []


async def test_drip_sends_a_valid_greeting_one_byte_at_a_time() -> None:
    behaviour = hostile(
        Stage.GREETING, Act.DRIP, drip_interval=0.03, hostname="h.test", banner="drip"
    )
    async with (
        LabServer(behaviour) as server,
        await RawClient.connect(server.address) as client,
    ):
        pieces: list[bytes] = []
        while b"".join(pieces) != b"220 h.test drip\r\n":
            pieces.append(await client.read_some())
            assert pieces[-1]
        assert len(pieces) >= 8  # one byte per read, give or take a scheduler hiccup
        assert (await client.command("EHLO c.lab.test")).code == 250


async def test_talk_ahead_replies_before_the_command_is_sent() -> None:
    async with (
        LabServer(hostile(Stage.GREETING, Act.TALK_AHEAD)) as server,
        await RawClient.connect(server.address) as client,
    ):
        expected = b"220 mx.lab.test ESMTP MX Mailer lab\r\n" + UNSOLICITED
        assert await client.reader.readexactly(len(expected)) == expected
        assert (await client.command("EHLO c.lab.test")).code == 250


async def test_a_hostile_act_limited_to_the_first_connection() -> None:
    behaviour = Behaviour(hostile=(Hostile(Stage.GREETING, Act.CLOSE, times=1),))
    async with LabServer(behaviour) as server:
        async with await RawClient.connect(server.address) as client:
            assert await client.read_to_eof(limit=0) == b""
        async with await RawClient.connect(server.address) as client:
            assert (await client.hello()).code == 250
    assert server.stats.connections == 2


async def test_a_dripped_reply_to_mail_and_the_conversation_goes_on() -> None:
    behaviour = hostile(Stage.MAIL, Act.DRIP, drip_interval=0.001)
    async with (
        LabServer(behaviour) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        assert (await client.command("MAIL FROM:<a@s.test>")).first == "250 2.1.0 Ok"
        assert (await client.command("RCPT TO:<b@r.test>")).code == 250


async def test_talk_ahead_after_mail() -> None:
    async with (
        LabServer(hostile(Stage.MAIL, Act.TALK_AHEAD)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.send(b"MAIL FROM:<a@s.test>\r\n")
        assert [r.first for r in await client.replies(2)] == ["250 2.1.0 Ok", "250 2.0.0 Ok"]
