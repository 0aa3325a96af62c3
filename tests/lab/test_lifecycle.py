"""LabServer's life: loopback only, start/stop, nothing left behind, clients dropped."""

from __future__ import annotations

import asyncio
import socket

import pytest

from core.lab import Act, Behaviour, Hostile, LabServer, Stage
from tests.lab.client import RawClient


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "localhost", "192.0.2.1", ""])
def test_only_loopback_addresses_are_accepted(host: str) -> None:
    with pytest.raises(ValueError, match="loopback address"):
        LabServer(host=host)


async def test_start_and_stop_by_hand() -> None:
    server = LabServer()
    with pytest.raises(RuntimeError):
        _ = server.port
    await server.start()
    assert server.host == "127.0.0.1"
    assert server.port > 0
    client = await RawClient.connect(server.address)
    assert (await client.hello()).code == 250
    await server.stop()
    assert await client.read_some() == b""  # the server dropped the client
    await client.close()
    with pytest.raises(RuntimeError):
        await server.start()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*server.address)


async def test_stop_ends_every_connection_and_task_even_mid_act() -> None:
    behaviour = Behaviour(hostile=(Hostile(Stage.GREETING, Act.SILENCE),), idle_timeout=60)
    before = asyncio.all_tasks()
    server = await LabServer(behaviour).start()
    clients = [await RawClient.connect(server.address) for _ in range(5)]
    await server.wait_for(lambda: server.stats.connections == 5)
    await server.stop()
    assert asyncio.all_tasks() == before
    assert server.stats.active == 0
    for client in clients:
        assert await client.read_some() == b""
        await client.close()


async def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        server = await LabServer(host="::1").start()
    except OSError:
        pytest.skip("no ::1 here")
    try:
        async with await RawClient.connect(server.address) as client:
            assert (await client.hello()).code == 250
    finally:
        await server.stop()
    assert server.connections[0].peer.startswith("::1:")


async def test_wait_for_times_out_with_the_counters() -> None:
    async with LabServer() as server:
        with pytest.raises(TimeoutError, match="messages=0"):
            await server.wait_for_messages(1, timeout=0.05)


async def test_several_clients_at_once_each_recorded_on_its_connection() -> None:
    async def one(i: int, server: LabServer) -> None:
        async with await RawClient.connect(server.address) as client:
            await client.hello(f"c{i}.lab.test")
            await client.send_mail(f"s{i}@s.test", [f"r{i}@r.test"], b"%d\r\n" % i)
            await client.command("QUIT")

    async with LabServer() as server:
        await asyncio.gather(*(one(i, server) for i in range(20)))
        messages = await server.wait_for_messages(20)
        await server.wait_until_idle()
    assert sorted(m.data for m in messages) == sorted(b"%d\r\n" % i for i in range(20))
    by_connection = {m.connection: m.helo for m in messages}
    assert len(by_connection) == 20
    for record in server.connections:
        assert record.closed
        assert by_connection[record.number] == record.commands[0].removeprefix("EHLO ")


async def test_a_lab_of_several_hosts_shares_one_port_on_127_0_0_x() -> None:
    async with (
        LabServer(host="127.0.0.2") as first,
        LabServer(host="127.0.0.3", port=first.port) as second,
    ):
        assert (first.host, second.host) == ("127.0.0.2", "127.0.0.3")
        assert second.port == first.port
