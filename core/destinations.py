"""Destinations and providers: who shares a connection budget, and when one is paused.

A *destination* is a set of MX hosts (many domains hosted by one provider share it); a
*provider* is the registered domain of those hosts (all Google-hosted domains, all
Microsoft-hosted ones), and its destinations share one concurrency budget. Both can be
paused; an adaptive limit starts small, grows on success and shrinks by a fraction on
trouble (Postfix measured whole steps deferring half the mail against a 421 limiter).
Pure bookkeeping: no sockets, no timers, no store.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.dns import Route

if TYPE_CHECKING:
    from core.engine import Job

# Second-level labels under which registrations happen one level deeper ("co.uk").
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go"})


def registered_domain(host: str) -> str:
    """The registrable part of a host name: ``aspmx.l.google.com`` -> ``google.com``.

    A heuristic (last two labels; three under ``co.uk``-style country domains) rather
    than the full Public Suffix List: it only groups MX hosts for shared limits, where a
    rare wrong guess costs a little concurrency, not a delivery.
    """
    labels = host.rstrip(".").lower().split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


@dataclass(frozen=True, slots=True)
class ProviderRule:
    """Limits a large mailbox provider documents or enforces, shipped as defaults."""

    connections: int
    messages_per_connection: int


#: Google and Microsoft both throttle senders past about 5 connections and close
#: connections after about 50 messages; staying inside avoids their 421s.
PROVIDER_RULES: dict[str, ProviderRule] = {
    "google.com": ProviderRule(5, 50),
    "googlemail.com": ProviderRule(5, 50),
    "outlook.com": ProviderRule(5, 50),
    "hotmail.com": ProviderRule(5, 50),
}


@dataclass(slots=True, eq=False)
class Provider:
    """The budget that all destinations hosted by one provider share."""

    name: str
    limit: int
    messages_per_connection: int | None = None
    #: Messages per minute for the whole provider (None: no pacing).
    rate: float | None = None
    active: int = 0
    paused_until: float = 0.0
    next_send_at: float = 0.0
    wake_armed: bool = False

    def pace(self, now: float) -> float:
        """0 if a message may go now (and it is counted), else the time it may."""
        if self.rate is None:
            return 0.0
        if now < self.next_send_at:
            return self.next_send_at
        self.next_send_at = max(now, self.next_send_at) + 60.0 / self.rate
        return 0.0


@dataclass(slots=True, eq=False)
class Destination:
    """One MX host set: its route, its queue of due jobs, its connections."""

    key: str
    route: Route
    provider: Provider
    max_limit: int
    limit: int
    queue: deque[Job] = field(default_factory=deque)
    active: int = 0
    failures: int = 0  # consecutive connection failures
    paused_until: float = 0.0

    def targets(
        self, max_hosts: int, rng: random.Random, prefer: str = ""
    ) -> list[tuple[str, str]]:
        """(host, address) pairs in the order to try: MX preference order with equal
        preferences shuffled anew for each connection (RFC 5321 §5.1), so that every
        host of a rank gets its share; the preferred host (the one that greylisted the
        recipient at the head of the queue) first."""
        hosts = list(self.route.hosts)
        rng.shuffle(hosts)
        hosts.sort(key=lambda host: (host.name != prefer, host.preference))  # stable
        del hosts[max_hosts:]  # after the shuffle: every host of a rank gets its share
        return [(host.name, address) for host in hosts for address in host.addresses]

    @property
    def resumes_at(self) -> float:
        """When this destination's pause, or its provider's, ends (past: not paused)."""
        return max(self.paused_until, self.provider.paused_until)

    def paused(self, now: float) -> bool:
        return now < self.resumes_at

    def can_open(self, now: float) -> bool:
        return (
            bool(self.queue)
            and self.active < self.limit
            and self.provider.active < self.provider.limit
            and not self.paused(now)
            and now >= self.provider.next_send_at  # paced: not before the next slot
            and not (self.provider.rate is not None and self.provider.active)  # one at a time
        )

    def succeeded(self) -> None:
        """A connection delivered: trust the destination with one more connection."""
        self.failures = 0
        self.limit = min(self.limit + 1, self.max_limit)

    def struggled(self) -> None:
        """A 421 or a failed connection: shrink by a quarter, never below one."""
        self.failures += 1
        self.limit = max(1, int(self.limit * 0.75))


class Destinations:
    """All destinations and providers of a run, created as routes are learnt."""

    def __init__(self, per_destination: int, initial: int = 2, rate: float | None = None) -> None:
        self.per_destination = per_destination
        self.rate = rate
        self.initial = min(initial, per_destination)
        self._by_key: dict[str, Destination] = {}
        self._providers: dict[str, Provider] = {}

    def for_route(self, route: Route, provider_name: str = "") -> Destination:
        """The destination of ``route``'s host set; ``provider_name`` names its provider
        when the hosts' names do not (relays), else the registered domain of the first."""
        key = route.destination
        destination = self._by_key.get(key)
        if destination is None:
            name = provider_name or (
                registered_domain(route.hosts[0].name) if route.hosts else route.domain
            )
            provider = self._providers.get(name) or self._new_provider(name)
            limit = min(self.per_destination, provider.limit)
            destination = Destination(key, route, provider, limit, min(self.initial, limit))
            self._by_key[key] = destination
        return destination

    def _new_provider(self, name: str) -> Provider:
        rule = PROVIDER_RULES.get(name)
        limit = min(self.per_destination, rule.connections) if rule else self.per_destination
        provider = Provider(name, limit, rule.messages_per_connection if rule else None, self.rate)
        self._providers[name] = provider
        return provider

    def __iter__(self) -> Iterator[Destination]:
        return iter(self._by_key.values())

    def providers(self) -> list[Provider]:
        return list(self._providers.values())
