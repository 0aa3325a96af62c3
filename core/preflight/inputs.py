"""What a preflight is asked about: the campaign (who sends, to which domains, signed
how, with which unsubscribe), the route the mail takes (direct to the recipients' MX
hosts, or through relays: :class:`RelayRoute`) and where to look (nameservers, port,
addresses, DNSBLs).

Built from a campaign file (``from_store``) or from the command line's CSV and flags
(``from_csv``); the window builds it from its settings and the open campaign. Reads
files; no network.
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path
from typing import Final

from core.outgoing import (
    LIST_UNSUBSCRIBE_MAILTO,
    LIST_UNSUBSCRIBE_URL,
    DKIMSettings,
    dkim_settings,
)
from core.recipients import ImportSummary, read_recipients
from core.relay import Relay, RelayConfig, check_cafile, parse_relays, verified_context
from core.store import CampaignStore, Status

#: The blocklist asked when none is given: Spamhaus ZEN (SBL, CSS, XBL and PBL in one).
DEFAULT_DNSBL: Final = "zen.spamhaus.org"
#: Seconds one DNS question may take (a preflight should answer in seconds, not minutes).
DNS_TIMEOUT: Final = 3.0
#: Seconds to connect to an MX, read its banner and its EHLO reply.
PROBE_TIMEOUT: Final = 8.0
#: Seconds any one check may take in all, before it is reported as unknown.
CHECK_TIMEOUT: Final = 20.0
#: Recipient MX hosts probed on port 25: the top destinations, one per provider.
PROBES: Final = 3
#: Relays probed (banner, TLS, AUTH) and whose addresses SPF is evaluated for: the
#: first ones given (failover: the first takes the traffic while it answers).
RELAY_PROBES: Final = 5


@dataclass(frozen=True, slots=True)
class Campaign:
    """The facts of a campaign a preflight checks. ``domains``: recipients still to send
    per recipient domain; ``from_domain``: the message's From domain (DMARC's)."""

    sender: str
    helo: str
    from_domain: str
    domains: Mapping[str, int]
    dkim: DKIMSettings | None = None
    list_unsubscribe_url: str | None = None
    list_unsubscribe_mailto: str | None = None

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2].lower()

    @property
    def recipients(self) -> int:
        return sum(self.domains.values())


@dataclass(frozen=True, slots=True)
class RelayRoute:
    """Relay mode as the checks see it: the relays in the order given, how they are
    secured, the CA file and the login's user name. No password: pre-flight never logs
    in (it only reads whether AUTH is offered); the login itself is tried at Start."""

    relays: tuple[Relay, ...]
    implicit_tls: bool = False
    cafile: str | None = None
    user: str | None = None

    @classmethod
    def of(cls, config: RelayConfig) -> RelayRoute:
        """The route a send with ``config`` takes (the engine's relay settings)."""
        user = config.credentials.user if config.credentials is not None else None
        return cls(config.relays, config.implicit_tls, config.cafile, user)

    @property
    def security(self) -> str:
        return "TLS from the first byte" if self.implicit_tls else "STARTTLS"

    def tls_context(self) -> ssl.SSLContext:
        """Verified as a send verifies (``core.relay``): the CA file or the system's CAs,
        the host name checked."""
        return verified_context(self.cafile)


def relay_route(
    hosts: Sequence[str], *, implicit_tls: bool, user: str = "", cafile: str = ""
) -> RelayRoute | None:
    """The relay route from ``mxmailer send``'s relay options (``core.relay_cli``'s
    ``--relay``, ``--relay-security``, ``--relay-user``, ``--relay-cafile``), checked as
    a send checks them, but without looking for the password (pre-flight does not log
    in). None without relays; ``ValueError`` with a message for the user."""
    if not hosts:
        if user or cafile:
            raise ValueError("--relay-user and --relay-cafile need --relay")
        return None
    relays = parse_relays(hosts, implicit_tls=implicit_tls)
    if cafile:
        check_cafile(cafile)
    return RelayRoute(relays, implicit_tls, cafile or None, user or None)


@dataclass(frozen=True, slots=True)
class Network:
    """Where to look. ``nameservers`` None: the system's; ``source_addresses``: the
    outgoing addresses to check (empty: learnt from a route to a recipient MX)."""

    nameservers: tuple[tuple[str, int], ...] | None = None
    port: int = 25
    source_addresses: tuple[str, ...] = ()
    dnsbl_zones: tuple[str, ...] = (DEFAULT_DNSBL,)
    dns_timeout: float = DNS_TIMEOUT
    probe_timeout: float = PROBE_TIMEOUT
    check_timeout: float = CHECK_TIMEOUT
    probes: int = PROBES
    #: STARTTLS is required by the send settings: a destination without it will fail.
    starttls_required: bool = False
    #: Relay mode: mail goes to these relays, not to the recipients' MX hosts (None:
    #: direct). The direct route's checks are then not applicable; the relays are checked.
    relay: RelayRoute | None = None
    relay_probes: int = RELAY_PROBES


@dataclass(frozen=True, slots=True)
class Preflight:
    campaign: Campaign
    network: Network = field(default_factory=Network)


def from_domain_of(message: bytes, default: str) -> str:
    """The domain of the message's From header (a template's From is plain text), or
    ``default`` (the envelope sender's domain) when it has none."""
    headers = BytesHeaderParser().parsebytes(message)
    address = parseaddr(str(headers.get("From", "")))[1]
    domain = address.rpartition("@")[2].strip().lower()
    return domain or default


def from_store(store: CampaignStore, *, helo: str | None = None) -> Campaign:
    """The campaign in ``store``: its unfinished recipients (those a start would send)."""
    settings = store.settings
    sender = store.sender
    domains = Counter(state.domain for state in store.pending() if state.domain)
    return campaign_from_settings(sender, store.message, settings, domains, helo=helo)


def from_csv(
    path: Path,
    sender: str,
    *,
    helo: str | None = None,
    dkim: DKIMSettings | None = None,
    list_unsubscribe_url: str | None = None,
    list_unsubscribe_mailto: str | None = None,
) -> Campaign:
    """A campaign not yet made: the CSV's valid recipients, From = the sender.
    ``core.recipients.RecipientsError`` when the file cannot be read as a list."""
    rows = read_recipients(path, ImportSummary())
    domains = _count(row.domain for row in rows if row.status is Status.QUEUED)
    domain = sender.rpartition("@")[2].lower()
    return Campaign(
        sender, helo or domain, domain, domains, dkim, list_unsubscribe_url,
        list_unsubscribe_mailto,
    )


def campaign_from_settings(
    sender: str, message: bytes, settings: Mapping[str, object], domains: Mapping[str, int],
    *, helo: str | None = None,
) -> Campaign:
    """A campaign from its file's parts: the sender, the message (its From), the settings
    (HELO, DKIM, List-Unsubscribe: ``core.outgoing``'s keys) and the recipient domains."""
    domain = sender.rpartition("@")[2].lower()
    helo = helo or str(settings.get("helo", ""))
    url = settings.get(LIST_UNSUBSCRIBE_URL)
    mailto = settings.get(LIST_UNSUBSCRIBE_MAILTO)
    return Campaign(
        sender,
        helo or domain,
        from_domain_of(message, domain),
        dict(domains),
        dkim_settings(settings),
        url if isinstance(url, str) and url else None,
        mailto if isinstance(mailto, str) and mailto else None,
    )


def _count(domains: Iterable[str]) -> dict[str, int]:
    return dict(Counter(domain for domain in domains if domain))
