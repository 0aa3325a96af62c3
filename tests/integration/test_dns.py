"""MX resolution against the lab DNS server: every lookup is a real UDP (or TCP) query to
127.0.0.1; the system resolver is never used. Time in caches is a fake clock we advance."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import pytest

from core.dns import (
    MAX_MX_HOSTS,
    NO_ADDRESS_REASON,
    NO_MX_ADDRESS_REASON,
    NULL_MX_REASON,
    NXDOMAIN_REASON,
    REFUSED_REASON,
    TRANSIENT_FAILURE_TTL,
    MXHost,
    MXResolver,
    Route,
    RouteFailure,
    parse_nameserver,
)
from core.lab.dns import DEFAULT_NEGATIVE_TTL, LabDNS, LabZone


class Clock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def lab() -> AsyncIterator[LabDNS]:
    async with LabDNS(LabZone()) as server:
        yield server


def resolver(
    server: LabDNS,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    timeout: float = 2.0,
    attempts: int = 2,
) -> MXResolver:
    return MXResolver(
        [server.address],
        timeout=timeout,
        attempts=attempts,
        rng=rng if rng is not None else random.Random(1),
        clock=clock if clock is not None else Clock(),
    )


async def route_of(server: LabDNS, domain: str, *, timeout: float = 2.0) -> Route:
    route = await resolver(server, timeout=timeout).route(domain)
    assert isinstance(route, Route), route
    return route


async def failure_of(server: LabDNS, domain: str, *, timeout: float = 2.0) -> RouteFailure:
    failure = await resolver(server, timeout=timeout).route(domain)
    assert isinstance(failure, RouteFailure), failure
    return failure


def names(route: Route) -> list[str]:
    return [host.name for host in route.hosts]


# ---- routes ----------------------------------------------------------------------------------


async def test_hosts_in_preference_order_with_their_addresses(lab: LabDNS) -> None:
    lab.zone.add_mx("a.test", [(30, "mx3.a.test"), (10, "MX1.A.test"), (20, "mx2.a.test")])
    lab.zone.add_a("mx1.a.test", "127.0.0.11").add_aaaa("mx1.a.test", "::1")
    lab.zone.add_a("mx2.a.test", "127.0.0.12", "127.0.0.13")
    lab.zone.add_aaaa("mx3.a.test", "::1")
    route = await route_of(lab, "A.Test.")
    assert route.domain == "a.test"
    assert not route.implicit
    assert [(host.name, host.preference) for host in route.hosts] == [
        ("mx1.a.test", 10),
        ("mx2.a.test", 20),
        ("mx3.a.test", 30),
    ]
    mx1, mx2, mx3 = route.hosts
    assert mx1.addresses == ("127.0.0.11", "::1")  # IPv4 first
    assert sorted(mx2.addresses) == ["127.0.0.12", "127.0.0.13"]  # servers shuffle RRsets
    assert mx3.addresses == ("::1",)
    assert route.destination == "mx1.a.test,mx2.a.test,mx3.a.test"


async def test_equal_preferences_take_turns_first_across_calls(lab: LabDNS) -> None:
    lab.zone.add_mx("a.test", [(10, "mx1.a.test"), (10, "mx2.a.test"), (20, "backup.a.test")])
    for host in ("mx1.a.test", "mx2.a.test", "backup.a.test"):
        lab.zone.add_a(host, "127.0.0.1")
    mx = resolver(lab, rng=random.Random(7))
    orders = set()
    for _ in range(20):
        route = await mx.route("a.test")
        assert isinstance(route, Route)
        orders.add(tuple(names(route)))
    assert orders == {
        ("mx1.a.test", "mx2.a.test", "backup.a.test"),
        ("mx2.a.test", "mx1.a.test", "backup.a.test"),
    }
    assert lab.queries("a.test", "MX") == 1  # reshuffled from the cache
    assert route.destination == "backup.a.test,mx1.a.test,mx2.a.test"


async def test_mx_hosts_without_address_are_skipped(lab: LabDNS) -> None:
    lab.zone.add_mx("a.test", [(10, "gone.a.test"), (20, "bare.a.test"), (30, "mx.a.test")])
    lab.zone.add_domain("bare.a.test").add_txt("bare.a.test", "no address here")
    lab.zone.add_a("mx.a.test", "127.0.0.1")
    route = await route_of(lab, "a.test")
    assert route.hosts == (MXHost("mx.a.test", 30, ("127.0.0.1",)),)


async def test_a_host_with_only_one_address_family_failing_still_counts(lab: LabDNS) -> None:
    lab.zone.mx_for("a.test", {"mx.a.test": "127.0.0.1"})
    lab.zone.servfail("mx.a.test", rdtype="AAAA")
    route = await route_of(lab, "a.test")
    assert route.hosts == (MXHost("mx.a.test", 10, ("127.0.0.1",)),)


async def test_no_mx_host_with_an_address_is_transient(lab: LabDNS) -> None:
    lab.zone.add_mx("a.test", [(10, "gone.a.test"), (20, "bare.a.test"), (30, "sick.a.test")])
    lab.zone.add_domain("bare.a.test").add_domain("sick.a.test").servfail("sick.a.test")
    failure = await failure_of(lab, "a.test")
    assert not failure.permanent
    assert failure.reason == (
        f"{NO_MX_ADDRESS_REASON} (gone.a.test does not exist (NXDOMAIN); "
        "bare.a.test has no A/AAAA records; "
        "sick.a.test: DNS server failure (SERVFAIL) looking up A)"
    )


async def test_no_mx_means_the_domain_itself_at_preference_0(lab: LabDNS) -> None:
    lab.zone.add_a("plain.test", "127.0.0.5").add_aaaa("plain.test", "::1")
    route = await route_of(lab, "plain.test")
    assert route == Route("plain.test", (MXHost("plain.test", 0, ("127.0.0.5", "::1")),), True)
    assert route.destination == "plain.test"


async def test_no_mx_and_no_address_is_permanent(lab: LabDNS) -> None:
    lab.zone.add_domain("empty.test")
    failure = await failure_of(lab, "empty.test")
    assert failure == RouteFailure("empty.test", permanent=True, reason=NO_ADDRESS_REASON)


async def test_no_mx_and_address_lookup_failing_is_transient(lab: LabDNS) -> None:
    lab.zone.add_domain("flaky.test").servfail("flaky.test", rdtype="A")
    failure = await failure_of(lab, "flaky.test")
    assert failure == RouteFailure(
        "flaky.test", permanent=False, reason="DNS server failure (SERVFAIL) looking up A"
    )


async def test_an_ip_literal_mx_target_is_no_host(lab: LabDNS) -> None:
    # dnspython looks "127.0.0.1." up as a name; our server is not authoritative for it.
    lab.zone.add_mx("literal.test", [(10, "127.0.0.1")])
    failure = await failure_of(lab, "literal.test")
    assert not failure.permanent
    assert failure.reason.startswith(NO_MX_ADDRESS_REASON)


# ---- failures ----------------------------------------------------------------------------------


async def test_null_mx_is_permanent_and_no_host_is_looked_up(lab: LabDNS) -> None:
    lab.zone.null_mx("nomail.test")
    failure = await failure_of(lab, "nomail.test")
    assert failure == RouteFailure("nomail.test", permanent=True, reason=NULL_MX_REASON)
    assert lab.stats.queries == 1


async def test_nxdomain_is_permanent_and_kept_for_the_negative_ttl(lab: LabDNS) -> None:
    clock = Clock()
    mx = resolver(lab, clock=clock)
    failure = RouteFailure("nowhere.test", permanent=True, reason=NXDOMAIN_REASON)
    assert await mx.route("nowhere.test") == failure
    clock.advance(DEFAULT_NEGATIVE_TTL - 1)
    assert await mx.route("nowhere.test") == failure
    assert lab.queries("nowhere.test", "MX") == 1
    clock.advance(1)
    assert await mx.route("nowhere.test") == failure
    assert lab.queries("nowhere.test", "MX") == 2


async def test_servfail_is_transient_kept_briefly_then_heals(lab: LabDNS) -> None:
    lab.zone.mx_for("a.test", {"mx.a.test": "127.0.0.1"})
    lab.zone.servfail("a.test", times=1)
    clock = Clock()
    mx = resolver(lab, clock=clock)
    failure = RouteFailure("a.test", False, "DNS server failure (SERVFAIL) looking up MX")
    assert await mx.route("a.test") == failure
    clock.advance(TRANSIENT_FAILURE_TTL - 0.1)
    assert await mx.route("a.test") == failure
    assert lab.queries("a.test", "MX") == 1
    clock.advance(0.1)
    route = await mx.route("a.test")
    assert isinstance(route, Route)
    assert names(route) == ["mx.a.test"]
    assert lab.queries("a.test", "MX") == 2


async def test_silence_is_a_transient_timeout_within_the_timeout(lab: LabDNS) -> None:
    lab.zone.mx_for("a.test", {"mx.a.test": "127.0.0.1"})
    lab.zone.drop("a.test")
    started = time.monotonic()
    failure = await failure_of(lab, "a.test", timeout=0.5)
    elapsed = time.monotonic() - started
    assert failure == RouteFailure("a.test", False, "no answer from the DNS servers in 0.5 s")
    assert 0.45 <= elapsed < 0.9
    assert lab.queries("a.test", "MX") == 2  # attempts=2 within the 0.5 s


async def test_one_lost_answer_is_asked_again(lab: LabDNS) -> None:
    lab.zone.mx_for("a.test", {"mx.a.test": "127.0.0.1"})
    lab.zone.drop("a.test", times=1)
    route = await route_of(lab, "a.test", timeout=1.0)
    assert names(route) == ["mx.a.test"]
    assert lab.queries("a.test", "MX") == 2


async def test_refused_is_transient(lab: LabDNS) -> None:
    lab.zone.mx_for("a.test", {"mx.a.test": "127.0.0.1"})
    lab.zone.refuse("a.test")
    failure = await failure_of(lab, "a.test")
    assert failure == RouteFailure("a.test", False, f"{REFUSED_REASON} (REFUSED) looking up MX")


async def test_a_nameserver_nobody_listens_on_is_transient() -> None:
    server = LabDNS()
    await server.start()
    await server.stop()  # its port is free: nothing answers (dnspython ignores ICMP)
    failure = await failure_of(server, "a.test", timeout=0.3)
    assert failure == RouteFailure("a.test", False, "no answer from the DNS servers in 0.3 s")


@pytest.mark.parametrize(
    "domain",
    [
        "",
        ".",
        "a..test",
        "-a.test",
        "a-.test",
        "a_b.test",
        "ex ample.test",
        "bücher.test",
        "[127.0.0.1]",
        "127.0.0.1",
        "x" * 64 + ".test",
        ("a" * 62 + ".") * 4 + "test",
    ],
)
async def test_what_is_not_a_domain_name_fails_permanently_without_a_query(
    lab: LabDNS, domain: str
) -> None:
    failure = await failure_of(lab, domain)
    assert failure.permanent
    assert lab.stats.queries == 0


# ---- caching and coalescing ------------------------------------------------------------------


async def test_one_query_per_name_per_ttl_however_many_ask(lab: LabDNS) -> None:
    lab.zone.add_mx("a.test", [(10, "mx.a.test")], ttl=300)
    lab.zone.add_a("mx.a.test", "127.0.0.1", ttl=300).add_aaaa("mx.a.test", "::1", ttl=300)
    clock = Clock()
    mx = resolver(lab, clock=clock)

    async def burst() -> None:
        routes = await asyncio.gather(*(mx.route("a.test") for _ in range(100)))
        assert all(isinstance(route, Route) and names(route) == ["mx.a.test"] for route in routes)

    await burst()
    asked = [("a.test", "MX"), ("mx.a.test", "A"), ("mx.a.test", "AAAA")]
    assert [lab.queries(name, rdtype) for name, rdtype in asked] == [1, 1, 1]
    assert lab.stats.queries == 3
    clock.advance(299)
    await burst()
    assert lab.stats.queries == 3
    clock.advance(1)
    await burst()
    assert lab.queries("a.test", "MX") == 2
    assert lab.stats.queries == 6


async def test_an_address_expiring_first_is_asked_again_alone(lab: LabDNS) -> None:
    lab.zone.add_mx("a.test", [(10, "mx.a.test")], ttl=300)
    lab.zone.add_a("mx.a.test", "127.0.0.1", ttl=30).add_aaaa("mx.a.test", "::1", ttl=300)
    clock = Clock()
    mx = resolver(lab, clock=clock)
    await mx.route("a.test")
    clock.advance(30)
    await mx.route("a.test")
    assert lab.queries("a.test", "MX") == 1
    assert lab.queries("mx.a.test", "A") == 2


async def test_a_shared_mx_host_is_resolved_once_for_all_its_domains(lab: LabDNS) -> None:
    for domain in ("one.test", "two.test"):
        lab.zone.add_mx(domain, [(10, "mx.provider.test")])
    lab.zone.add_a("mx.provider.test", "127.0.0.1")
    mx = resolver(lab)
    one, two = await asyncio.gather(mx.route("one.test"), mx.route("two.test"))
    assert isinstance(one, Route)
    assert isinstance(two, Route)
    assert one.destination == two.destination == "mx.provider.test"
    assert lab.queries("mx.provider.test", "A") == 1
    assert lab.queries("mx.provider.test", "AAAA") == 1


async def test_one_waiter_cancelled_does_not_cancel_the_lookup_for_the_others(
    lab: LabDNS,
) -> None:
    lab.zone.mx_for("a.test", {"mx.a.test": "127.0.0.1"})
    mx = resolver(lab)
    impatient = asyncio.ensure_future(mx.route("a.test"))
    patient = asyncio.ensure_future(mx.route("a.test"))
    await lab.wait_for(lambda: lab.queries("a.test", "MX") == 1)
    impatient.cancel()
    route = await patient
    assert isinstance(route, Route)
    assert impatient.cancelled()
    assert lab.queries("a.test", "MX") == 1


# ---- big answers -------------------------------------------------------------------------------


async def test_an_answer_too_big_for_udp_comes_over_tcp(lab: LabDNS) -> None:
    hosts = [f"mail-exchanger-{n:03}.big.test" for n in range(64)]
    lab.zone.add_mx("big.test", [(10 + n % 4, host) for n, host in enumerate(hosts)])
    for host in hosts:
        lab.zone.add_a(host, "127.0.0.1")
    route = await route_of(lab, "big.test")
    assert lab.stats.truncated == 1
    assert lab.stats.tcp == 1
    assert lab.queries("big.test", "MX") == 2  # UDP (truncated), then TCP
    assert len(route.hosts) == MAX_MX_HOSTS
    assert [host.preference for host in route.hosts] == [10] * MAX_MX_HOSTS
    assert lab.queries(hosts[-1], "A") == 0  # past the limit: never asked


# ---- nameservers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        (" 192.0.2.1:53 ", ("192.0.2.1", 53)),
        ("::1", ("::1", 53)),
        ("[::1]", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("2001:DB8::1", ("2001:db8::1", 53)),
        ("[2001:db8::1]:65535", ("2001:db8::1", 65535)),
    ],
)
def test_parse_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":53",
        "dns.example.test",
        "dns.example.test:53",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:5x",
        "127.0.0.1:-1",
        "[::1",
        "[::1]5353",
        "[::1]:",
        "[127.0.0.1]:53",
        "256.0.0.1",
        "::1]:53",
    ],
)
def test_parse_nameserver_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a nameserver"):
        parse_nameserver(text)


def test_resolver_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="at least one nameserver"):
        MXResolver([])
    with pytest.raises(ValueError, match="IP address"):
        MXResolver([("dns.example.test", 53)])
    with pytest.raises(ValueError, match="port"):
        MXResolver([("127.0.0.1", 0)])
    with pytest.raises(ValueError, match="timeout"):
        MXResolver([("127.0.0.1", 53)], timeout=0)
    with pytest.raises(ValueError, match="attempts"):
        MXResolver([("127.0.0.1", 53)], attempts=0)


async def test_the_lab_nameserver_string_parses_back(lab: LabDNS) -> None:
    assert parse_nameserver(lab.nameserver) == lab.address


async def test_answers_tells_a_silent_nameserver_from_one_that_replies() -> None:
    import socket

    async with LabDNS(LabZone()) as lab:  # replies, even for a name it does not serve
        assert await MXResolver([lab.address], timeout=2).answers()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        resolver = MXResolver([("127.0.0.1", silent.getsockname()[1])], timeout=0.5)
        assert not await resolver.answers()
