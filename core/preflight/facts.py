"""What several checks share, found once per run: the campaign's routes grouped by
provider, the probes of the top destinations, the outgoing addresses, their reverse DNS;
in relay mode the relays' addresses and the probes of the relays (banner, TLS as
configured, the EHLO after it; never a login).

Each fact is computed on first use and awaited by every check that needs it (one task
per fact), so the checks can run concurrently without asking twice. Owns no policy: what
a fact *means* (pass, warn, fail) is each check's business.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from core.connection import ConnectionConfig, Target, Timeouts, TLSInfo, deliver
from core.destinations import registered_domain
from core.dns import MXHost, MXResolver, Route, RouteFailure
from core.preflight.inputs import Preflight, RelayRoute
from core.preflight.lookup import Lookups
from core.relay import Relay
from core.smtp import Extensions, FailureKind, Phase, Reply, SessionConfig, TLSPolicy

#: Recipient domains whose MX is resolved (the most common first); the rest are counted
#: as "not looked up" so that a million-domain list costs seconds, not hours.
MAX_DOMAINS: Final = 1000
#: MX lookups in flight at once.
DOMAIN_CONCURRENCY: Final = 20
#: Names a PTR answer may list that are followed forward (a hostile zone lists many).
MAX_PTR_NAMES: Final = 10


@dataclass(frozen=True, slots=True)
class ProviderGroup:
    """Recipients whose domains' MX hosts share a registered domain (``name``)."""

    name: str
    recipients: int
    domains: tuple[str, ...]
    #: The best MX host of the group's largest domain: where a probe connects.
    host: MXHost


@dataclass(frozen=True, slots=True)
class Providers:
    groups: tuple[ProviderGroup, ...]  # most recipients first
    #: Recipients of domains with no route (NXDOMAIN, null MX, DNS failure).
    unroutable: int
    unroutable_domains: int
    #: Recipients of domains beyond MAX_DOMAINS, not looked up.
    not_looked_up: int


@dataclass(frozen=True, slots=True)
class Probe:
    """One connection to a destination's MX: what it said (``banner``), and its EHLO
    keywords (``extensions``, None if EHLO was never answered)."""

    provider: str
    host: str
    address: str
    connected: bool
    banner: Reply | None
    extensions: Extensions | None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """The address mail of one IP version leaves from, or why it is not known."""

    version: int
    address: str | None
    why: str = ""


@dataclass(frozen=True, slots=True)
class Reverse:
    """Reverse DNS of an address: the PTR ``names``, the one that resolves back to it
    (``confirmed``, forward-confirmed reverse DNS), or a lookup ``problem``."""

    address: str
    names: tuple[str, ...]
    confirmed: str | None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class RelayAddresses:
    """The addresses a relay's name resolves to (IPv4 first), or why there are none."""

    relay: Relay
    addresses: tuple[str, ...]
    problem: str = ""


@dataclass(frozen=True, slots=True)
class RelayProbe:
    """One connection to a relay as a send makes it (TLS as configured, the certificate
    verified), ended after the EHLO that follows TLS: no login, no mail.

    ``address`` None: the name did not resolve. ``banner``: the greeting (None: none
    came). ``tls``: the handshake's outcome (None: no TLS). ``extensions``: the EHLO
    keywords after TLS (None: that EHLO was never answered). ``failure``/``problem``:
    why the conversation ended early."""

    relay: Relay
    address: str | None
    connected: bool
    banner: Reply | None
    tls: TLSInfo | None
    extensions: Extensions | None
    failure_kind: FailureKind | None = None
    problem: str = ""

    @property
    def greeted(self) -> bool:
        return self.banner is not None and self.banner.code == 220


class Facts:
    """The shared findings of one preflight run."""

    def __init__(self, preflight: Preflight) -> None:
        self.preflight = preflight
        self.campaign = preflight.campaign
        self.network = preflight.network
        self.lookups = Lookups(self.network.nameservers, self.network.dns_timeout)
        self._resolver = MXResolver(self.network.nameservers, timeout=self.network.dns_timeout)
        self._tasks: dict[object, asyncio.Future[Any]] = {}

    async def _once(self, key: object, make: Callable[[], Awaitable[Any]]) -> Any:
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.ensure_future(make())
        return await asyncio.shield(task)

    def close(self) -> None:
        """Cancel facts still being found (a check timed out, or the run was cancelled)."""
        for task in self._tasks.values():
            task.cancel()

    # ---- providers and probes --------------------------------------------------------

    async def providers(self) -> Providers:
        result: Providers = await self._once("providers", self._providers)
        return result

    async def _providers(self) -> Providers:
        ranked = sorted(self.campaign.domains.items(), key=lambda item: (-item[1], item[0]))
        asked, skipped = ranked[:MAX_DOMAINS], ranked[MAX_DOMAINS:]
        limit = asyncio.Semaphore(DOMAIN_CONCURRENCY)

        async def route(domain: str) -> Route | RouteFailure:
            async with limit:
                return await self._resolver.route(domain)

        routes = await asyncio.gather(*(route(domain) for domain, _ in asked))
        members: dict[str, list[tuple[str, int, MXHost]]] = defaultdict(list)
        unroutable = unroutable_domains = 0
        for (domain, count), found in zip(asked, routes, strict=True):
            if isinstance(found, RouteFailure):
                unroutable += count
                unroutable_domains += 1
                continue
            best = min(found.hosts, key=lambda host: (host.preference, host.name))
            members[registered_domain(best.name)].append((domain, count, best))
        groups = [
            ProviderGroup(
                name,
                sum(count for _, count, _ in group),
                tuple(domain for domain, _, _ in group),
                group[0][2],  # domains came most recipients first
            )
            for name, group in members.items()
        ]
        groups.sort(key=lambda group: (-group.recipients, group.name))
        return Providers(tuple(groups), unroutable, unroutable_domains,
                         sum(count for _, count in skipped))

    async def probes(self) -> tuple[Probe, ...]:
        result: tuple[Probe, ...] = await self._once("probes", self._probes)
        return result

    async def _probes(self) -> tuple[Probe, ...]:
        groups = (await self.providers()).groups[: self.network.probes]
        return tuple(await asyncio.gather(*(self._probe(group) for group in groups)))

    async def _probe(self, group: ProviderGroup) -> Probe:
        """Banner and EHLO of one MX (no STARTTLS, no mail), with short timeouts."""
        host = group.host
        address = host.addresses[0]
        limit = self.network.probe_timeout
        timeouts = Timeouts(
            connect=limit, greeting=limit, command=limit, tls_handshake=limit,
            quit=min(limit, 2.0), session=limit * 3,
        )
        config = ConnectionConfig(SessionConfig(self.campaign.helo, TLSPolicy.OFF), timeouts)
        report = await deliver(Target(host.name, address, self.network.port), [], config)
        replies = [entry for kind, entry in report.transcript.entries if kind == "S"]
        banner = replies[0] if replies and isinstance(replies[0], Reply) else None
        failure = report.failure
        connected = failure is None or failure.phase is not Phase.CONNECT
        problem = ""
        if failure is not None:
            said = failure.reply.text if failure.reply else failure.kind.value
            problem = failure.detail or said
        greeted = banner is not None and banner.code == 220 and len(replies) > 1
        extensions = report.extensions if greeted else None
        return Probe(group.name, host.name, address, connected, banner, extensions, problem)

    # ---- relay mode: the relays ------------------------------------------------------

    @property
    def relay(self) -> RelayRoute:
        """The relay route (only asked in relay mode)."""
        route = self.network.relay
        if route is None:
            raise RuntimeError("a relay check ran without a relay route")
        return route

    async def relay_addresses(self) -> tuple[RelayAddresses, ...]:
        """The first ``network.relay_probes`` relays' addresses, in the order given."""
        result: tuple[RelayAddresses, ...] = await self._once(
            "relay-addresses", self._relay_addresses
        )
        return result

    async def _relay_addresses(self) -> tuple[RelayAddresses, ...]:
        relays = self.relay.relays[: self.network.relay_probes]
        return tuple(await asyncio.gather(*(self._relay_address(relay) for relay in relays)))

    async def _relay_address(self, relay: Relay) -> RelayAddresses:
        """Through the configured nameservers (as every preflight lookup); with the
        system's configuration, the system's resolver too (``/etc/hosts``), as a send
        resolves relay names (``core.relay.relay_hosts``)."""
        try:
            return RelayAddresses(relay, (str(ipaddress.ip_address(relay.host)),))
        except ValueError:
            pass
        answer = await self.lookups.addresses(relay.host)
        if answer.records:
            return RelayAddresses(relay, tuple(dict.fromkeys(answer.records)))
        problem = answer.problem or (
            f"{relay.host} does not exist" if answer.nxdomain else f"{relay.host} has no address"
        )
        if self.network.nameservers is None:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(relay.host, relay.port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                return RelayAddresses(relay, (), problem)
            ordered = sorted(infos, key=lambda info: info[0] != socket.AF_INET)
            found = tuple(dict.fromkeys(str(info[4][0]) for info in ordered))
            if found:
                return RelayAddresses(relay, found)
        return RelayAddresses(relay, (), problem)

    async def relay_probes(self) -> tuple[RelayProbe, ...]:
        result: tuple[RelayProbe, ...] = await self._once("relay-probes", self._relay_probes)
        return result

    async def _relay_probes(self) -> tuple[RelayProbe, ...]:
        found = await self.relay_addresses()
        return tuple(await asyncio.gather(*(self._relay_probe(each) for each in found)))

    async def _relay_probe(self, found: RelayAddresses) -> RelayProbe:
        relay = found.relay
        if not found.addresses:
            return RelayProbe(relay, None, False, None, None, None, None, found.problem)
        address = found.addresses[0]
        route = self.relay
        try:
            context = route.tls_context()
        except ValueError as error:  # an unusable CA file: nothing to connect with
            return RelayProbe(relay, address, False, None, None, None, FailureKind.LOCAL,
                              str(error))
        limit = self.network.probe_timeout
        timeouts = Timeouts(
            connect=limit, greeting=limit, command=limit, tls_handshake=limit,
            quit=min(limit, 2.0), session=limit * 3,
        )
        session = SessionConfig(self.campaign.helo, TLSPolicy.REQUIRE,
                                implicit_tls=route.implicit_tls)
        config = ConnectionConfig(session, timeouts, tls_context=context)
        report = await deliver(Target(relay.host, address, relay.port), [], config)
        replies = [entry for kind, entry in report.transcript.entries if kind == "S"]
        banner = replies[0] if replies and isinstance(replies[0], Reply) else None
        failure = report.failure
        connected = failure is None or failure.phase is not Phase.CONNECT
        problem = ""
        kind = None
        if failure is not None:
            kind = failure.kind
            said = f"{failure.reply.code} {failure.reply.text}" if failure.reply else ""
            problem = failure.detail or said or failure.kind.value
        # The EHLO after TLS answered: the session went on to QUIT (or failed later).
        after_tls = report.tls is not None and (
            failure is None or failure.phase in (Phase.QUIT, Phase.CLOSED)
        )
        extensions = report.extensions if after_tls else None
        return RelayProbe(relay, address, connected, banner, report.tls, extensions, kind,
                          problem)

    # ---- the outgoing address and its reverse DNS ------------------------------------------

    async def outgoing(self) -> tuple[Outgoing, Outgoing]:
        """The IPv4 and the IPv6 outgoing address."""
        result: tuple[Outgoing, Outgoing] = await self._once("outgoing", self._outgoing)
        return result

    async def _outgoing(self) -> tuple[Outgoing, Outgoing]:
        given = [ipaddress.ip_address(text) for text in self.network.source_addresses]
        if given:
            four, six = (
                _given(version, [str(a) for a in given if a.version == version])
                for version in (4, 6)
            )
            return four, six
        groups = (await self.providers()).groups
        found: list[Outgoing] = []
        for version in (4, 6):
            targets = [
                address
                for group in groups
                for address in group.host.addresses
                if ipaddress.ip_address(address).version == version
            ]
            found.append(_route_from(version, targets, self.network.port))
        return found[0], found[1]

    async def public_addresses(self) -> list[str]:
        """The outgoing addresses receivers see: those known and public."""
        return [
            outgoing.address
            for outgoing in await self.outgoing()
            if outgoing.address is not None and public_problem(outgoing.address) is None
        ]

    async def reverse(self, address: str) -> Reverse:
        result: Reverse = await self._once(("reverse", address), lambda: self._reverse(address))
        return result

    async def _reverse(self, address: str) -> Reverse:
        answer = await self.lookups.ptr(address)
        if answer.failed:
            return Reverse(address, (), None, answer.problem)
        names = answer.records[:MAX_PTR_NAMES]
        forward = await asyncio.gather(*(self.lookups.addresses(name) for name in names))
        wanted = ipaddress.ip_address(address)
        for name, found in zip(names, forward, strict=True):
            if any(_same(record, wanted) for record in found.records):
                return Reverse(address, names, name)
        problems = [found.problem for found in forward if found.problem]
        return Reverse(address, names, None, problems[0] if problems else None)


def _given(version: int, addresses: list[str]) -> Outgoing:
    if addresses:
        return Outgoing(version, addresses[0])
    return Outgoing(version, None, f"no IPv{version} address was given to check")


def _route_from(version: int, targets: list[str], port: int) -> Outgoing:
    """The local address the system picks to reach ``targets`` (a UDP "connect" sends
    nothing; it only asks the routing table), as a TCP connection to an MX would use."""
    if not targets:
        return Outgoing(version, None, f"no recipient MX host has an IPv{version} address")
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    for target in targets[:5]:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((target, port))
                local = str(probe.getsockname()[0])
        except OSError:
            continue
        return Outgoing(version, local)
    return Outgoing(version, None, f"this computer has no IPv{version} route to the recipients")


def _same(record: str, wanted: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(record) == wanted
    except ValueError:
        return False


def public_problem(address: str) -> str | None:
    """Why checks of ``address`` would say nothing about what receivers see, or None.
    Loopback passes (the lab's rehearsal internet lives there)."""
    parsed = ipaddress.ip_address(address)
    if parsed.is_loopback or parsed.is_global:
        return None
    return (
        f"this computer's address {address} is private (behind a router's NAT): receivers "
        "see the router's public address, which preflight cannot learn without asking an "
        "outside service"
    )
