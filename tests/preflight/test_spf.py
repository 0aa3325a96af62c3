"""The SPF evaluator (RFC 7208) against records in lab DNS, and the SPF check's lights."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.dns import parse_nameserver
from core.lab.dns import LabDNS, LabZone
from core.lab.world import LabWorld
from core.preflight import Status
from core.preflight.lookup import Lookups
from core.preflight.spf import MAX_LOOKUPS, SPFResult, check_host
from tests.preflight.support import preflight


@pytest.fixture
async def dns() -> AsyncIterator[LabDNS]:
    zone = LabZone()
    zone.add_a("mail.s.test", "127.0.0.5").add_aaaa("mail.s.test", "::1")
    zone.add_mx("s.test", [(10, "mail.s.test")])
    async with LabDNS(zone) as server:
        yield server


async def spf(dns: LabDNS, record: str | None, address: str = "127.0.0.5",
              domain: str = "s.test") -> SPFResult:
    if record is not None:
        dns.zone.add_txt(domain, record)
    lookups = Lookups((parse_nameserver(dns.nameserver),), 2.0)
    return (await check_host(lookups, address, domain, f"news@{domain}")).result


@pytest.mark.parametrize(
    ("record", "address", "expected"),
    [
        ("v=spf1 ip4:127.0.0.5 -all", "127.0.0.5", SPFResult.PASS),
        ("v=spf1 ip4:127.0.0.0/24 -all", "127.0.0.77", SPFResult.PASS),
        ("v=spf1 ip4:127.0.0.5 -all", "127.0.0.6", SPFResult.FAIL),
        ("v=spf1 ip4:127.0.0.5 ~all", "127.0.0.6", SPFResult.SOFTFAIL),
        ("v=spf1 ip4:127.0.0.5 ?all", "127.0.0.6", SPFResult.NEUTRAL),
        ("v=spf1 ip4:127.0.0.5", "127.0.0.6", SPFResult.NEUTRAL),
        ("v=spf1 ip6:::1 -all", "::1", SPFResult.PASS),
        ("v=spf1 ip4:127.0.0.5 -all", "::1", SPFResult.FAIL),
        ("v=spf1 a -all", "127.0.0.5", SPFResult.FAIL),  # s.test itself has no A
        ("v=spf1 a:mail.s.test -all", "127.0.0.5", SPFResult.PASS),
        ("v=spf1 a:mail.s.test/24 -all", "127.0.0.9", SPFResult.PASS),
        ("v=spf1 a:mail.s.test -all", "::1", SPFResult.PASS),
        ("v=spf1 mx -all", "127.0.0.5", SPFResult.PASS),
        ("v=spf1 mx -all", "127.0.0.6", SPFResult.FAIL),
        ("v=spf1 -ip4:127.0.0.5 +all", "127.0.0.5", SPFResult.FAIL),
        # three lookups finding nothing: more than the two void lookups allowed
        ("v=spf1 exists:a.s.test exists:b.s.test exists:c.s.test -all", "127.0.0.5",
         SPFResult.PERMERROR),
        ("v=spf1 exists:a.s.test exists:b.s.test ip4:127.0.0.5 -all", "127.0.0.5",
         SPFResult.PASS),
        ("v=spf1 bogus:x -all", "127.0.0.5", SPFResult.PERMERROR),
        ("v=spf1 ip4:not-an-address -all", "127.0.0.5", SPFResult.PERMERROR),
        ("v=spf1 include:nowhere.s.test -all", "127.0.0.5", SPFResult.PERMERROR),
        ("v=spf1 redirect=nowhere.s.test", "127.0.0.5", SPFResult.PERMERROR),
        ("v=spf1 ptr -all", "127.0.0.5", SPFResult.FAIL),  # ptr never matches
    ],
)
async def test_check_host(dns: LabDNS, record: str, address: str, expected: SPFResult) -> None:
    assert await spf(dns, record, address) is expected


async def test_no_record_is_none_and_two_records_are_permerror(dns: LabDNS) -> None:
    dns.zone.add_txt("s.test", "google-site-verification=abc")
    assert await spf(dns, None) is SPFResult.NONE
    dns.zone.add_txt("s.test", "v=spf1 -all").add_txt("s.test", "v=spf1 +all")
    assert await spf(dns, None) is SPFResult.PERMERROR


async def test_include_and_redirect_follow_other_domains(dns: LabDNS) -> None:
    dns.zone.add_txt("esp.test", "v=spf1 ip4:127.0.0.0/28 -all")
    assert await spf(dns, "v=spf1 include:esp.test -all", "127.0.0.3") is SPFResult.PASS
    assert await spf(dns, "v=spf1 include:esp.test -all", "127.0.0.99", "t.test") \
        is SPFResult.FAIL  # the include's fail is "no match": the outer -all decides
    assert await spf(dns, "v=spf1 redirect=esp.test", "127.0.0.3", "u.test") is SPFResult.PASS
    assert await spf(dns, "v=spf1 redirect=esp.test", "127.0.0.99", "w.test") is SPFResult.FAIL


async def test_macros_expand(dns: LabDNS) -> None:
    dns.zone.add_a("5.0.0.127.news.in.s.test", "127.0.0.2")
    record = "v=spf1 exists:%{ir}.%{l}.in.%{d} -all"
    assert await spf(dns, record, "127.0.0.5") is SPFResult.PASS


async def test_more_than_ten_lookups_is_permerror(dns: LabDNS) -> None:
    for n in range(MAX_LOOKUPS + 1):
        dns.zone.add_txt(f"c{n}.test", f"v=spf1 include:c{n + 1}.test ?all")
    dns.zone.add_txt(f"c{MAX_LOOKUPS + 1}.test", "v=spf1 ip4:127.0.0.5 -all")
    lookups = Lookups((parse_nameserver(dns.nameserver),), 2.0)
    outcome = await check_host(lookups, "127.0.0.5", "c0.test", "news@c0.test")
    assert outcome.result is SPFResult.PERMERROR and "more than 10 DNS lookups" in outcome.reason
    # one fewer link: ten lookups are allowed
    outcome = await check_host(lookups, "127.0.0.5", "c1.test", "news@c1.test")
    assert outcome.result is SPFResult.PASS and outcome.lookups == MAX_LOOKUPS


async def test_a_dns_failure_is_temperror(dns: LabDNS) -> None:
    dns.zone.servfail("s.test", rdtype="TXT")
    assert await spf(dns, None) is SPFResult.TEMPERROR


@pytest.mark.parametrize(
    ("record", "status", "in_fix"),
    [
        ("v=spf1 ip4:127.0.0.1 ip6:::1 -all", Status.PASS, ""),
        ("v=spf1 ip4:127.0.0.2 -all", Status.FAIL, "Add ip4:127.0.0.1"),
        ("v=spf1 ip4:127.0.0.2 ~all", Status.FAIL, "Add ip4:127.0.0.1"),
        ("v=spf1 ?all", Status.WARN, "Add ip4:127.0.0.1"),
        ("v=spf1 foo -all", Status.FAIL, "Correct the SPF record"),
        (None, Status.WARN, "Publish a TXT record at sender.test"),
    ],
)
async def test_the_check_lights_and_fixes(
    world: LabWorld, key: Path, record: str | None, status: Status, in_fix: str
) -> None:
    world.zone.remove("sender.test", "TXT")
    if record is not None:
        world.zone.add_txt("sender.test", record)
    result = (await preflight(world, key, net={"source_addresses": ("127.0.0.1",)})).get("spf")
    assert result.status is status, result
    assert in_fix in result.fix


async def test_too_many_lookups_fails_the_check(world: LabWorld, key: Path) -> None:
    world.zone.remove("sender.test", "TXT")
    world.zone.add_txt("sender.test", "v=spf1 " + " ".join(
        f"a:h{n}.sender.test" for n in range(11)) + " ip4:127.0.0.1 -all")
    for n in range(11):
        world.zone.add_a(f"h{n}.sender.test", "127.0.0.200")
    result = (await preflight(world, key)).get("spf")
    assert result.status is Status.FAIL and "more than 10 DNS lookups" in result.result
