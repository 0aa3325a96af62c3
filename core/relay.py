"""Relay mode: hand every message to smarthosts (an MTA fleet the user runs) instead of
each recipient domain's MX hosts.

Owns what a relay is (host and port, tried in the order given: failover), how a relay
connection is secured (STARTTLS required, or implicit TLS on port 465 — RFC 8314 — with
the certificate always verified against the system's CAs or a given CA file, host name
included) and logged in to (AUTH PLAIN or LOGIN, :class:`core.smtp.Credentials`), and how
relay names become the route every recipient takes. The engine keeps everything else:
queues, retries, results per recipient, the campaign file.

Also owns how a campaign file remembers its route (:data:`ROUTE`,
:class:`CampaignRoute`): once a real send started through relays, resuming the campaign
without saying otherwise keeps them, so a crash or a Ctrl-C never turns a relayed
campaign into direct delivery from this computer. The password is never part of it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from core.credentials import RELAY, PasswordError
from core.dns import MXHost
from core.smtp import Credentials

SUBMISSION_PORT = 587  # RFC 6409, STARTTLS
SUBMISSIONS_PORT = 465  # RFC 8314, implicit TLS
#: The provider name every relay shares (one concurrency budget for the relay set).
PROVIDER = "relay"
#: The campaign setting (``core.store.CampaignStore.settings``) that remembers how the
#: campaign's mail is routed once a real send started: what :meth:`CampaignRoute.setting`
#: writes, read by :func:`campaign_route`. Absent: no real send started yet, or a file
#: from before routes were remembered (it resumes directly, as it was sent).
ROUTE: Final = "route"
_SECURITY: Final = {"starttls": False, "tls": True}


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


@dataclass(frozen=True, slots=True)
class CampaignRoute:
    """How a campaign's mail goes, as its file remembers it: through ``relays`` (each as
    :attr:`Relay.name` gives it, port included, in the order tried), secured and logged
    in to as given, or (no relays) directly to the recipients' MX hosts.

    Only the login's user name is kept: the password is looked up again each time
    (:mod:`core.credentials`), and never written to the campaign file."""

    relays: tuple[str, ...] = ()
    #: TLS from the first byte rather than STARTTLS.
    implicit_tls: bool = False
    #: The CA file's absolute path ("" : the system's CAs).
    cafile: str = ""
    #: The login's user name ("": no login).
    user: str = ""

    @property
    def direct(self) -> bool:
        return not self.relays

    @property
    def security(self) -> str:
        """As ``--relay-security`` and the window's settings name it."""
        return "tls" if self.implicit_tls else "starttls"

    def describe(self) -> str:
        """``the relay smtp.example.test:587``, ``the relays a:587, b:2587``, or direct."""
        if self.direct:
            return "direct delivery to the recipients' MX hosts"
        noun = "relay" if len(self.relays) == 1 else "relays"
        return f"the {noun} {', '.join(self.relays)}"

    def setting(self) -> dict[str, object]:
        """The value of :data:`ROUTE` in the campaign's settings (JSON)."""
        if self.direct:
            return {"via": "direct"}
        return {
            "via": "relay",
            "relays": list(self.relays),
            "security": self.security,
            "cafile": self.cafile,
            "user": self.user,
        }

    @classmethod
    def of(cls, config: RelayConfig | None) -> CampaignRoute:
        """The route a run with ``config`` takes (None: direct)."""
        if config is None:
            return cls()
        user = config.credentials.user if config.credentials is not None else ""
        cafile = str(Path(config.cafile).resolve()) if config.cafile else ""
        return cls(tuple(relay.name for relay in config.relays), config.implicit_tls, cafile, user)

    def config(
        self, *, prompt: Callable[[str], str] | None = None, login: bool = True
    ) -> RelayConfig | None:
        """The relay settings to send this way (None: direct), the password looked up
        now as :func:`relay_config` does; ``login=False`` leaves the login out (for a
        run with nothing left to send: no password is needed). ``ValueError`` as
        :func:`relay_config` raises it."""
        if self.direct:
            return None
        return relay_config(
            self.relays,
            implicit_tls=self.implicit_tls,
            user=self.user if login else "",
            cafile=self.cafile,
            prompt=prompt,
        )


def campaign_route(settings: Mapping[str, object]) -> CampaignRoute | None:
    """The route a campaign's settings remember (:data:`ROUTE`); None when they remember
    none. ``ValueError`` when the value is not one :meth:`CampaignRoute.setting` writes
    (a file changed by hand): better refused than read as direct delivery."""
    if ROUTE not in settings:
        return None
    value = settings[ROUTE]
    broken = f"the campaign's stored route {value!r} cannot be read"
    if not isinstance(value, dict):  # null included: never read as direct
        raise ValueError(broken)
    if value == {"via": "direct"}:
        return CampaignRoute()
    relays, security = value.get("relays"), value.get("security")
    cafile, user = value.get("cafile", ""), value.get("user", "")
    if (
        value.get("via") != "relay"
        or not isinstance(relays, list)
        or not relays
        or not all(isinstance(name, str) for name in relays)
        or not isinstance(security, str)
        or security not in _SECURITY
        or not isinstance(cafile, str)
        or not isinstance(user, str)
    ):
        raise ValueError(broken)
    implicit_tls = _SECURITY[security]
    try:
        names = tuple(relay.name for relay in parse_relays(relays, implicit_tls=implicit_tls))
    except ValueError as error:
        raise ValueError(f"{broken}: {error}") from None
    return CampaignRoute(names, implicit_tls, cafile, user)


def with_route(settings: Mapping[str, object], route: CampaignRoute) -> dict[str, object]:
    """``settings`` remembering ``route``."""
    return {**settings, ROUTE: route.setting()}
