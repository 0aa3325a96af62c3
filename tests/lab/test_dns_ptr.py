"""LabZone's reverse zones: PTR records for loopback addresses (what preflight's reverse
DNS check reads), asked over real UDP on loopback; nothing outside them is answered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from core.lab.dns import LabDNS, LabZone


@pytest.fixture
async def lab() -> AsyncIterator[LabDNS]:
    zone = LabZone().add_ptr("127.0.0.5", "mail.sender.test").add_ptr("::1", "six.sender.test")
    async with LabDNS(zone) as server:
        yield server


async def ask(server: LabDNS, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(query, server.host, port=server.port, timeout=2.0)


def reverse(address: str) -> str:
    return dns.reversename.from_address(address).to_text()


async def test_a_ptr_is_answered_for_ipv4_and_ipv6_loopback(lab: LabDNS) -> None:
    for address, host in (("127.0.0.5", "mail.sender.test."), ("::1", "six.sender.test.")):
        response = await ask(lab, reverse(address), "PTR")
        assert response.rcode() == dns.rcode.NOERROR
        assert [str(rdata) for rrset in response.answer for rdata in rrset] == [host]


async def test_an_address_without_a_ptr_is_nxdomain_with_its_zones_soa(lab: LabDNS) -> None:
    response = await ask(lab, reverse("127.0.0.6"), "PTR")
    assert response.rcode() == dns.rcode.NXDOMAIN
    [soa] = response.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "127.in-addr.arpa."


async def test_the_reverse_name_of_a_real_address_is_refused(lab: LabDNS) -> None:
    response = await ask(lab, reverse("192.0.2.1"), "PTR")
    assert response.rcode() == dns.rcode.REFUSED


def test_only_loopback_addresses_get_a_ptr() -> None:
    for address in ("192.0.2.1", "2001:db8::1"):
        with pytest.raises(ValueError, match="loopback"):
            LabZone().add_ptr(address, "mail.sender.test")
