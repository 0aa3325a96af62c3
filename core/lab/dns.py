"""``LabDNS``: an authoritative DNS server on loopback for the lab's ``.test`` names.

Owns a UDP socket and a TCP listener on one port of a loopback address (127.0.0.1 by
default), the answers they give (from a :class:`LabZone` that tests build and may change
at any time, scripted failures included: SERVFAIL, REFUSED, silence), and a count of the
questions asked, so a test can prove that a resolver cached or coalesced. Answers are
authoritative (AA); NXDOMAIN and NODATA carry the zone's SOA (RFC 2308); a UDP answer too
big for the client is truncated (TC) so that the client asks again over TCP (RFC 7766).

It never recurses or forwards, never answers for a name outside ``test.`` (RFC 2606)
or the reverse names of loopback addresses (PTR records, for reverse-DNS checks), never
hands out an address that is not loopback, never listens anywhere but loopback
(see ``core.lab.loopback``) and never connects anywhere.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.reversename
import dns.rrset

from core.lab.loopback import EPHEMERAL_PORT, LISTEN_BACKLOG, require_loopback
from core.lab.service import Connections, LoopbackService, close_connections

#: The zone every lab name lives in: RFC 2606 reserves ``.test``, nothing real is there.
LAB_ORIGIN = "test"
#: TTL of a record added without one.
DEFAULT_TTL = 300
#: The SOA MINIMUM: how long "no such name" and "no such record" may be cached (RFC 2308 §5).
DEFAULT_NEGATIVE_TTL = 60
#: Largest UDP answer to a client without EDNS (RFC 1035 §4.2.1) ...
UDP_LIMIT = 512
#: ... and the most granted to one that offers more (RFC 6891 §6.2.5).
MAX_UDP_PAYLOAD = 4096
#: Over TCP a two-octet length prefixes each message (RFC 1035 §4.2.2).
MAX_TCP_MESSAGE = 65535
#: A query is a header and one question; anything longer is not one and is dropped.
MAX_QUERY_SIZE = 4096
#: TCP connections served at once; more are closed as they arrive.
MAX_TCP_CONNECTIONS = 256
#: Seconds a TCP connection may sit idle (RFC 7766 §6.2.3: "on the order of seconds").
TCP_IDLE_TIMEOUT = 10.0
#: Queries answered on one TCP connection before the server closes it.
MAX_QUERIES_PER_CONNECTION = 1000
#: Tries at finding a port free for both UDP and TCP.
BIND_ATTEMPTS = 5
#: The longest TXT character-string (RFC 1035 §3.3).
_TXT_CHUNK = 255

_IN = dns.rdataclass.IN


class _Failure(enum.Enum):
    """What a scripted fault answers instead of the truth."""

    SERVFAIL = dns.rcode.SERVFAIL
    REFUSED = dns.rcode.REFUSED
    #: No answer at all: the client times out.
    DROP = None


@dataclass(slots=True)
class _Fault:
    failure: _Failure
    #: Queries left to fail; ``None``: all of them.
    remaining: int | None


@dataclass(slots=True)
class DNSStats:
    """Counters over a lab DNS server's life."""

    queries: int = 0
    udp: int = 0
    tcp: int = 0
    tcp_connections: int = 0
    #: UDP answers sent truncated (TC) because they did not fit.
    truncated: int = 0
    #: Queries left unanswered on purpose (``drop``).
    dropped: int = 0
    #: Datagrams or TCP messages that were not DNS queries.
    malformed: int = 0


_ORIGIN = dns.name.from_text(LAB_ORIGIN)
#: The reverse zones a lab zone also serves: loopback addresses only (RFC 1035 §3.5 and
#: RFC 3596 §2.5), so that a PTR a test publishes can never describe a real address.
REVERSE_APEXES = (
    dns.name.from_text("127.in-addr.arpa"),
    dns.reversename.from_address("::1"),
)


def _lab_name(text: str) -> dns.name.Name:
    """The absolute name for ``text``; ``ValueError`` unless it is ``test`` or below it."""
    name = dns.name.from_text(text)
    if not name.is_subdomain(_ORIGIN):
        raise ValueError(f"lab DNS names end in .{LAB_ORIGIN}, not {text!r}")
    return name


def _loopback_address(text: str, version: int) -> str:
    address = ipaddress.ip_address(text)
    if address.version != version or not address.is_loopback:
        kind = "127.0.0.0/8" if version == 4 else "::1"
        raise ValueError(f"lab DNS hands out loopback addresses ({kind}) only, not {text!r}")
    return str(address)


class LabZone:
    """The records a :class:`LabDNS` answers from, and the failures it scripts.

    Build it in a test; change it at any time, the server reads it on every query::

        zone = LabZone().mx_for("a.test", {"mx1.a.test": "127.0.0.1"})
        zone.servfail("b.test", times=1)

    Every adding method returns the zone. A name exists (NODATA rather than NXDOMAIN for
    types it lacks) once it or a name below it has a record or was ``add_domain``-ed. An
    RRset has one TTL: the smallest given for its records.
    """

    __slots__ = ("_apexes", "_faults", "_names", "_rrsets", "negative_ttl", "origin", "ttl")

    def __init__(
        self,
        origin: str = LAB_ORIGIN,
        *,
        ttl: int = DEFAULT_TTL,
        negative_ttl: int = DEFAULT_NEGATIVE_TTL,
    ) -> None:
        self.origin = _lab_name(origin)
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._rrsets: dict[dns.name.Name, dict[dns.rdatatype.RdataType, dns.rrset.RRset]] = {}
        self._names: set[dns.name.Name] = set()
        self._faults: dict[tuple[dns.name.Name, dns.rdatatype.RdataType | None], _Fault] = {}
        self._apexes = (self.origin, *REVERSE_APEXES)
        apex = self.origin.to_text()
        soa = f"ns.{apex} hostmaster.{apex} 1 3600 600 86400 {negative_ttl}"
        for zone_apex in self._apexes:
            self._add(zone_apex, dns.rdata.from_text(_IN, dns.rdatatype.SOA, soa), ttl)

    # ---- records -------------------------------------------------------------------------

    def add_mx(
        self, domain: str, exchanges: Iterable[tuple[int, str]], *, ttl: int | None = None
    ) -> LabZone:
        """MX records for ``domain``: ``(preference, host)`` pairs; ``host`` may be any name."""
        name = self._name(domain)
        for preference, host in exchanges:
            exchange = dns.name.from_text(host).to_text()
            rdata = dns.rdata.from_text(_IN, dns.rdatatype.MX, f"{preference} {exchange}")
            self._add(name, rdata, ttl)
        return self

    def null_mx(self, domain: str, *, ttl: int | None = None) -> LabZone:
        """``domain`` accepts no mail: its only MX is ``0 .`` (RFC 7505)."""
        name = self._name(domain)
        self._rrsets.get(name, {}).pop(dns.rdatatype.MX, None)
        return self.add_mx(domain, [(0, ".")], ttl=ttl)

    def add_a(self, host: str, *addresses: str, ttl: int | None = None) -> LabZone:
        """A records (127.0.0.0/8 only) for ``host``."""
        name = self._name(host)
        for text in addresses:
            address = _loopback_address(text, 4)
            self._add(name, dns.rdata.from_text(_IN, dns.rdatatype.A, address), ttl)
        return self

    def add_aaaa(self, host: str, *addresses: str, ttl: int | None = None) -> LabZone:
        """AAAA records (``::1`` only) for ``host``."""
        name = self._name(host)
        for text in addresses:
            address = _loopback_address(text, 6)
            self._add(name, dns.rdata.from_text(_IN, dns.rdatatype.AAAA, address), ttl)
        return self

    def add_txt(self, name: str, text: str, *, ttl: int | None = None) -> LabZone:
        """A TXT record, split into 255-octet character-strings as RFC 1035 needs."""
        data = text.encode()
        chunks = [data[i : i + _TXT_CHUNK] for i in range(0, len(data), _TXT_CHUNK)] or [b""]
        self._add(self._name(name), dns.rdtypes.ANY.TXT.TXT(_IN, dns.rdatatype.TXT, chunks), ttl)
        return self

    def add_ptr(self, address: str, host: str, *, ttl: int | None = None) -> LabZone:
        """A PTR record naming ``host`` (any name) for a loopback ``address`` (127.0.0.0/8
        or ``::1``): the reverse DNS that preflight checks read."""
        parsed = ipaddress.ip_address(address)
        _loopback_address(address, parsed.version)
        target = dns.name.from_text(host).to_text()
        rdata = dns.rdata.from_text(_IN, dns.rdatatype.PTR, target)
        self._add(dns.reversename.from_address(str(parsed)), rdata, ttl)
        return self

    def remove(self, name: str, rdtype: str) -> LabZone:
        """Drop ``name``'s records of type ``rdtype`` (``"MX"``, ``"A"``…): DNS changes."""
        self._rrsets.get(self._name(name), {}).pop(dns.rdatatype.from_text(rdtype), None)
        return self

    def add_domain(self, domain: str) -> LabZone:
        """Make ``domain`` exist without adding a record (every query type gets NODATA)."""
        self._exist(self._name(domain))
        return self

    def mx_for(self, domain: str, hosts: Mapping[str, str], *, ttl: int | None = None) -> LabZone:
        """The usual lab domain: one MX per host, preferences 10, 20, … in ``hosts`` order,
        and each host's address (A, or AAAA if it has a colon)."""
        self.add_mx(domain, [(10 * (n + 1), host) for n, host in enumerate(hosts)], ttl=ttl)
        for host, address in hosts.items():
            if ":" in address:
                self.add_aaaa(host, address, ttl=ttl)
            else:
                self.add_a(host, address, ttl=ttl)
        return self

    # ---- scripted failures ---------------------------------------------------------------

    def servfail(self, name: str, times: int | None = None, *, rdtype: str | None = None) -> None:
        """Answer SERVFAIL for ``name`` (every type, or ``rdtype``): ``times`` queries, or
        all of them if ``None``; then heal."""
        self._script(name, rdtype, _Failure.SERVFAIL, times)

    def refuse(self, name: str, times: int | None = None, *, rdtype: str | None = None) -> None:
        """Answer REFUSED for ``name``, like ``servfail``."""
        self._script(name, rdtype, _Failure.REFUSED, times)

    def drop(self, name: str, times: int | None = None, *, rdtype: str | None = None) -> None:
        """Do not answer queries for ``name`` at all (the client times out), like ``servfail``."""
        self._script(name, rdtype, _Failure.DROP, times)

    def heal(self, name: str) -> None:
        """Forget every scripted failure for ``name``."""
        target = self._name(name)
        for key in [key for key in self._faults if key[0] == target]:
            del self._faults[key]

    # ---- answering ------------------------------------------------------------------------

    def respond(self, query: dns.message.Message) -> dns.message.Message | None:
        """The answer to ``query`` (a query, not a response), or ``None`` to stay silent."""
        response = dns.message.make_response(query, our_payload=MAX_UDP_PAYLOAD)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        failure = self._failure(question.name, question.rdtype)
        if failure is _Failure.DROP:
            return None
        if failure is not None:
            response.set_rcode(failure.value)
        elif question.rdclass != _IN or self._apex(question.name) is None:
            response.set_rcode(dns.rcode.REFUSED)  # not our zone: we are no recursor
        else:
            self._answer(response, question.name, question.rdtype)
        return response

    def _answer(
        self, response: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> None:
        response.flags |= dns.flags.AA
        if name not in self._names:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._negative_soa(name))
            return
        node = self._rrsets.get(name, {})
        if rdtype == dns.rdatatype.ANY:
            found = list(node.values())
        else:
            found = [node[rdtype]] if rdtype in node else []
        if found:
            response.answer.extend(found)
        else:
            response.authority.append(self._negative_soa(name))  # NODATA (RFC 2308 §2.2)

    def _apex(self, name: dns.name.Name) -> dns.name.Name | None:
        """The apex of the zone (``test.`` or a loopback reverse zone) holding ``name``."""
        return next((apex for apex in self._apexes if name.is_subdomain(apex)), None)

    def _negative_soa(self, name: dns.name.Name) -> dns.rrset.RRset:
        # RFC 2308 §3: the SOA's TTL in a negative answer is min(its TTL, MINIMUM).
        apex = self._apex(name) or self.origin
        soa = self._rrsets[apex][dns.rdatatype.SOA]
        return dns.rrset.from_rdata_list(apex, min(soa.ttl, self.negative_ttl), list(soa))

    def _failure(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> _Failure | None:
        key: tuple[dns.name.Name, dns.rdatatype.RdataType | None] = (name, rdtype)
        fault = self._faults.get(key)
        if fault is None:
            key = (name, None)
            fault = self._faults.get(key)
        if fault is None:
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._faults[key]
        return fault.failure

    # ---- bookkeeping ---------------------------------------------------------------------

    def _name(self, text: str) -> dns.name.Name:
        name = dns.name.from_text(text)
        if not name.is_subdomain(self.origin):
            raise ValueError(f"{text!r} is outside the lab zone {self.origin}")
        return name

    def _add(self, name: dns.name.Name, rdata: dns.rdata.Rdata, ttl: int | None) -> None:
        node = self._rrsets.setdefault(name, {})
        rrset = node.get(rdata.rdtype)
        if rrset is None:
            rrset = node[rdata.rdtype] = dns.rrset.RRset(name, _IN, rdata.rdtype)
        rrset.add(rdata, self.ttl if ttl is None else ttl)
        self._exist(name)

    def _exist(self, name: dns.name.Name) -> None:
        # The name and every name between it and the apex (empty non-terminals, RFC 8020).
        while name not in self._names:
            self._names.add(name)
            if name in self._apexes:
                break
            name = name.parent()

    def _script(self, name: str, rdtype: str | None, failure: _Failure, times: int | None) -> None:
        if times is not None and times < 1:
            raise ValueError(f"times is a positive count or None, not {times}")
        kind = None if rdtype is None else dns.rdatatype.RdataType.make(rdtype)
        self._faults[self._name(name), kind] = _Fault(failure, times)


class _UDP(asyncio.DatagramProtocol):
    """Each datagram is answered in the callback that received it: no task, no queue."""

    def __init__(self, handle: Callable[[bytes, bool], bytes | None]) -> None:
        self._handle = handle
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast: CPython's selector datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = self._handle(data, False)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


class LabDNS(LoopbackService):
    """A lab DNS server. ``async with LabDNS(zone) as server: ... server.nameserver``

    UDP and TCP listen on the same port, as resolvers expect of a nameserver.
    """

    def __init__(self, zone: LabZone | None = None, *, host: str = "127.0.0.1") -> None:
        self.zone = zone if zone is not None else LabZone()
        self.host = require_loopback(host)
        self.stats = DNSStats()
        self._queries: Counter[tuple[str, str]] = Counter()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._port: int | None = None
        self._stopping = False
        self._connections: Connections = {}
        self._changed: asyncio.Event | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> LabDNS:
        """Listen on UDP and TCP, same port; afterwards ``port`` is known. Starts once."""
        if self._port is not None or self._stopping:
            raise RuntimeError("a LabDNS starts once")
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for _ in range(BIND_ATTEMPTS):  # the kernel picks the UDP port; TCP's may be taken
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UDP(self._handle), local_addr=(self.host, EPHEMERAL_PORT)
            )
            port = int(udp.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(
                    self._accepted, self.host, port, backlog=LISTEN_BACKLOG
                )
            except OSError as failed:
                udp.close()
                error = failed
                continue
            self._udp, self._port = udp, port
            return self
        raise OSError(f"no port on {self.host} was free for both UDP and TCP: {error}")

    async def stop(self) -> None:
        """Close both sockets and every TCP connection, and wait for their tasks to end."""
        self._stopping = True
        udp, self._udp = self._udp, None
        if udp is not None:
            udp.close()
        server, self._tcp = self._tcp, None
        if server is not None:
            server.close()
        await close_connections(self._connections, server)

    @property
    def nameserver(self) -> str:
        """``HOST:PORT`` (``[::1]:PORT`` for IPv6), as ``mxmailer --nameserver`` takes it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def queries(self, name: str, rdtype: str) -> int:
        """How many queries for ``name`` and type ``rdtype`` (e.g. ``"MX"``) arrived, over
        UDP and TCP, answered or not."""
        return self._queries[name.rstrip(".").lower(), rdtype.upper()]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate()`` is true (re-checked on each query, malformed message
        and TCP connection); ``TimeoutError`` after ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    if self._changed is None:
                        self._changed = asyncio.Event()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"lab DNS did not get there in {timeout} s: {self.stats}") from None

    # ---- serving ---------------------------------------------------------------------------

    def _handle(self, wire: bytes, tcp: bool) -> bytes | None:
        """One query in, its answer out (``None``: say nothing)."""
        query = self._parse(wire)
        if query is None:
            return None
        self._count(query, tcp)
        response = self.zone.respond(query)
        if response is None:
            self.stats.dropped += 1
            return None
        return self._to_wire(response, MAX_TCP_MESSAGE if tcp else _udp_limit(query))

    def _parse(self, wire: bytes) -> dns.message.Message | None:
        if len(wire) > MAX_QUERY_SIZE:
            self._malformed()
            return None
        try:
            query = dns.message.from_wire(wire)
        except (dns.exception.DNSException, ValueError):
            self._malformed()
            return None
        if query.flags & dns.flags.QR:  # a response: answering it could start a loop
            self._malformed()
            return None
        return query

    def _count(self, query: dns.message.Message, tcp: bool) -> None:
        self.stats.queries += 1
        if tcp:
            self.stats.tcp += 1
        else:
            self.stats.udp += 1
        for question in query.question:
            name = question.name.to_text(omit_final_dot=True).lower()
            self._queries[name, dns.rdatatype.to_text(question.rdtype)] += 1
        self._notify()

    def _malformed(self) -> None:
        self.stats.malformed += 1
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _to_wire(self, response: dns.message.Message, limit: int) -> bytes:
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            # RFC 2181 §9: too big for the client: say so (TC) and send no partial RRsets.
            self.stats.truncated += 1
            response.flags |= dns.flags.TC
            for section in (response.answer, response.authority, response.additional):
                section.clear()
            return response.to_wire(max_size=limit)

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback (not a coroutine) so that the task is known from its first moment.
        if self._stopping or len(self._connections) >= MAX_TCP_CONNECTIONS:
            writer.transport.abort()
            return
        self.stats.tcp_connections += 1
        self._notify()
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._connections[task] = writer
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._connections.pop(task, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(MAX_QUERIES_PER_CONNECTION):
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    if size > MAX_QUERY_SIZE:
                        self._malformed()
                        return
                    reply = self._handle(await reader.readexactly(size), True)
                    if reply is not None:
                        writer.write(len(reply).to_bytes(2, "big") + reply)
                        await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # idle, or the client left: both end the connection
        finally:
            writer.transport.abort()


def _udp_limit(query: dns.message.Message) -> int:
    """The biggest UDP answer ``query``'s sender takes (RFC 6891 §6.2.3-§6.2.5)."""
    if query.edns < 0:
        return UDP_LIMIT
    return min(max(query.payload, UDP_LIMIT), MAX_UDP_PAYLOAD)
