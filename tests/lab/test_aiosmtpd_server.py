"""AiosmtpdServer: a third-party server on loopback, on our loop, recording the same way."""

from __future__ import annotations

import asyncio

import pytest

from core.lab import ReceivedMessage
from core.lab.aiosmtpd_server import AiosmtpdServer
from tests.lab.client import RawClient


async def test_accepts_and_records_a_message() -> None:
    async with AiosmtpdServer() as server, await RawClient.connect(server.address) as client:
        ehlo = await client.hello()
        assert ehlo.lines[0] == "aiosmtpd.lab.test"
        assert "STARTTLS" not in ehlo.lines
        body = b"Subject: x\r\n\r\n..dot\r\n"
        assert (await client.send_mail("a@s.test", ["b@r.test", "c@r.test"], body)).code == 250
        assert (await client.command("QUIT")).code == 221
    assert server.messages == [
        ReceivedMessage(
            "a@s.test",
            ("b@r.test", "c@r.test"),
            b"Subject: x\r\n\r\n.dot\r\n",
            tls=False,
            helo="client.lab.test",
            connection=1,
        )
    ]


async def test_starttls_required() -> None:
    async with AiosmtpdServer(require_starttls=True) as server:
        assert server.tls is not None
        async with await RawClient.connect(server.address) as client:
            assert "STARTTLS" in (await client.hello()).lines
            assert (await client.command("MAIL FROM:<a@s.test>")).code == 530
            assert (await client.command("STARTTLS")).code == 220
            await client.starttls(server.tls.client_context())
            await client.command("EHLO client.lab.test")
            assert (await client.send_mail("a@s.test", ["b@r.test"], b"x\r\n")).code == 250
            assert (await client.command("QUIT")).code == 221
    assert server.messages[0].tls is True
    assert server.stats.tls_upgrades == 1


async def test_stop_drops_clients_and_leaves_no_task() -> None:
    before = asyncio.all_tasks()
    server = await AiosmtpdServer(starttls=True).start()
    client = await RawClient.connect(server.address)
    assert (await client.hello()).code == 250
    await server.stop()
    assert await client.read_some() == b""
    await client.close()
    assert asyncio.all_tasks() == before
    assert server.stats.active == 0


def test_only_loopback() -> None:
    with pytest.raises(ValueError):
        AiosmtpdServer(host="0.0.0.0")
