"""STARTTLS on LabServer: the upgrade works, and each refusal says what it claims."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from core.lab import GARBAGE, Behaviour, LabServer, LabTLS, TLSMode, default_tls
from tests.lab.client import RawClient


async def test_starttls_upgrade_with_a_verifying_client() -> None:
    async with LabServer(Behaviour(tls=TLSMode.OFFER)) as server:
        assert server.tls is default_tls()
        async with await RawClient.connect(server.address) as client:
            ehlo = await client.hello()
            assert "STARTTLS" in ehlo.lines
            assert (await client.command("STARTTLS")).first == "220 2.0.0 Ready to start TLS"
            await client.starttls(server.tls.client_context())
            assert client.writer.get_extra_info("peercert") is not None
            ehlo = await client.command("EHLO client.lab.test")
            assert ehlo.code == 250
            assert "STARTTLS" not in ehlo.lines
            assert (await client.command("STARTTLS")).code == 554
            assert (await client.send_mail("a@s.test", ["b@r.test"], b"secret\r\n")).code == 250
            assert (await client.command("QUIT")).code == 221
    assert server.messages[0].tls is True
    assert server.messages[0].data == b"secret\r\n"
    assert server.connections[0].tls is True
    assert server.stats.tls_upgrades == 1


async def test_the_ca_file_works_with_create_default_context(tmp_path: Path) -> None:
    tls = LabTLS()
    context = ssl.create_default_context(cafile=str(tls.write_ca(tmp_path / "ca.pem")))
    assert b"PRIVATE KEY" not in (tmp_path / "ca.pem").read_bytes()
    async with (
        LabServer(Behaviour(tls=TLSMode.OFFER), tls=tls) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        assert (await client.command("STARTTLS")).code == 220
        await client.starttls(context, server_hostname="mx.lab.test")
        assert (await client.command("EHLO c.lab.test")).code == 250


async def test_a_client_that_verifies_nothing_also_gets_through() -> None:
    async with (
        LabServer(Behaviour(tls=TLSMode.REQUIRE)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        assert (await client.command("MAIL FROM:<a@s.test>")).first == (
            "530 5.7.0 Must issue a STARTTLS command first"
        )
        assert (await client.command("STARTTLS")).code == 220
        assert server.tls is not None
        await client.starttls(server.tls.client_context(verify=False))
        # Before EHLO again, the session is new: MAIL is out of sequence.
        assert (await client.command("MAIL FROM:<a@s.test>")).code == 503
        await client.command("EHLO c.lab.test")
        assert (await client.send_mail("a@s.test", ["b@r.test"], b"x\r\n")).code == 250
    assert server.messages[0].tls


async def test_commands_pipelined_behind_starttls_are_discarded() -> None:
    async with (
        LabServer(Behaviour(tls=TLSMode.OFFER)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.send(b"STARTTLS\r\nMAIL FROM:<injected@s.test>\r\n")
        assert (await client.reply()).code == 220
        assert server.tls is not None
        await client.starttls(server.tls.client_context())
        assert (await client.command("NOOP")).code == 250  # no reply to the injection
    assert server.connections[0].commands == ["EHLO client.lab.test", "STARTTLS", "NOOP"]


async def test_starttls_refused_with_454() -> None:
    async with (
        LabServer(Behaviour(tls=TLSMode.REFUSE)) as server,
        await RawClient.connect(server.address) as client,
    ):
        assert "STARTTLS" in (await client.hello()).lines
        assert (await client.command("STARTTLS")).first == (
            "454 4.7.0 TLS not available due to local problem"
        )
        assert (await client.send_mail("a@s.test", ["b@r.test"], b"x\r\n")).code == 250
    assert server.messages[0].tls is False


async def test_starttls_not_offered() -> None:
    async with LabServer() as server, await RawClient.connect(server.address) as client:
        assert server.tls is None
        assert "STARTTLS" not in (await client.hello()).lines
        assert (await client.command("STARTTLS")).code == 502


async def test_broken_tls_answers_220_then_garbage() -> None:
    async with LabServer(Behaviour(tls=TLSMode.BROKEN)) as server:
        async with await RawClient.connect(server.address) as client:
            await client.hello()
            assert (await client.command("STARTTLS")).code == 220
            assert server.tls is not None
            with pytest.raises(ssl.SSLError):
                await client.starttls(server.tls.client_context())
            client.writer.transport.abort()
        await server.wait_until_idle()
        assert server.stats.tls_upgrades == 0


async def test_broken_tls_answers_the_client_hello_with_the_garbage() -> None:
    async with (
        LabServer(Behaviour(tls=TLSMode.BROKEN)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        assert (await client.command("STARTTLS")).code == 220
        await client.send(b"\x16\x03\x01\x00\x05hello")  # the start of a ClientHello
        assert await client.reader.readexactly(len(GARBAGE)) == GARBAGE


async def test_a_failed_handshake_is_counted_and_the_connection_closed() -> None:
    async with LabServer(Behaviour(tls=TLSMode.OFFER), tls=LabTLS()) as server:
        async with await RawClient.connect(server.address) as client:
            await client.hello()
            assert (await client.command("STARTTLS")).code == 220
            with pytest.raises(ssl.SSLCertVerificationError):
                # Trusts another CA: the lab's certificate fails verification.
                await client.starttls(LabTLS().client_context())
            client.writer.transport.abort()
        await server.wait_for(lambda: server.stats.tls_failures == 1)
        await server.wait_until_idle()
