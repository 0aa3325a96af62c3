"""Port 25, STARTTLS, reverse DNS, HELO and blocklists against lab DNS and lab MX hosts."""

from __future__ import annotations

from pathlib import Path

from core.lab import Behaviour, Fault, LabServer, Stage
from core.lab.world import LabWorld
from core.preflight import Status
from core.preflight.dnsbl import query_name
from tests.preflight.support import BLOCKLIST, HELO, preflight


async def test_a_well_set_up_sender_passes_every_check(world: LabWorld, key: Path) -> None:
    report = await preflight(world, key)
    lights = {result.key: result.status for result in report.results}
    assert lights == {
        key: Status.PASS
        for key in ("port25", "rdns-ipv4", "rdns-ipv6", "helo", "dnsbl", "spf", "dkim",
                    "dmarc", "unsubscribe", "providers", "starttls")
    }, report.results
    assert report.exit_code == 0
    assert "mail.sender.test" in report.get("rdns-ipv4").result
    # the probe read the MX's own banner, and the blocklist was asked (IPv4 and IPv6)
    assert world.server("mx.good.test").recorder.connections
    assert world.dns is not None
    assert world.dns.queries(query_name("127.0.0.1", BLOCKLIST), "A") == 1
    assert world.dns.queries(query_name("::1", BLOCKLIST), "A") == 1


async def test_without_a_given_address_the_route_to_an_mx_gives_it(
    world: LabWorld, key: Path
) -> None:
    report = await preflight(world, key, net={"source_addresses": ()})
    rdns = report.get("rdns-ipv4")
    assert rdns.status is Status.PASS and "127.0.0.1" in rdns.result
    six = report.get("rdns-ipv6")  # the lab's MX hosts have no IPv6 address
    assert six.status is Status.UNKNOWN and "IPv6" in six.result


async def test_a_banner_naming_another_host_hints_at_a_proxy(world: LabWorld, key: Path) -> None:
    result = (await preflight(world, key, domains={"proxied.test": 5})).get("port25")
    assert result.status is Status.WARN
    assert "smtp-proxy.isp.test" in result.result and "proxy" in result.result
    assert "relay mode" in result.fix


async def test_no_mx_answering_on_port_25_fails_and_says_relay_mode(
    world: LabWorld, key: Path
) -> None:
    report = await preflight(world, key, domains={"down.test": 2, "tarpit.test": 1},
                             net={"probe_timeout": 1.0})
    result = report.get("port25")
    assert result.status is Status.FAIL and report.exit_code == 1
    assert "mx.down.test" in result.result and "mx.tarpit.test" in result.result
    assert "relay mode" in result.fix
    assert report.get("starttls").status is Status.UNKNOWN


async def test_one_silent_mx_among_answering_ones_is_a_warning(
    world: LabWorld, key: Path
) -> None:
    result = (await preflight(world, key, domains={"good.test": 5, "down.test": 1})).get("port25")
    assert result.status is Status.WARN and "mx.down.test did not" in result.result


async def test_a_destination_without_starttls_warns_or_fails_when_required(
    world: LabWorld, key: Path
) -> None:
    domains = {"good.test": 5, "plain.test": 3}
    result = (await preflight(world, key, domains=domains)).get("starttls")
    assert result.status is Status.WARN
    assert "mx.plain.test" in result.result and "mx.good.test" not in result.result
    required = await preflight(world, key, domains=domains, net={"starttls_required": True})
    assert required.get("starttls").status is Status.FAIL


async def test_an_address_without_a_ptr_fails(world: LabWorld, key: Path) -> None:
    report = await preflight(world, key, net={"source_addresses": ("127.0.0.7",)})
    result = report.get("rdns-ipv4")
    assert result.status is Status.FAIL and "no reverse DNS" in result.result
    assert "PTR" in result.fix
    assert report.get("rdns-ipv6").status is Status.UNKNOWN  # no IPv6 address given
    assert report.get("helo").status is Status.UNKNOWN


async def test_a_ptr_that_does_not_resolve_back_fails(world: LabWorld, key: Path) -> None:
    world.zone.add_ptr("127.0.0.8", HELO)  # mail.sender.test is 127.0.0.1, not .8
    result = (await preflight(world, key, net={"source_addresses": ("127.0.0.8",)})).get(
        "rdns-ipv4"
    )
    assert result.status is Status.FAIL
    assert "does not resolve back" in result.result and "A record" in result.fix


async def test_ipv4_and_ipv6_are_checked_separately(world: LabWorld, key: Path) -> None:
    world.zone.add_ptr("127.0.0.9", "nine.sender.test")
    world.zone.add_a("nine.sender.test", "127.0.0.9")
    report = await preflight(world, key, net={"source_addresses": ("127.0.0.9", "::1")})
    assert report.get("rdns-ipv4").status is Status.PASS
    assert report.get("rdns-ipv6").status is Status.PASS
    helo = report.get("helo")  # the two families have different names; HELO is one
    assert helo.status is Status.WARN and "nine.sender.test" in helo.result


async def test_a_private_address_is_unknown_not_checked(world: LabWorld, key: Path) -> None:
    report = await preflight(world, key, net={"source_addresses": ("192.168.1.20",)})
    for name in ("rdns-ipv4", "dnsbl", "spf"):
        assert report.get(name).status is Status.UNKNOWN, name
    assert world.dns is not None
    assert world.dns.queries(query_name("192.168.1.20", BLOCKLIST), "A") == 0


async def test_the_helo_name_is_the_confirmed_reverse_name(world: LabWorld, key: Path) -> None:
    for helo, status in (("localhost", Status.FAIL), ("[127.0.0.1]", Status.FAIL),
                         ("127.0.0.1", Status.FAIL), ("mailhost", Status.FAIL),
                         ("other.sender.test", Status.WARN), (HELO, Status.PASS)):
        result = (await preflight(world, key, helo=helo)).get("helo")
        assert result.status is status, (helo, result)
        if status is Status.WARN:
            assert HELO in result.fix


async def test_a_listed_address_fails_with_the_meaning(world: LabWorld, key: Path) -> None:
    world.zone.add_a(query_name("127.0.0.1", BLOCKLIST), "127.0.0.2")
    result = (await preflight(world, key)).get("dnsbl")
    assert result.status is Status.FAIL and "SBL" in result.result
    assert "127.0.0.1 is listed" in result.result and "::1 is not listed" in result.result
    assert "relay mode" in result.fix


async def test_a_pbl_listing_says_your_provider_says_use_relay_mode(
    world: LabWorld, key: Path
) -> None:
    world.zone.add_a(query_name("::1", BLOCKLIST), "127.0.0.10")
    result = (await preflight(world, key)).get("dnsbl")
    assert result.status is Status.FAIL
    assert "don't send mail direct" in result.result
    assert result.fix.startswith("Do not send direct") and "relay mode" in result.fix


async def test_a_blocked_resolver_answer_is_unknown_not_clean(world: LabWorld, key: Path) -> None:
    world.zone.add_a(query_name("127.0.0.1", BLOCKLIST), "127.255.255.254")
    report = await preflight(world, key)
    result = report.get("dnsbl")
    assert result.status is Status.UNKNOWN and "not a listing" in result.result
    assert "resolver" in result.fix and report.exit_code == 0


async def test_a_blocklist_that_does_not_answer_is_unknown(world: LabWorld, key: Path) -> None:
    world.zone.servfail(query_name("127.0.0.1", BLOCKLIST))
    result = (await preflight(world, key)).get("dnsbl")
    assert result.status is Status.UNKNOWN and "could not be asked" in result.result


async def test_every_zone_is_asked(world: LabWorld, key: Path) -> None:
    world.zone.add_domain("other-bl.test")
    world.zone.add_a(query_name("127.0.0.1", "other-bl.test"), "127.0.0.4")
    result = (await preflight(world, key, net={"dnsbl_zones": (BLOCKLIST, "other-bl.test")})
              ).get("dnsbl")
    assert result.status is Status.FAIL and "XBL" in result.result
    assert "not listed on bl.test" in result.result


def test_dnsbl_query_names_reverse_octets_and_nibbles() -> None:
    assert query_name("192.0.2.1", "zen.spamhaus.org") == "1.2.0.192.zen.spamhaus.org"
    assert query_name("2001:db8::1", "bl.test") == (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test"
    )


async def test_a_server_refusing_in_its_banner_is_a_warning_with_its_words(
    world: LabWorld, key: Path
) -> None:
    refusing = Behaviour(
        hostname="mx.refusing.test",
        faults=(Fault(Stage.GREETING, 554, "mx.refusing.test 5.7.1 your address is listed"),),
    )
    world.host("mx.refusing.test", refusing).domain("refusing.test", "mx.refusing.test")
    async with LabServer(refusing, host=world.hosts["mx.refusing.test"].address,
                         port=world.port):
        result = (await preflight(world, key, domains={"refusing.test": 1})).get("port25")
    assert result.status is Status.WARN
    assert "554" in result.result and "your address is listed" in result.result
    assert "relay mode" in result.fix
