"""A whole rehearsal internet on loopback: lab domains, their DNS, and their MX hosts.

``LabWorld`` gives each MX host its own loopback address (127.0.0.2 upward) on one
shared port (as real MX hosts share port 25), answers DNS for the lab domains from a
:class:`LabDNS`, and starts and stops it all together. ``sandbox_world`` is the standard
set that the app's sandbox demo, ``mxmailer lab`` and the engine's tests use: deliveries,
greylisting, a failover past a dead MX and a silent tarpit, equal-preference MXs, bounces,
a null MX; ``core.lab.hostile_world`` builds the big misbehaving one that soaks use.
Nothing here listens anywhere but loopback or answers for anything but ``.test`` names.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from core.lab.behaviour import Act, Behaviour, Greylist, Hostile, Stage, unknown_users
from core.lab.dns import LabDNS, LabZone
from core.lab.records import ReceivedMessage
from core.lab.server import LabServer
from core.lab.service import AsyncService

_FIRST_HOST = 2  # 127.0.0.2: 127.0.0.1 is left to the DNS server and to other tools
_PORT_TRIES = 20
#: Hosts on 127.0.0.2-254; later ones take 1-254 of 127.0.1.0/24, 127.0.2.0/24, … (no .0
#: or .255 anywhere, which some tools read as network and broadcast addresses).
_FIRST_BLOCK = 254 - _FIRST_HOST + 1
_PER_BLOCK = 254
#: 127.0.0.0/8 holds 65,535 such blocks after the first.
MAX_HOSTS = _FIRST_BLOCK + 65_535 * _PER_BLOCK


def host_address(index: int) -> str:
    """The loopback address of a world's ``index``-th host (from 0): a soak with a
    thousand domains needs more hosts than one /24 holds."""
    if not 0 <= index < MAX_HOSTS:
        raise ValueError(f"a lab world has 0..{MAX_HOSTS - 1} hosts, not host {index}")
    if index < _FIRST_BLOCK:
        return f"127.0.0.{_FIRST_HOST + index}"
    block, host = divmod(index - _FIRST_BLOCK, _PER_BLOCK)
    block += 1
    return f"127.{block >> 8}.{block & 255}.{host + 1}"


@dataclass(slots=True)
class LabHost:
    name: str
    address: str
    #: None: nothing listens at this address (connection refused).
    behaviour: Behaviour | None
    server: LabServer | None = field(default=None, repr=False)


class LabWorld(AsyncService):
    """Lab domains and hosts; ``async with`` starts the DNS server and every MX host."""

    def __init__(self) -> None:
        self.zone = LabZone()
        self.hosts: dict[str, LabHost] = {}
        self.dns: LabDNS | None = None
        self.port = 0

    # ---- building -------------------------------------------------------------------------

    def host(self, name: str, behaviour: Behaviour | None = None, *, listening: bool = True
             ) -> LabWorld:
        """An MX host with its own address; ``listening=False`` refuses connections."""
        address = host_address(len(self.hosts))
        chosen = (behaviour or Behaviour(hostname=name)) if listening else None
        self.hosts[name] = LabHost(name, address, chosen)
        self.zone.add_a(name, address)
        return self

    def domain(self, name: str, *exchanges: str | tuple[int, str]) -> LabWorld:
        """MX records for ``name``: host names (preferences 10, 20, …) or pairs."""
        pairs = [
            exchange if isinstance(exchange, tuple) else (10 * (n + 1), exchange)
            for n, exchange in enumerate(exchanges)
        ]
        self.zone.add_mx(name, pairs)
        return self

    # ---- running --------------------------------------------------------------------------

    async def start(self) -> LabWorld:
        self.dns = await LabDNS(self.zone).start()
        for attempt in range(_PORT_TRIES):
            try:
                await self._start_hosts()
                return self
            except OSError as error:
                await self._stop_hosts()
                if error.errno != errno.EADDRINUSE or attempt == _PORT_TRIES - 1:
                    await self.stop()
                    raise
        return self

    async def _start_hosts(self) -> None:
        """The first listening host takes a free port; the others take the same one."""
        self.port = 0
        for host in self.hosts.values():
            if host.behaviour is None:
                continue
            host.server = await LabServer(
                host.behaviour, host=host.address, port=self.port
            ).start()
            self.port = host.server.port
        if self.port == 0:
            raise RuntimeError("a lab world needs at least one listening host")

    async def _stop_hosts(self) -> None:
        for host in self.hosts.values():
            if host.server is not None:
                await host.server.stop()
                host.server = None

    async def stop(self) -> None:
        await self._stop_hosts()
        if self.dns is not None:
            await self.dns.stop()
            self.dns = None

    # ---- reading --------------------------------------------------------------------------

    @property
    def nameserver(self) -> str:
        """``HOST:PORT`` of the lab's DNS server, as ``--nameserver`` takes it."""
        if self.dns is None:
            raise RuntimeError("the lab world is not running")
        return self.dns.nameserver

    def server(self, name: str) -> LabServer:
        server = self.hosts[name].server
        if server is None:
            raise KeyError(f"{name} is not a running lab host")
        return server

    def messages(self) -> list[ReceivedMessage]:
        """Every message any host accepted."""
        return [
            message
            for host in self.hosts.values()
            if host.server is not None
            for message in host.server.messages
        ]

    def unanswered(self) -> list[ReceivedMessage]:
        """Every message any host received whole and never answered (on purpose)."""
        return [
            message
            for host in self.hosts.values()
            if host.server is not None
            for message in host.server.unanswered
        ]

    def delivered_to(self) -> list[str]:
        """Every recipient address in every accepted message (duplicates kept, to count)."""
        return [rcpt.lower() for message in self.messages() for rcpt in message.recipients]


def sandbox_world(*, greylist_seconds: int = 20) -> LabWorld:
    """The standard lab: what each domain is there to show.

    - ``plain.test``: one MX that accepts everything.
    - ``grey.test``: greylists the first try of each sender+recipient for
      ``greylist_seconds`` (and says so in its reply), then accepts.
    - ``equal.test``: two MX hosts of equal preference, both used.
    - ``failover.test``: its first MX refuses connections, the second accepts.
    - ``tarpit.test``: its first MX never greets, the second accepts.
    - ``bounce.test``: rejects ``nobody@`` and ``unknown@`` as unknown users (550 5.1.1).
    - ``nullmx.test``: publishes a null MX: it accepts no mail at all (RFC 7505).
    - any other ``.test`` name: does not exist (NXDOMAIN).
    """
    greylist = Greylist(retry_after=greylist_seconds, min_delay=greylist_seconds)
    world = LabWorld()
    world.host("mx.plain.test")
    world.host("mx.grey.test", Behaviour(hostname="mx.grey.test", greylist=greylist))
    world.host("mx1.equal.test").host("mx2.equal.test")
    world.host("mx1.failover.test", listening=False).host("mx2.failover.test")
    world.host(
        "mx1.tarpit.test",
        Behaviour(hostname="mx1.tarpit.test", hostile=(Hostile(Stage.GREETING, Act.SILENCE),)),
    )
    world.host("mx2.tarpit.test")
    world.host(
        "mx.bounce.test",
        Behaviour(
            hostname="mx.bounce.test",
            faults=(unknown_users("nobody@bounce.test", "unknown@bounce.test"),),
        ),
    )
    world.domain("plain.test", "mx.plain.test")
    world.domain("grey.test", "mx.grey.test")
    world.domain("equal.test", (10, "mx1.equal.test"), (10, "mx2.equal.test"))
    world.domain("failover.test", "mx1.failover.test", "mx2.failover.test")
    world.domain("tarpit.test", "mx1.tarpit.test", "mx2.tarpit.test")
    world.domain("bounce.test", "mx.bounce.test")
    world.zone.null_mx("nullmx.test")
    return world
