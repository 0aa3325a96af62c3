"""Relay mode: hand every message to smarthosts (an MTA fleet the user runs) instead of
each recipient domain's MX hosts.

Owns what a relay is (host and port, tried in the order given: failover), how a relay
connection is secured (STARTTLS required, or implicit TLS on port 465 — RFC 8314 — with
the certificate always verified against the system's CAs or a given CA file, host name
included) and logged in to (AUTH PLAIN or LOGIN, :class:`core.smtp.Credentials`), and how
relay names become the route every recipient takes. The engine keeps everything else:
queues, retries, results per recipient, the campaign file.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.credentials import RELAY, PasswordError
from core.dns import MXHost
from core.smtp import Credentials

SUBMISSION_PORT = 587  # RFC 6409, STARTTLS
SUBMISSIONS_PORT = 465  # RFC 8314, implicit TLS
#: The provider name every relay shares (one concurrency budget for the relay set).
PROVIDER = "relay"


@dataclass(frozen=True, slots=True)
class Relay:
    host: str
    port: int

    @property
    def name(self) -> str:
        """How the route, the transcript and the report's MX column name it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RelayConfig:
    relays: tuple[Relay, ...]
    #: TLS from the first byte (port 465) rather than STARTTLS (port 587).
    implicit_tls: bool = False
    credentials: Credentials | None = None
    #: A CA file to trust for the relays' certificates (None: the system's CAs).
    cafile: str | None = None

    def by_name(self, name: str) -> Relay | None:
        return next((relay for relay in self.relays if relay.name == name), None)

    def tls_context(self) -> ssl.SSLContext:
        return verified_context(self.cafile)


def parse_relay(text: str, *, implicit_tls: bool = False) -> Relay:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; the port defaults to 465 for
    implicit TLS and 587 otherwise. ``ValueError`` when it is not one of those."""
    spec = text.strip()
    default = SUBMISSIONS_PORT if implicit_tls else SUBMISSION_PORT
    if spec.startswith("["):
        host, bracket, rest = spec[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPv6] or [IPv6]:PORT")
        port_text = rest[1:]
    else:
        host, _, port_text = spec.partition(":")
        if ":" in port_text:
            raise ValueError(f"{text!r}: an IPv6 address with a port needs brackets: [::1]:587")
    if not host or any(character.isspace() for character in host):
        raise ValueError(f"{text!r}: expected HOST or HOST:PORT")
    if not _is_address(host):
        try:
            host.encode("idna")  # empty or over-long labels: no resolver would take it
        except UnicodeError:
            raise ValueError(f"{text!r}: {host!r} is not a valid host name") from None
    if not port_text:
        return Relay(host, default)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port must be 1..65535")
    return Relay(host, int(port_text))


def relay_config(
    hosts: Sequence[str],
    *,
    implicit_tls: bool,
    user: str = "",
    cafile: str = "",
    prompt: Callable[[str], str] | None = None,
) -> RelayConfig:
    """Relay mode from what the user gave (``mxmailer send``'s options, the window's
    settings): the relays parsed, the CA file loaded, the login's password found.
    ``ValueError``, which never quotes the password, when any of it cannot be used."""
    relays = parse_relays(hosts, implicit_tls=implicit_tls)
    if not relays:
        raise ValueError("no relay given")
    if cafile:
        check_cafile(cafile)
    credentials = None
    if user:
        try:
            password = RELAY.password(user, relays[0].host, prompt=prompt)
        except PasswordError as error:
            raise ValueError(str(error)) from None
        credentials = Credentials(user, password)
    return RelayConfig(relays, implicit_tls, credentials, cafile or None)


def parse_relays(hosts: Sequence[str], *, implicit_tls: bool) -> tuple[Relay, ...]:
    return tuple(parse_relay(text, implicit_tls=implicit_tls) for text in hosts)


def check_cafile(cafile: str) -> None:
    """``ValueError`` unless ``cafile`` is a file of usable CA certificates (checked when
    given, not in the middle of a run)."""
    if not Path(cafile).is_file():
        raise ValueError(f"the CA file {cafile} does not exist")
    verified_context(cafile)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def verified_context(cafile: str | None) -> ssl.SSLContext:
    """Certificates verified and host names checked (a relay is a server the user
    chose: unlike opportunistic TLS to MX hosts, an impostor must not get the mail or
    the password). ``ValueError`` when ``cafile`` holds no usable certificate."""
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"the CA file {cafile} cannot be used: {error}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def relay_hosts(config: RelayConfig) -> tuple[tuple[MXHost, ...], list[str]]:
    """The relays as route hosts, in the order given (preference = position), each with
    its addresses (IPv4 first); and a line for each relay whose name did not resolve."""
    loop = asyncio.get_running_loop()
    hosts: list[MXHost] = []
    problems: list[str] = []
    for position, relay in enumerate(config.relays):
        try:
            infos = await loop.getaddrinfo(relay.host, relay.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            why = error.strerror if isinstance(error, OSError) else None
            problems.append(f"relay {relay.name}: {why or error}")
            continue
        ordered = sorted(infos, key=lambda info: info[0] != socket.AF_INET)
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in ordered))
        hosts.append(MXHost(relay.name, position, addresses))
    return tuple(hosts), problems
