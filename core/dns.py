"""MX resolution: a recipient domain in, a :class:`Route` (its MX hosts with their
addresses, in delivery order) or a :class:`RouteFailure` (why not, in plain words, and
whether waiting may help) out.

Owns the DNS side of delivery: which queries to ask (RFC 5321 §5.1: MX, then each MX
host's A and AAAA; the domain's own A/AAAA when it has no MX), what the answers mean
(null MX, RFC 7505; NXDOMAIN and NODATA, RFC 2308), how long they are kept (their TTL,
on an injected clock), and that one lookup is in flight per name however many recipients
wait for it. It asks through dnspython's asyncio resolver, so it never blocks the loop.

It never raises to its caller for a DNS problem, never connects to an MX, never decides
when to retry (the scheduler does), and never imports Qt.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.MX
import dns.rdtypes.IN.A
import dns.resolver

#: Where a nameserver listens when no port is given (RFC 1035 §4.2).
DNS_PORT = 53
#: Seconds one lookup (one name, one type) may take, all attempts together.
DEFAULT_TIMEOUT = 5.0
#: Queries per nameserver within that time when it does not answer.
DEFAULT_ATTEMPTS = 2
#: EDNS(0) buffer size of the 2020 DNS flag day: no IP fragments, fewer retries over TCP.
EDNS_PAYLOAD = 1232
#: Seconds a transient failure (SERVFAIL, REFUSED, timeout, unreachable server) is kept,
#: so a burst of recipients at a broken domain asks once, not once each. RFC 9520 §3.2
#: asks for at least 1 s; the scheduler's retry timers are minutes, so 5 s costs nothing.
TRANSIENT_FAILURE_TTL = 5.0
#: The longest any answer is kept, whatever its TTL says (RFC 2308 §5 suggests 1-3 hours
#: for negative answers; a campaign should notice a changed MX within the hour).
MAX_CACHE_TTL = 3600.0
#: MX hosts resolved per domain, best preferences first (ties by name): a hostile zone
#: with thousands of MX records costs at most 2 x this many queries.
MAX_MX_HOSTS = 16
#: Names each cache remembers; past it the oldest entry is dropped.
MAX_CACHED_NAMES = 100_000
#: RFC 1035 §2.3.4: 255 octets on the wire, 253 characters as text; labels 1-63 octets.
MAX_DOMAIN_LENGTH = 253
#: Hosts named in a "none of the MX hosts has an address" reason.
_DETAILED_HOSTS = 3

# Reasons, in the words the user reads.
NXDOMAIN_REASON = "the domain does not exist (NXDOMAIN)"
NULL_MX_REASON = "the domain accepts no mail (null MX, RFC 7505)"
NO_ADDRESS_REASON = "the domain has no MX and no address (A/AAAA) records"
NO_MX_ADDRESS_REASON = "none of the MX hosts has an address"
REFUSED_REASON = "DNS query refused"

# RFC 5321 §4.1.2 Domain: LDH labels that neither start nor end with a hyphen.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_V = TypeVar("_V")


# ---- what callers get ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MXHost:
    """One host to deliver to: its name (lower case, no trailing dot), MX preference, and
    addresses (IPv4 first, then IPv6, each in the order DNS gave them)."""

    name: str
    preference: int
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Route:
    """Where mail for ``domain`` goes: ``hosts`` in delivery order (by preference; equal
    preferences shuffled on every call, RFC 5321 §5.1). ``implicit``: the domain has no MX
    and ``hosts`` is the domain itself, preference 0."""

    domain: str
    hosts: tuple[MXHost, ...]
    implicit: bool

    @property
    def destination(self) -> str:
        """A key for the set of MX hosts, the same for every domain one provider hosts."""
        return ",".join(sorted(host.name for host in self.hosts))


@dataclass(frozen=True, slots=True)
class RouteFailure:
    """Why there is no route to ``domain``. ``permanent``: asking again will not help
    (no such domain, null MX, not a domain name); otherwise it may, later."""

    domain: str
    permanent: bool
    reason: str


# ---- nameservers ---------------------------------------------------------------------------


def parse_nameserver(text: str) -> tuple[str, int]:
    """``"127.0.0.1"``, ``"127.0.0.1:5353"``, ``"::1"`` or ``"[::1]:5353"`` -> ``(address,
    port)``; port 53 if none is given. An IPv6 address with a port needs its brackets.
    ``ValueError`` for anything else, host names included (who would resolve them?)."""
    spec = text.strip()
    host, port = spec, str(DNS_PORT)
    if spec.startswith("["):
        host, bracket, rest = spec[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"not a nameserver: {text!r} (write [IPv6]:PORT)")
        port = rest[1:] if rest else port
    elif spec.count(":") == 1:
        host, _, port = spec.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"not a nameserver: {text!r} (an IP address, optionally with :PORT)"
        ) from None
    if isinstance(address, ipaddress.IPv4Address) and spec.startswith("["):
        raise ValueError(f"not a nameserver: {text!r} (brackets are for IPv6 addresses)")
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"not a nameserver: {text!r} (the port is 1-65535)")
    return str(address), int(port)


def make_resolver(
    nameservers: Sequence[tuple[str, int]] | None, timeout: float, attempts: int
) -> dns.asyncresolver.Resolver:
    """dnspython's async resolver as the whole app sets it up: the given nameservers (or
    the system's), ``timeout`` over ``attempts`` queries, EDNS, and no cache of its own
    (callers cache on their own clock)."""
    if nameservers is None:
        resolver = dns.asyncresolver.Resolver()  # the system's: /etc/resolv.conf
    else:
        if not nameservers:
            raise ValueError("at least one nameserver, or None for the system's")
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(_address(host), _port(port)) for host, port in nameservers
        ]
    resolver.timeout = timeout / attempts  # one query; dnspython retries within lifetime
    resolver.lifetime = timeout
    resolver.use_edns(0, 0, EDNS_PAYLOAD)
    resolver.cache = None  # we cache, on our clock
    return resolver


def _address(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"a nameserver is an IP address, not {host!r}") from None


def _port(port: int) -> int:
    if not 0 < port < 65536:
        raise ValueError(f"a nameserver's port is 1-65535, not {port}")
    return port


# ---- domain names --------------------------------------------------------------------------


def _domain_problem(domain: str) -> str | None:
    """Why ``domain`` (lower case, no trailing dot) is not a mail domain, or ``None``."""
    if not domain:
        return "the domain is empty"
    if not domain.isascii():
        return "the domain is not in A-label (punycode) form"
    if len(domain) > MAX_DOMAIN_LENGTH:
        return f"the domain is longer than {MAX_DOMAIN_LENGTH} characters"
    labels = domain.split(".")
    for label in labels:
        if not _LABEL.match(label):
            return f"the domain is not a valid DNS name ({label!r} is not a label)"
    if labels[-1].isdigit():
        return "an IP address is not a domain name"
    return None


# ---- what one query found ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Records:
    """A query's answer: its records (none: NODATA) and how long it may be kept."""

    rdatas: tuple[dns.rdata.Rdata, ...]
    ttl: float


@dataclass(frozen=True, slots=True)
class _Problem:
    """A query, or a name, that gave no usable answer, and how long to believe that."""

    permanent: bool
    reason: str
    ttl: float


@dataclass(frozen=True, slots=True)
class _Exchanges:
    """A domain's mail hosts as ``(preference, name)``, best first (ties by name)."""

    hosts: tuple[tuple[int, str], ...]
    implicit: bool


@dataclass(frozen=True, slots=True)
class _Addresses:
    """A host's addresses; ``problem`` says why some or all are missing (``None`` with no
    addresses: the host exists but has no A/AAAA records)."""

    addresses: tuple[str, ...]
    problem: _Problem | None


# ---- a cache with one lookup in flight per name --------------------------------------------


class _Cache(Generic[_V]):
    """Answers by name until they expire, and at most one lookup in flight per name.

    The lookup runs in its own task, shielded from its waiters: one caller's cancellation
    does not cancel the answer the others are waiting for.
    """

    __slots__ = ("_clock", "_entries", "_lookup", "_pending")

    def __init__(
        self,
        lookup: Callable[[str], Awaitable[tuple[_V, float]]],
        clock: Callable[[], float],
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        self._entries: dict[str, tuple[_V, float]] = {}
        self._pending: dict[str, asyncio.Task[_V]] = {}

    async def get(self, name: str) -> _V:
        entry = self._entries.get(name)
        if entry is not None:
            value, expires = entry
            if self._clock() < expires:
                return value
            del self._entries[name]
        task = self._pending.get(name)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fill(name))
            self._pending[name] = task
            task.add_done_callback(lambda done: self._forget(name, done))
        return await asyncio.shield(task)

    async def _fill(self, name: str) -> _V:
        value, ttl = await self._lookup(name)
        ttl = min(ttl, MAX_CACHE_TTL)
        if ttl > 0:
            if len(self._entries) >= MAX_CACHED_NAMES:
                del self._entries[next(iter(self._entries))]
            self._entries[name] = (value, self._clock() + ttl)
        return value

    def _forget(self, name: str, task: asyncio.Task[_V]) -> None:
        if self._pending.get(name) is task:
            del self._pending[name]


# ---- the resolver ----------------------------------------------------------------------------


class MXResolver:
    """Routes for recipient domains, cached by TTL and coalesced.

    ``nameservers``: ``(address, port)`` pairs (see :func:`parse_nameserver`), else the
    system's. ``timeout``: seconds one query (name and type) may take in all, in which each
    nameserver is asked up to ``attempts`` times; a route takes at most two such steps (MX,
    then addresses). ``rng`` shuffles equal preferences; ``clock`` (seconds, monotonic)
    expires cached answers.

    What is cached: each domain's MX answer and each host's addresses, separately, each
    for its smallest TTL (NXDOMAIN and NODATA for the SOA's negative TTL, RFC 2308 §5; a
    null MX for its TTL); transient failures for ``TRANSIENT_FAILURE_TTL``. A route is
    therefore rebuilt from parts no older than the smallest TTL of the records it uses, and
    MX hosts shared by many domains are resolved once.
    """

    __slots__ = ("_addresses", "_exchanges", "_resolver", "_rng", "_timeout")

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0 or attempts < 1:
            raise ValueError(f"timeout > 0 and attempts >= 1, not {timeout} and {attempts}")
        self._resolver = make_resolver(nameservers, timeout, attempts)
        self._timeout = timeout
        self._rng = rng if rng is not None else random.Random()
        self._exchanges = _Cache(self._lookup_mx, clock)
        self._addresses = _Cache(self._lookup_host, clock)

    async def answers(self) -> bool:
        """Whether the nameservers answer at all: any reply counts, even NXDOMAIN or
        REFUSED; only silence (every try timed out or was refused by the network) does
        not. A campaign asking a mistyped or dead ``--nameserver`` would otherwise wait out
        every recipient's lifetime in retries, each "deferred: DNS timeout"."""
        try:
            await self._resolver.resolve(".", "NS", raise_on_no_answer=False)
        except dns.resolver.NoNameservers as failure:
            errors = failure.kwargs.get("errors") or []
            return any(error[-1] is not None for error in errors)  # a reply was read
        except dns.exception.Timeout:
            return False
        except dns.exception.DNSException:
            return True
        return True

    async def route(self, domain: str) -> Route | RouteFailure:
        """Where mail for ``domain`` (A-label form) goes, or why it cannot go. Never raises
        for a DNS problem."""
        name = domain.strip().lower().removesuffix(".")
        problem = _domain_problem(name)
        if problem is not None:
            return RouteFailure(name or domain, permanent=True, reason=problem)
        exchanges = await self._exchanges.get(name)
        if isinstance(exchanges, _Problem):
            return RouteFailure(name, exchanges.permanent, exchanges.reason)
        found = await asyncio.gather(*(self._addresses.get(host) for _, host in exchanges.hosts))
        hosts = [
            MXHost(host, preference, addresses.addresses)
            for (preference, host), addresses in zip(exchanges.hosts, found, strict=True)
            if addresses.addresses
        ]
        if not hosts:
            return _unreachable(name, exchanges, found)
        return Route(name, _delivery_order(hosts, self._rng), exchanges.implicit)

    # ---- lookups (each runs once per name per TTL) -------------------------------------------

    async def _lookup_mx(self, domain: str) -> tuple[_Exchanges | _Problem, float]:
        result = await self._query(dns.name.from_text(domain), dns.rdatatype.MX)
        if isinstance(result, _Problem):
            return result, result.ttl
        if not result.rdatas:  # NODATA: the domain is its own mail host (RFC 5321 §5.1)
            return _Exchanges(((0, domain),), implicit=True), result.ttl
        return _exchanges(result), result.ttl

    async def _lookup_host(self, host: str) -> tuple[_Addresses, float]:
        name = dns.name.from_text(host)
        results = await asyncio.gather(
            self._query(name, dns.rdatatype.A), self._query(name, dns.rdatatype.AAAA)
        )
        addresses = tuple(address for result in results for address in _addresses_in(result))
        problems = [result for result in results if isinstance(result, _Problem)]
        transient = [problem for problem in problems if not problem.permanent]
        problem = next(iter(transient + problems), None)
        return _Addresses(addresses, problem), min(result.ttl for result in results)

    async def _query(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> _Records | _Problem:
        """One name and type through dnspython; every DNS outcome becomes a value."""
        kind = dns.rdatatype.to_text(rdtype)
        try:
            # dnspython may back off past its lifetime before it notices; we do not wait.
            async with asyncio.timeout(self._timeout):
                answer = await self._resolver.resolve(
                    name, rdtype, raise_on_no_answer=False, lifetime=self._timeout, search=False
                )
        except dns.resolver.NXDOMAIN as error:
            return _Problem(permanent=True, reason=NXDOMAIN_REASON, ttl=_negative_ttl(error, name))
        except dns.resolver.NoNameservers as error:
            return self._transient(_nameserver_failure(error, kind))
        except (dns.exception.Timeout, TimeoutError):
            return self._transient(f"no answer from the DNS servers in {self._timeout:g} s")
        except dns.exception.DNSException as error:
            return self._transient(f"DNS error looking up {kind}: {error}")
        rdatas = tuple(answer.rrset) if answer.rrset is not None else ()
        return _Records(rdatas, float(answer.chaining_result.minimum_ttl))

    @staticmethod
    def _transient(reason: str) -> _Problem:
        return _Problem(permanent=False, reason=reason, ttl=TRANSIENT_FAILURE_TTL)


# ---- small pure helpers ----------------------------------------------------------------------


def _exchanges(records: _Records) -> _Exchanges | _Problem:
    """MX records -> hosts best first, or the null MX that says "no mail" (RFC 7505)."""
    best: dict[str, int] = {}
    for rdata in records.rdatas:
        mx = cast(dns.rdtypes.ANY.MX.MX, rdata)
        if mx.exchange == dns.name.root:
            continue  # "." is no host; alone, it is the null MX
        host = mx.exchange.to_text(omit_final_dot=True).lower()
        best[host] = min(mx.preference, best.get(host, mx.preference))
    if not best:
        return _Problem(permanent=True, reason=NULL_MX_REASON, ttl=records.ttl)
    hosts = sorted((preference, host) for host, preference in best.items())
    return _Exchanges(tuple(hosts[:MAX_MX_HOSTS]), implicit=False)


def _addresses_in(result: _Records | _Problem) -> list[str]:
    """The addresses in an A or AAAA answer (both kinds of record have ``address``)."""
    if isinstance(result, _Problem):
        return []
    return [str(cast(dns.rdtypes.IN.A.A, rdata).address) for rdata in result.rdatas]


def _delivery_order(hosts: list[MXHost], rng: random.Random) -> tuple[MXHost, ...]:
    """``hosts`` (sorted by preference) with each run of equal preferences shuffled."""
    ordered: list[MXHost] = []
    for _, group in itertools.groupby(hosts, key=lambda host: host.preference):
        same = list(group)
        rng.shuffle(same)
        ordered.extend(same)
    return tuple(ordered)


def _unreachable(domain: str, exchanges: _Exchanges, found: Sequence[_Addresses]) -> RouteFailure:
    """Why a domain whose MX (or implicit MX) hosts have no address cannot be reached."""
    if exchanges.implicit:
        problem = found[0].problem
        if problem is None:
            return RouteFailure(domain, permanent=True, reason=NO_ADDRESS_REASON)
        return RouteFailure(domain, problem.permanent, problem.reason)
    details = [
        _host_detail(host, addresses)
        for (_, host), addresses in zip(exchanges.hosts, found, strict=True)
    ]
    more = len(details) - _DETAILED_HOSTS
    detail = "; ".join(details[:_DETAILED_HOSTS]) + (f"; and {more} more" if more > 0 else "")
    return RouteFailure(domain, permanent=False, reason=f"{NO_MX_ADDRESS_REASON} ({detail})")


def _host_detail(host: str, addresses: _Addresses) -> str:
    problem = addresses.problem
    if problem is None:
        return f"{host} has no A/AAAA records"
    if problem.permanent:
        return f"{host} does not exist (NXDOMAIN)"
    return f"{host}: {problem.reason}"


def _nameserver_failure(error: dns.resolver.NoNameservers, kind: str) -> str:
    """What the nameservers said, in words: the first of SERVFAIL, REFUSED, other."""
    said = [str(entry[3]) for entry in error.kwargs.get("errors", [])]
    if "SERVFAIL" in said:
        return f"DNS server failure (SERVFAIL) looking up {kind}"
    if "REFUSED" in said:
        return f"{REFUSED_REASON} (REFUSED) looking up {kind}"
    if said:
        return f"the DNS servers could not answer looking up {kind}: {said[0]}"
    return f"no DNS server could answer looking up {kind}"


def _negative_ttl(error: dns.resolver.NXDOMAIN, name: dns.name.Name) -> float:
    """How long an NXDOMAIN may be believed: the SOA's negative TTL (RFC 2308 §5)."""
    responses = cast(dict[dns.name.Name, dns.message.QueryMessage], error.kwargs["responses"])
    response = responses.get(name)
    if response is None:
        return float(dns.message.NEGATIVE_TTL_WITHOUT_SOA)
    try:
        return float(response.resolve_chaining().minimum_ttl)
    except dns.exception.DNSException:
        return float(dns.message.NEGATIVE_TTL_WITHOUT_SOA)
