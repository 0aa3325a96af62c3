"""Shipped provider rules: Google- and Microsoft-hosted domains get 5 connections and 50
messages per connection whatever --per-destination says, and share one budget."""

from __future__ import annotations

from core.destinations import Destinations
from core.dns import MXHost, Route


def route(domain: str, *hosts: str) -> Route:
    return Route(
        domain,
        tuple(MXHost(host, 10 * (n + 1), ("127.0.0.1",)) for n, host in enumerate(hosts)),
        implicit=False,
    )


def test_google_hosted_domains_share_googles_limits() -> None:
    destinations = Destinations(per_destination=20)
    first = destinations.for_route(route("a.test", "aspmx.l.google.com", "alt1.aspmx.l.google.com"))
    second = destinations.for_route(route("b.test", "smtp.google.com"))
    assert first.provider is second.provider
    assert first.provider.limit == 5 and first.max_limit == 5
    assert first.provider.messages_per_connection == 50


def test_other_providers_take_the_configured_limit() -> None:
    destinations = Destinations(per_destination=20)
    other = destinations.for_route(route("c.test", "mx.c.test"))
    assert other.provider.limit == 20 and other.provider.messages_per_connection is None


def test_pacing_counts_each_send_and_names_the_next_slot() -> None:
    destinations = Destinations(per_destination=5, rate=60.0)
    provider = destinations.for_route(route("d.test", "mx.d.test")).provider
    assert provider.pace(100.0) == 0.0
    assert provider.pace(100.2) == 101.0
    assert provider.pace(101.0) == 0.0
