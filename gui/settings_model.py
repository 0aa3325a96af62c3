"""The app's settings: who sends, how fast, how patiently, and where mail goes.

Owns the :class:`AppSettings` value, its validation (each problem keyed by the field it
is about, in words the user can act on), its JSON file, and turning it into the
:class:`core.engine.EngineConfig` of a *real* run. It never imports Qt.

Safety: the default is the sandbox. Real delivery needs the setting *and* an explicit
acknowledgement *and* a campaign file not made in the sandbox (``gui.sandbox``): a
sandbox campaign is only ever sent to the lab, whatever these settings say. Settings
that fail validation when loaded fall back to the sandbox. A campaign sent through
relays keeps them whatever the settings say later (:func:`run_settings`): Settings
changed to direct delivery must not send the rest of it from this computer.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from core.dkim import DKIMError, DKIMSigner
from core.engine import EngineConfig
from core.outgoing import (
    DKIM_DOMAIN,
    DKIM_KEY,
    DKIM_SELECTOR,
    LIST_UNSUBSCRIBE_MAILTO,
    LIST_UNSUBSCRIBE_URL,
)
from core.recipients import parse_address
from core.relay import CampaignRoute, RelayConfig, check_cafile, parse_relays
from core.relay import relay_config as core_relay_config
from core.retry import RetryPolicy
from core.smtp import TLSPolicy, UnsafeArgumentError, commands

log = logging.getLogger(__name__)

#: The settings file's name in the app's data folder.
SETTINGS_FILE: Final = "settings.json"


class Delivery(enum.Enum):
    SANDBOX = "sandbox"
    REAL = "real"


#: STARTTLS policies, as ``mxmailer send --starttls`` names them.
STARTTLS: Final = {
    "opportunistic": TLSPolicy.MAY,
    "require": TLSPolicy.REQUIRE,
    "off": TLSPolicy.OFF,
}

#: How a relay connection is secured: STARTTLS required, or TLS from the first byte.
RELAY_SECURITY: Final = ("starttls", "tls")

#: Upper bounds that catch a slipped digit (the engine itself has no such caps).
MAX_CONCURRENCY: Final = 2000
MAX_DELAY: Final = 7 * 24 * 3600.0
MAX_LIFETIME: Final = 30 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class AppSettings:
    #: Envelope sender (MAIL FROM) the campaigns are sent as; "" until chosen.
    sender: str = ""
    #: The name sent in EHLO; "" means the sender's domain.
    helo: str = ""
    concurrency: int = 100
    per_destination: int = 5
    #: Seconds to the first retry after greylisting without a hint (RFC 6647 §2.1).
    greylist_retry: float = 330.0
    #: Seconds to the first retry after other transient failures (doubled each time).
    backoff: float = 300.0
    #: Seconds after the first attempt before a recipient expires (5 days, as Postfix).
    lifetime: float = 5 * 24 * 3600.0
    starttls: str = "opportunistic"
    dkim_key: str = ""
    dkim_selector: str = ""
    dkim_domain: str = ""
    list_unsubscribe_mailto: str = ""
    list_unsubscribe_url: str = ""
    delivery: Delivery = Delivery.SANDBOX
    #: The user ticked "I understand mail goes to real recipients".
    real_acknowledged: bool = False
    #: Relay mode (docs/RELAY.md): smarthosts, "HOST[:PORT]" separated by spaces or
    #: commas, tried in order; "" sends directly to the recipients' MX hosts.
    relays: str = ""
    relay_security: str = "starttls"
    #: The relays' login; its password is in the keyring or MXMAILER_RELAY_PASSWORD.
    relay_user: str = ""
    relay_cafile: str = ""

    @property
    def relay_list(self) -> list[str]:
        return [part for part in self.relays.replace(",", " ").split() if part]

    @property
    def real(self) -> bool:
        """Real delivery is chosen and acknowledged (a campaign must still be real)."""
        return self.delivery is Delivery.REAL and self.real_acknowledged

    @property
    def helo_name(self) -> str:
        return self.helo or self.sender.rpartition("@")[2]

    @property
    def signing_domain(self) -> str:
        return self.dkim_domain or self.sender.rpartition("@")[2]


def helo_problem(name: str) -> str | None:
    """Why ``name`` cannot be our EHLO name (RFC 5321 §4.1.1.1, §2.3.5), or None."""
    if not name:
        return None
    if any(char.isspace() for char in name):
        return "The HELO name may not contain spaces: give one host name, e.g. mail.example.com."
    bare = name.strip("[]")
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return (
            "The HELO name must be a host name, not a bare IP address: receiving servers "
            "score an address as HELO as spam. Use the name your IP's PTR record gives."
        )
    if name.rstrip(".").lower() in {"localhost", "localhost.localdomain"} or name.lower().endswith(
        ".localhost"
    ):
        return (
            "The HELO name may not be localhost: receiving servers reject or distrust it. "
            "Use the public name of the sending host, e.g. mail.example.com."
        )
    if "." not in name.strip("."):
        return "The HELO name must be a fully qualified host name, e.g. mail.example.com."
    try:
        commands.ehlo(name)
    except UnsafeArgumentError as error:
        return f"The HELO name cannot be sent: {error}"
    return None


def sender_problem(sender: str) -> str | None:
    if not sender:
        return None
    try:
        address, _ = parse_address(sender)
        commands.mail_from(address)
    except (ValueError, UnsafeArgumentError) as error:
        return f"Not an address to send from: {error}"
    if address != sender:
        return f"Give the bare address ({address}), without a name or brackets."
    return None


def validate(settings: AppSettings) -> dict[str, str]:
    """Problems, keyed by field name; empty when the settings may be used."""
    problems: dict[str, str] = {}

    def check(name: str, problem: str | None) -> None:
        if problem and name not in problems:
            problems[name] = problem

    check("sender", sender_problem(settings.sender))
    check("helo", helo_problem(settings.helo))
    if not settings.helo and settings.sender:
        check("helo", helo_problem(settings.helo_name))
    if not 1 <= settings.concurrency <= MAX_CONCURRENCY:
        check("concurrency", f"Connections in all must be 1 to {MAX_CONCURRENCY}.")
    if settings.per_destination < 1:
        check("per_destination", "Connections per destination must be at least 1.")
    elif settings.per_destination > settings.concurrency:
        check(
            "per_destination",
            "Connections per destination cannot exceed the connections in all.",
        )
    for name, label in (("greylist_retry", "The first greylisting retry"), ("backoff", "Backoff")):
        value = getattr(settings, name)
        if not 1 <= value <= MAX_DELAY:
            check(name, f"{label} must be between 1 second and 7 days.")
    if not 60 <= settings.lifetime <= MAX_LIFETIME:
        check("lifetime", "The lifetime must be between 1 minute and 30 days.")
    elif settings.lifetime < settings.greylist_retry:
        check("lifetime", "The lifetime is shorter than the first greylisting retry.")
    if settings.starttls not in STARTTLS:
        check("starttls", f"STARTTLS must be one of {', '.join(STARTTLS)}.")
    check("dkim_key", _dkim_problem(settings))
    mailto = settings.list_unsubscribe_mailto
    if mailto and "@" not in mailto:
        check(
            "list_unsubscribe_mailto",
            "Give an address or a mailto: URL, e.g. unsubscribe@example.com.",
        )
    url = settings.list_unsubscribe_url
    if url and not url.lower().startswith("https://"):
        check(
            "list_unsubscribe_url",
            "One-click unsubscribe needs an https:// URL receiving a POST (RFC 8058).",
        )
    check("relays", _relay_problem(settings))
    if settings.delivery is Delivery.REAL:
        if not settings.real_acknowledged:
            check(
                "real_acknowledged",
                "Tick the box to confirm that mail goes to real recipients' servers.",
            )
        if not settings.sender:
            check("sender", "Real delivery needs the sender address campaigns are sent as.")
    return problems


def _relay_problem(settings: AppSettings) -> str | None:
    if not settings.relay_list:
        if settings.relay_user or settings.relay_cafile:
            return "A relay login or CA file needs at least one relay."
        return None
    if settings.relay_security not in RELAY_SECURITY:
        return f"Relay security must be one of {', '.join(RELAY_SECURITY)}."
    try:
        parse_relays(settings.relay_list, implicit_tls=settings.relay_security == "tls")
    except ValueError as error:
        return f"Relay {error}"
    if settings.relay_cafile:
        try:
            check_cafile(settings.relay_cafile)
        except ValueError as error:  # "the CA file X does not exist", "... cannot be used"
            why = str(error)
            return f"{why[:1].upper()}{why[1:]}."
    return None


def relay_config(settings: AppSettings) -> RelayConfig | None:
    """Relay mode as the settings give it (None: direct to MX). Raises RuntimeError,
    saying where to put it, when the login's password cannot be found (the window
    never prompts: there is no terminal)."""
    if not settings.relay_list:
        return None
    try:
        return core_relay_config(
            settings.relay_list,
            implicit_tls=settings.relay_security == "tls",
            user=settings.relay_user,
            cafile=settings.relay_cafile,
            prompt=lambda _: "",
        )
    except ValueError as error:  # never quotes the password
        raise RuntimeError(str(error)) from None


def _dkim_problem(settings: AppSettings) -> str | None:
    key, selector = settings.dkim_key, settings.dkim_selector
    if not (key or selector or settings.dkim_domain):
        return None
    if not key:
        return "A DKIM selector or domain needs the private key file."
    if not selector:
        return "DKIM needs a selector (the name under _domainkey), e.g. mx2025."
    if not settings.signing_domain:
        return "DKIM needs a signing domain (or a sender address to take it from)."
    try:
        DKIMSigner(key, selector=selector, domain=settings.signing_domain)
    except DKIMError as error:
        return f"DKIM: {error}"
    except OSError as error:
        return f"DKIM: the key file cannot be read: {error.strerror or error}"
    return None


# ---- the file ---------------------------------------------------------------------------


def to_json(settings: AppSettings) -> dict[str, object]:
    data = dataclasses.asdict(settings)
    data["delivery"] = settings.delivery.value
    return data


def from_json(data: Mapping[str, object]) -> AppSettings:
    """Settings from a parsed file: unknown keys ignored, wrong types left at defaults."""
    defaults = AppSettings()
    changes: dict[str, object] = {}
    for field in dataclasses.fields(AppSettings):
        if field.name not in data:
            continue
        value = data[field.name]
        default = getattr(defaults, field.name)
        if field.name == "delivery":
            if value in {d.value for d in Delivery}:
                changes["delivery"] = Delivery(value)
        elif isinstance(default, bool):
            if isinstance(value, bool):
                changes[field.name] = value
        elif isinstance(default, int):
            if isinstance(value, int) and not isinstance(value, bool):
                changes[field.name] = value
        elif isinstance(default, float):
            if isinstance(value, int | float) and not isinstance(value, bool):
                changes[field.name] = float(value)
        elif isinstance(value, str):
            changes[field.name] = value
    return dataclasses.replace(defaults, **changes)  # type: ignore[arg-type]


def load_settings(path: Path) -> AppSettings:
    """The settings in ``path``; the defaults (the sandbox) when there are none, and
    the sandbox whenever the file cannot be read or its settings are not valid."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AppSettings()
    except (OSError, ValueError) as error:
        log.warning("settings %s not read (%s): using the defaults", path, error)
        return AppSettings()
    if not isinstance(data, dict):
        return AppSettings()
    settings = from_json(data)
    if settings.delivery is Delivery.REAL and validate(settings):
        log.warning("settings %s are not valid: delivery falls back to the sandbox", path)
        settings = dataclasses.replace(settings, delivery=Delivery.SANDBOX)
    return settings


def save_settings(path: Path, settings: AppSettings) -> None:
    """Write ``settings`` to ``path`` (through a temporary file, so never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(to_json(settings), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


# ---- a real run -------------------------------------------------------------------------


def real_blocked(settings: AppSettings, campaign_sender: str) -> str | None:
    """Why a real (non-sandbox) campaign sent as ``campaign_sender`` may not be sent
    from the window with these settings; None when it may."""
    if settings.delivery is not Delivery.REAL:
        return (
            "This campaign file was not made in the sandbox, and Settings choose the "
            "sandbox: choose real delivery in Settings to send it."
        )
    if not settings.real_acknowledged or validate(settings):
        return "The delivery settings are not complete: open Settings."
    if campaign_sender.lower() != settings.sender.lower():
        return (
            f"This campaign is sent as {campaign_sender or '<>'}, but Settings say the "
            f"sender is {settings.sender}: change Settings to send it."
        )
    return None


def campaign_settings(current: Mapping[str, object], settings: AppSettings) -> dict[str, object]:
    """The campaign file's settings for a real run that has not sent anything yet:
    the HELO, and the DKIM and List-Unsubscribe options given in Settings (those not
    given keep the campaign's own)."""
    updated = dict(current)
    updated["helo"] = settings.helo_name
    if settings.dkim_key:
        updated[DKIM_KEY] = str(Path(settings.dkim_key).resolve())
        updated[DKIM_SELECTOR] = settings.dkim_selector
        updated[DKIM_DOMAIN] = settings.signing_domain
    if settings.list_unsubscribe_mailto:
        updated[LIST_UNSUBSCRIBE_MAILTO] = settings.list_unsubscribe_mailto
    if settings.list_unsubscribe_url:
        updated[LIST_UNSUBSCRIBE_URL] = settings.list_unsubscribe_url
    return updated


def settings_route(settings: AppSettings) -> CampaignRoute:
    """The route the settings give (direct without relays), as a campaign stores it.
    ``ValueError`` when their relays cannot be parsed (:func:`validate` says so too)."""
    if not settings.relay_list:
        return CampaignRoute()
    implicit_tls = settings.relay_security == "tls"
    relays = parse_relays(settings.relay_list, implicit_tls=implicit_tls)
    # As a run with these settings would store it; the login without its password.
    route = CampaignRoute.of(RelayConfig(relays, implicit_tls, None, settings.relay_cafile or None))
    return dataclasses.replace(route, user=settings.relay_user)


def run_settings(settings: AppSettings, stored: CampaignRoute | None) -> AppSettings:
    """The settings a real run of a campaign uses: ``settings`` with the relays
    ``stored`` in the campaign, when it remembers relays. A campaign sent through relays
    keeps them until ``mxmailer send --state FILE --direct`` (or ``--relay``) changes
    its route: its mail must not go directly from this computer (often a blocklisted
    address: the reason for the relays), or to other relays, because the app's Settings
    changed since. A campaign sent directly, or not yet sent, goes the Settings' way."""
    if stored is None or stored.direct:
        return settings
    return dataclasses.replace(
        settings,
        relays=" ".join(stored.relays),
        relay_security=stored.security,
        relay_user=stored.user,
        relay_cafile=stored.cafile,
    )


def route_override(
    settings: AppSettings, stored: CampaignRoute | None, path: str = "FILE"
) -> str | None:
    """What the user must be told when the relays stored in the campaign file ``path``
    are used instead of the route the Settings give; None when the Settings' route is
    the one used."""
    if stored is None or stored.direct:
        return None
    try:
        own: CampaignRoute | None = settings_route(settings)
    except ValueError:
        own = None
    if own == stored:
        return None
    says = "relays that cannot be used" if own is None else own.describe()
    return (
        f"this campaign goes through {stored.describe()}, as it was sent so far (its file "
        f"remembers the route), not {says} as Settings say; to change its route run "
        f"mxmailer send --state {path} --direct, or --relay HOST"
    )


def real_engine_config(settings: AppSettings) -> EngineConfig:
    """The engine's configuration for real delivery: the system's resolver, port 25,
    and the limits and retry policy from ``settings``."""
    policy = RetryPolicy()
    retry = dataclasses.replace(
        policy,
        greylist_first=settings.greylist_retry,
        greylist_jitter=settings.greylist_retry * 0.25,
        hint_min=min(policy.hint_min, settings.greylist_retry),
        backoff_first=settings.backoff,
        backoff_max=max(settings.backoff, min(policy.backoff_max, settings.backoff * 12)),
        lifetime=settings.lifetime,
    )
    return EngineConfig(
        relay=relay_config(settings),
        helo=settings.helo_name,
        concurrency=settings.concurrency,
        per_destination=settings.per_destination,
        tls=STARTTLS[settings.starttls],
        retry=retry,
        smtp_phases=True,
    )
