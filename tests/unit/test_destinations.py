"""Destinations and providers: grouping MX hosts, the order to try them, adaptive limits."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.destinations import (
    PROVIDER_RULES,
    Destination,
    Destinations,
    Provider,
    registered_domain,
)
from core.dns import MXHost, Route


def host(name: str, preference: int = 10, *addresses: str) -> MXHost:
    return MXHost(name, preference, addresses or (f"192.0.2.{len(name)}",))


def route(domain: str, *hosts: MXHost) -> Route:
    return Route(domain, hosts, implicit=False)


def destination(*hosts: MXHost, limit: int = 2, max_limit: int = 5) -> Destination:
    r = route("x.test", *hosts)
    return Destination(r.destination, r, Provider("x.test", max_limit), max_limit, limit)


# ---- registered domains --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "registered"),
    [
        ("aspmx.l.google.com", "google.com"),
        ("alt1.aspmx.l.google.com", "google.com"),
        ("x-test.mail.protection.outlook.com", "outlook.com"),
        ("mta5.am0.yahoodns.net", "yahoodns.net"),
        ("mx.example.co.uk", "example.co.uk"),
        ("mx1.mail.example.com.au", "example.com.au"),
        ("mx.example.ac.jp", "example.ac.jp"),
        ("mx1.grey.test", "grey.test"),
        ("grey.test", "grey.test"),
        ("MX1.Grey.TEST.", "grey.test"),
        ("mx.example.de", "example.de"),
        ("localhost", "localhost"),
        ("example.co.uk", "example.co.uk"),
        ("co.uk", "co.uk"),
    ],
)
def test_registered_domain(name: str, registered: str) -> None:
    assert registered_domain(name) == registered


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(st.lists(_LABEL, min_size=1, max_size=6))
def test_registered_domain_is_a_suffix_of_two_or_three_labels(labels: list[str]) -> None:
    name = ".".join(labels)
    registered = registered_domain(name.upper() + ".")
    assert name.endswith(registered)
    count = registered.count(".") + 1
    assert count == min(len(labels), 2) or count == 3


# ---- the order to try hosts ----------------------------------------------------------


def test_targets_follow_preference_and_expand_addresses() -> None:
    d = destination(
        host("mx3.x.test", 30, "192.0.2.30"),
        host("mx1.x.test", 10, "192.0.2.10", "2001:db8::10"),
        host("mx2.x.test", 20, "192.0.2.20", "192.0.2.21"),
    )
    assert d.targets(5, random.Random(1)) == [
        ("mx1.x.test", "192.0.2.10"),
        ("mx1.x.test", "2001:db8::10"),
        ("mx2.x.test", "192.0.2.20"),
        ("mx2.x.test", "192.0.2.21"),
        ("mx3.x.test", "192.0.2.30"),
    ]


def test_host_without_addresses_gives_no_targets() -> None:
    d = destination(MXHost("mx0.x.test", 5, ()), host("mx1.x.test", 10, "192.0.2.1"))
    assert d.targets(5, random.Random(0)) == [("mx1.x.test", "192.0.2.1")]


def test_equal_preferences_are_shuffled_for_each_connection() -> None:
    d = destination(
        host("a.x.test", 10, "192.0.2.1"),
        host("b.x.test", 10, "192.0.2.2"),
        host("backup.x.test", 20, "192.0.2.3"),
    )
    rng = random.Random(42)
    orders = Counter(tuple(name for name, _ in d.targets(5, rng)) for _ in range(200))
    assert set(orders) == {
        ("a.x.test", "b.x.test", "backup.x.test"),
        ("b.x.test", "a.x.test", "backup.x.test"),
    }
    # Both hosts of the rank get a fair share of first connections.
    assert min(orders.values()) > 60


def test_targets_are_reproducible_with_a_seed() -> None:
    d = destination(*(host(f"mx{i}.x.test", 10) for i in range(4)))
    assert d.targets(5, random.Random(9)) == d.targets(5, random.Random(9))


def test_targets_do_not_reorder_the_route() -> None:
    hosts = (host("a.x.test", 10), host("b.x.test", 10), host("c.x.test", 10))
    d = destination(*hosts)
    for seed in range(10):
        d.targets(5, random.Random(seed))
    assert d.route.hosts == hosts


@pytest.mark.parametrize("prefer", ["c.x.test", "backup.x.test", "b.x.test"])
def test_preferred_host_comes_first_then_preference_order(prefer: str) -> None:
    d = destination(
        host("a.x.test", 10, "192.0.2.1"),
        host("b.x.test", 10, "192.0.2.2"),
        host("c.x.test", 10, "192.0.2.3"),
        host("backup.x.test", 20, "192.0.2.9"),
    )
    for seed in range(20):
        names = [name for name, _ in d.targets(5, random.Random(seed), prefer)]
        assert names[0] == prefer
        rest = names[1:]
        assert sorted(rest) == sorted({"a.x.test", "b.x.test", "c.x.test", "backup.x.test"}
                                      - {prefer})
        if prefer != "backup.x.test":
            assert rest[-1] == "backup.x.test"


def test_unknown_preferred_host_changes_nothing() -> None:
    d = destination(host("a.x.test", 10), host("b.x.test", 20))
    assert d.targets(5, random.Random(0), "gone.x.test") == d.targets(5, random.Random(0))


def test_max_hosts_limits_the_hosts_tried() -> None:
    d = destination(*(host(f"mx{i}.x.test", i) for i in range(8)))
    names = [name for name, _ in d.targets(3, random.Random(0))]
    assert names == ["mx0.x.test", "mx1.x.test", "mx2.x.test"]


@given(
    preferences=st.lists(st.integers(0, 3), min_size=1, max_size=7),
    seed=st.integers(0, 2**32 - 1),
)
def test_targets_are_always_in_preference_order(preferences: list[int], seed: int) -> None:
    hosts = [host(f"mx{i}.x.test", p, f"192.0.2.{i}") for i, p in enumerate(preferences)]
    hosts.sort(key=lambda h: h.preference)  # a Route holds its hosts in delivery order
    d = destination(*hosts)
    targets = d.targets(10, random.Random(seed))
    prefs = {h.name: h.preference for h in hosts}
    order = [prefs[name] for name, _ in targets]
    assert order == sorted(order)
    assert sorted(targets) == sorted((h.name, h.addresses[0]) for h in hosts)


def test_bug_every_host_of_a_rank_gets_a_share_despite_max_hosts() -> None:
    d = destination(*(host(f"mx{i}.x.test", 10) for i in range(7)))
    rng = random.Random(5)
    firsts = {d.targets(5, rng)[0][0] for _ in range(300)}
    assert firsts == {f"mx{i}.x.test" for i in range(7)}


# ---- limits --------------------------------------------------------------------------


def test_can_open_needs_queue_room_provider_room_and_no_pause() -> None:
    d = destination(host("mx.x.test"), limit=2, max_limit=5)
    assert not d.can_open(0.0)  # nothing queued
    d.queue.append(object())  # type: ignore[arg-type]
    assert d.can_open(0.0)
    d.active = 2
    assert not d.can_open(0.0)  # at its own limit
    d.active = 1
    d.provider.active = d.provider.limit
    assert not d.can_open(0.0)  # provider budget spent
    d.provider.active = 0
    assert d.can_open(0.0)


def test_pauses_of_destination_and_provider() -> None:
    d = destination(host("mx.x.test"))
    d.queue.append(object())  # type: ignore[arg-type]
    assert not d.paused(100.0)
    d.paused_until = 150.0
    assert d.paused(100.0) and d.paused(149.9)
    assert not d.paused(150.0)
    assert not d.can_open(100.0) and d.can_open(150.0)
    d.provider.paused_until = 200.0
    assert d.paused(150.0) and d.paused(199.0)
    assert not d.paused(200.0)
    assert not d.can_open(199.0) and d.can_open(200.0)


def test_success_grows_the_limit_up_to_the_maximum() -> None:
    d = destination(host("mx.x.test"), limit=2, max_limit=5)
    d.failures = 3
    seen = []
    for _ in range(6):
        d.succeeded()
        seen.append(d.limit)
    assert seen == [3, 4, 5, 5, 5, 5]
    assert d.failures == 0


@pytest.mark.parametrize(
    ("limit", "after"), [(20, 15), (8, 6), (5, 3), (4, 3), (3, 2), (2, 1), (1, 1)]
)
def test_trouble_shrinks_the_limit_by_a_quarter(limit: int, after: int) -> None:
    d = destination(host("mx.x.test"), limit=limit, max_limit=20)
    d.struggled()
    assert d.limit == after
    assert d.failures == 1


def test_repeated_trouble_never_goes_below_one() -> None:
    d = destination(host("mx.x.test"), limit=50, max_limit=50)
    for _ in range(30):
        d.struggled()
    assert d.limit == 1
    assert d.failures == 30
    d.succeeded()
    assert (d.limit, d.failures) == (2, 0)


@given(limit=st.integers(1, 10_000))
def test_struggled_bounds(limit: int) -> None:
    d = destination(host("mx.x.test"), limit=limit, max_limit=10_000)
    d.struggled()
    assert 1 <= d.limit <= limit
    assert d.limit >= int(limit * 0.75)
    if limit > 1:
        assert d.limit < limit


# ---- destinations and providers ------------------------------------------------------


def test_for_route_creates_once_per_host_set() -> None:
    destinations = Destinations(per_destination=5)
    a = destinations.for_route(route("one.test", host("mx1.grey.test"), host("mx2.grey.test")))
    b = destinations.for_route(route("two.test", host("mx2.grey.test"), host("mx1.grey.test")))
    assert a is b
    assert a.key == "mx1.grey.test,mx2.grey.test"
    assert list(destinations) == [a]
    assert (a.limit, a.max_limit) == (2, 5)
    assert a.provider.name == "grey.test"
    assert a.provider.limit == 5


def test_routes_at_one_provider_share_its_budget() -> None:
    destinations = Destinations(per_destination=4)
    gmail_a = destinations.for_route(
        route("a.test", host("aspmx.l.google.com", 1), host("alt1.aspmx.l.google.com", 5))
    )
    gmail_b = destinations.for_route(route("b.test", host("aspmx.l.google.com", 1)))
    outlook = destinations.for_route(
        route("c.test", host("c-test.mail.protection.outlook.com", 0))
    )
    assert gmail_a is not gmail_b
    assert gmail_a.provider is gmail_b.provider
    assert gmail_a.provider.name == "google.com"
    assert outlook.provider is not gmail_a.provider
    assert outlook.provider.name == "outlook.com"
    assert [p.name for p in destinations.providers()] == ["google.com", "outlook.com"]
    # The shared budget: while b holds the provider's connections, a cannot open one.
    gmail_a.queue.append(object())  # type: ignore[arg-type]
    assert gmail_a.can_open(0.0)
    gmail_b.provider.active = 4
    assert not gmail_a.can_open(0.0)
    # A provider pause pauses every destination of that provider, not the others.
    gmail_b.provider.active = 0
    gmail_b.provider.paused_until = 60.0
    assert gmail_a.paused(0.0) and gmail_b.paused(0.0)
    assert not outlook.paused(0.0)


def test_provider_of_a_route_without_hosts_is_its_domain() -> None:
    destinations = Destinations(per_destination=3)
    d = destinations.for_route(Route("empty.test", (), implicit=True))
    assert d.provider.name == "empty.test"
    assert d.key == ""


def test_initial_limit_never_exceeds_per_destination() -> None:
    assert Destinations(per_destination=1, initial=2).initial == 1
    destinations = Destinations(per_destination=10, initial=3)
    d = destinations.for_route(route("a.test", host("mx.a.test")))
    assert (d.limit, d.max_limit) == (3, 10)


def test_known_providers_cap_connections_and_messages_per_connection() -> None:
    destinations = Destinations(per_destination=10, initial=8)
    google = destinations.for_route(route("a.test", host("aspmx.l.google.com", 1)))
    rule = PROVIDER_RULES["google.com"]
    assert google.provider.limit == rule.connections
    assert google.provider.messages_per_connection == rule.messages_per_connection
    assert google.max_limit == rule.connections
    assert google.limit <= google.max_limit
    other = destinations.for_route(route("b.test", host("mx.b.test")))
    assert (other.provider.limit, other.max_limit, other.limit) == (10, 10, 8)
    assert other.provider.messages_per_connection is None


def test_a_small_per_destination_limit_wins_over_a_provider_rule() -> None:
    destinations = Destinations(per_destination=2)
    d = destinations.for_route(route("a.test", host("x-test.mail.protection.outlook.com")))
    assert (d.provider.limit, d.max_limit, d.limit) == (2, 2, 2)


def test_pace_without_a_rate_never_waits() -> None:
    provider = Provider("x.test", 5)
    assert all(provider.pace(0.0) == 0.0 for _ in range(100))


def test_pace_spaces_messages_by_the_rate() -> None:
    provider = Provider("x.test", 5, rate=30.0)  # one message every 2 s
    assert provider.pace(100.0) == 0.0
    assert provider.pace(100.0) == 102.0  # not yet: the time it may
    assert provider.pace(101.9) == 102.0
    assert provider.pace(102.0) == 0.0
    assert provider.pace(103.0) == 104.0
    # After a quiet spell, the next message goes at once and spacing restarts from then.
    assert provider.pace(500.0) == 0.0
    assert provider.pace(501.0) == 502.0


def test_destinations_pass_their_rate_to_new_providers() -> None:
    destinations = Destinations(per_destination=3, rate=120.0)
    d = destinations.for_route(route("a.test", host("mx.a.test")))
    assert d.provider.rate == 120.0
    assert d.provider.pace(0.0) == 0.0
    assert d.provider.pace(0.0) == 0.5
