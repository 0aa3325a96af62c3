"""LabDNS and LabZone: what the lab's DNS server answers, over real UDP and TCP on
loopback, asked by dnspython's plain query functions (no resolver in between)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from core.lab.dns import DEFAULT_NEGATIVE_TTL, DEFAULT_TTL, UDP_LIMIT, LabDNS, LabZone


@pytest.fixture
async def lab() -> AsyncIterator[LabDNS]:
    zone = LabZone().mx_for("a.test", {"mx1.a.test": "127.0.0.1", "mx2.a.test": "::1"})
    async with LabDNS(zone) as server:
        yield server


async def ask(
    server: LabDNS, name: str, rdtype: str, *, tcp: bool = False, payload: int | None = None
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=payload is not None, payload=payload)
    if tcp:
        return await dns.asyncquery.tcp(query, server.host, port=server.port, timeout=2.0)
    return await dns.asyncquery.udp(query, server.host, port=server.port, timeout=2.0)


def answer_text(response: dns.message.Message) -> list[str]:
    return sorted(str(rdata) for rrset in response.answer for rdata in rrset)


def is_authoritative(response: dns.message.Message) -> bool:
    return bool(response.flags & dns.flags.AA)


# ---- answers ------------------------------------------------------------------------------------


async def test_records_are_answered_authoritatively(lab: LabDNS) -> None:
    response = await ask(lab, "a.test", "MX")
    assert response.rcode() == dns.rcode.NOERROR
    assert is_authoritative(response)
    assert answer_text(response) == ["10 mx1.a.test.", "20 mx2.a.test."]
    assert response.answer[0].ttl == DEFAULT_TTL
    assert answer_text(await ask(lab, "MX2.A.TEST", "AAAA")) == ["::1"]


async def test_unknown_name_is_nxdomain_with_the_soa(lab: LabDNS) -> None:
    response = await ask(lab, "nowhere.a.test", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert is_authoritative(response)
    assert response.answer == []
    [soa] = response.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.name.to_text() == "test."
    assert soa.ttl == DEFAULT_NEGATIVE_TTL


async def test_known_name_without_the_type_is_nodata_with_the_soa(lab: LabDNS) -> None:
    response = await ask(lab, "mx1.a.test", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert is_authoritative(response)
    assert response.answer == []
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


async def test_names_between_a_record_and_the_apex_exist(lab: LabDNS) -> None:
    lab.zone.add_a("deep.down.b.test", "127.0.0.2")
    for name in ("down.b.test", "b.test"):
        response = await ask(lab, name, "A")
        assert (response.rcode(), response.answer) == (dns.rcode.NOERROR, [])


async def test_a_name_outside_the_zone_is_refused_not_answered(lab: LabDNS) -> None:
    response = await ask(lab, "example.com", "A")
    assert response.rcode() == dns.rcode.REFUSED
    assert not is_authoritative(response)


async def test_negative_ttl_and_record_ttls_are_settable() -> None:
    zone = LabZone(negative_ttl=7).add_a("h.test", "127.0.0.9", ttl=42)
    async with LabDNS(zone) as server:
        assert (await ask(server, "h.test", "A")).answer[0].ttl == 42
        assert (await ask(server, "x.test", "A")).authority[0].ttl == 7


async def test_null_mx_txt_and_bare_domains() -> None:
    zone = LabZone().add_mx("n.test", [(10, "mx.n.test")]).null_mx("n.test")
    zone.add_txt("t.test", "x" * 300).add_domain("bare.test")
    async with LabDNS(zone) as server:
        assert answer_text(await ask(server, "n.test", "MX")) == ["0 ."]
        [txt] = (await ask(server, "t.test", "TXT")).answer[0]
        assert b"".join(txt.strings) == b"x" * 300
        assert [len(part) for part in txt.strings] == [255, 45]
        bare = await ask(server, "bare.test", "MX")
        assert (bare.rcode(), bare.answer) == (dns.rcode.NOERROR, [])


# ---- UDP limits and TCP -------------------------------------------------------------------------


async def big(server: LabDNS) -> None:
    hosts = [(10, f"mail-exchanger-{n:03}.big.test") for n in range(64)]
    server.zone.add_mx("big.test", hosts)


async def test_too_big_for_udp_is_truncated_and_whole_over_tcp(lab: LabDNS) -> None:
    await big(lab)
    truncated = await ask(lab, "big.test", "MX")
    assert truncated.flags & dns.flags.TC
    assert truncated.answer == []
    whole = await ask(lab, "big.test", "MX", tcp=True)
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 64
    assert (lab.stats.truncated, lab.stats.udp, lab.stats.tcp) == (1, 1, 1)
    assert lab.queries("big.test", "MX") == 2


async def test_edns_payload_is_respected(lab: LabDNS) -> None:
    await big(lab)
    small = await ask(lab, "big.test", "MX", payload=UDP_LIMIT)
    assert small.flags & dns.flags.TC
    large = await ask(lab, "big.test", "MX", payload=4096)
    assert not large.flags & dns.flags.TC
    assert len(large.answer[0]) == 64


async def test_many_queries_on_one_tcp_connection(lab: LabDNS) -> None:
    reader, writer = await asyncio.open_connection(*lab.address)
    try:
        for n in range(3):
            wire = dns.message.make_query(f"mx{n % 2 + 1}.a.test", "A").to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
            size = int.from_bytes(await reader.readexactly(2), "big")
            response = dns.message.from_wire(await reader.readexactly(size))
            assert response.rcode() == dns.rcode.NOERROR
    finally:
        writer.close()
        await writer.wait_closed()
    assert lab.stats.tcp_connections == 1
    assert lab.stats.tcp == 3


async def test_garbage_is_ignored_and_the_server_keeps_answering(lab: LabDNS) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=lab.address
    )
    response_wire = dns.message.make_response(dns.message.make_query("a.test", "MX")).to_wire()
    for garbage in (b"\x00", b"\xff" * 40, response_wire):
        transport.sendto(garbage)
    await lab.wait_for(lambda: lab.stats.malformed == 3)
    transport.close()
    assert answer_text(await ask(lab, "mx1.a.test", "A")) == ["127.0.0.1"]
    assert lab.stats.queries == 1


# ---- scripted failures --------------------------------------------------------------------------


async def test_servfail_for_some_queries_then_healed(lab: LabDNS) -> None:
    lab.zone.servfail("a.test", times=2)
    rcodes = [(await ask(lab, "a.test", "MX")).rcode() for _ in range(3)]
    assert rcodes == [dns.rcode.SERVFAIL, dns.rcode.SERVFAIL, dns.rcode.NOERROR]


async def test_faults_per_type_and_healing(lab: LabDNS) -> None:
    lab.zone.refuse("mx1.a.test", rdtype="AAAA")
    assert (await ask(lab, "mx1.a.test", "AAAA")).rcode() == dns.rcode.REFUSED
    assert (await ask(lab, "mx1.a.test", "A")).rcode() == dns.rcode.NOERROR
    lab.zone.heal("mx1.a.test")
    assert (await ask(lab, "mx1.a.test", "AAAA")).rcode() == dns.rcode.NOERROR


async def test_drop_leaves_the_client_waiting(lab: LabDNS) -> None:
    lab.zone.drop("a.test", times=1)
    query = dns.message.make_query("a.test", "MX")
    with pytest.raises(dns.exception.Timeout):
        await dns.asyncquery.udp(query, lab.host, port=lab.port, timeout=0.2)
    assert lab.stats.dropped == 1
    assert (await ask(lab, "a.test", "MX")).rcode() == dns.rcode.NOERROR


def test_times_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LabZone().servfail("a.test", times=0)


# ---- safety and lifecycle -----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "localhost", "192.0.2.1", ""])
def test_only_loopback_addresses_are_accepted(host: str) -> None:
    with pytest.raises(ValueError, match="listens on a loopback address"):
        LabDNS(host=host)


def test_only_test_names_and_loopback_addresses_go_in_a_zone() -> None:
    zone = LabZone()
    with pytest.raises(ValueError, match="outside the lab zone"):
        zone.add_a("example.com", "127.0.0.1")
    with pytest.raises(ValueError, match=r"end in \.test"):
        LabZone("example.com")
    with pytest.raises(ValueError, match="loopback"):
        zone.add_a("h.test", "192.0.2.1")
    with pytest.raises(ValueError, match="loopback"):
        zone.add_aaaa("h.test", "2001:db8::1")
    with pytest.raises(ValueError, match="loopback"):
        zone.add_a("h.test", "::1")
    with pytest.raises(ValueError, match="outside the lab zone"):
        LabZone("lab.test").add_domain("other.test")


async def test_where_it_listens(lab: LabDNS) -> None:
    assert lab.address == ("127.0.0.1", lab.port)
    assert lab.nameserver == f"127.0.0.1:{lab.port}"


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this machine")
async def test_ipv6_loopback() -> None:
    try:
        server = await LabDNS(LabZone().add_aaaa("h.test", "::1"), host="::1").start()
    except OSError:
        pytest.skip("::1 is not configured")
    try:
        assert server.nameserver == f"[::1]:{server.port}"
        assert answer_text(await ask(server, "h.test", "AAAA")) == ["::1"]
        assert answer_text(await ask(server, "h.test", "AAAA", tcp=True)) == ["::1"]
    finally:
        await server.stop()


async def test_stop_closes_everything_and_starts_once() -> None:
    server = LabDNS()
    with pytest.raises(RuntimeError):
        _ = server.port
    before = asyncio.all_tasks()
    await server.start()
    reader, writer = await asyncio.open_connection(*server.address)
    await server.wait_for(lambda: server.stats.tcp_connections == 1)
    await server.stop()
    assert await reader.read() == b""  # the server dropped the idle client
    writer.close()
    assert asyncio.all_tasks() == before
    with pytest.raises(RuntimeError):
        await server.start()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*server.address)
