"""``mxmailer send``'s relay options: ``--relay``, ``--relay-security``, ``--relay-cafile``
and ``--relay-user`` (the password from the keyring or the environment, never an option:
``ps`` and shell history would show it), and ``--direct``.

A resumed campaign keeps the route its file remembers (:class:`core.relay.CampaignRoute`)
unless ``--relay`` (other relays) or ``--direct`` (the recipients' MX hosts) replaces it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core import relay
from core.credentials import RELAY
from core.relay import CampaignRoute, RelayConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--relay",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="hand every message to this relay (smarthost) instead of the recipients' MX "
        "hosts; repeatable, tried in order (default port 587, or 465 with tls)",
    )
    parser.add_argument(
        "--relay-security",
        choices=("starttls", "tls"),
        help="STARTTLS required (default), or TLS from the first byte (port 465); the "
        "relay's certificate is always verified",
    )
    parser.add_argument(
        "--relay-cafile", type=Path, metavar="PEM", help="a CA to trust for the relays"
    )
    parser.add_argument(
        "--relay-user",
        metavar="USER",
        help=f"log in to the relays (AUTH PLAIN or LOGIN); the password comes from the "
        f"system keyring ('{RELAY.service}', USER@HOST) or ${RELAY.env}",
    )
    parser.add_argument(
        "--direct",
        action="store_true",
        help="send to the recipients' own MX hosts: resuming a campaign sent through "
        "relays, switch it to direct delivery (without --relay or --direct a campaign "
        "resumes the way its file says it was sent)",
    )


def check(args: argparse.Namespace) -> None:
    """``ValueError`` when the relay options contradict each other."""
    if args.relay and args.direct:
        raise ValueError(
            "--relay and --direct cannot be used together: --relay sends through the "
            "relays given, --direct to the recipients' own MX hosts"
        )
    if not args.relay and (args.relay_user or args.relay_cafile or args.relay_security):
        raise ValueError("--relay-user, --relay-cafile and --relay-security need --relay")


def relay_config(
    args: argparse.Namespace, stored: CampaignRoute | None = None, *, login: bool = True
) -> RelayConfig | None:
    """The relay settings of this run (None: direct): the options' with ``--relay``;
    none with ``--direct``; else the route ``stored`` in the campaign file (its password
    looked up now, unless ``login`` is False: nothing is left to send). ``ValueError``
    with a message for the user when they cannot be used."""
    check(args)
    if args.relay:
        return relay.relay_config(
            args.relay,
            implicit_tls=args.relay_security == "tls",
            user=args.relay_user or "",
            cafile="" if args.relay_cafile is None else str(args.relay_cafile),
        )
    if args.direct or stored is None:
        return None
    try:
        return stored.config(login=login)
    except ValueError as error:
        raise ValueError(
            f"the route stored in the campaign file ({stored.describe()}) cannot be used "
            f"now: {error}. Fix that, or give --relay to send through other relays, or "
            "--direct to send to the recipients' own MX hosts"
        ) from None


def route_note(
    args: argparse.Namespace, stored: CampaignRoute | None, chosen: CampaignRoute
) -> str | None:
    """The line saying which route a resumed campaign takes, when its file had one and
    it is kept or replaced; None when there is nothing to say."""
    if stored is None or (stored.direct and chosen.direct):
        return None
    if not args.relay and not args.direct:
        return (
            f"resuming through {stored.describe()} stored in the campaign (--relay to "
            "replace it, --direct to send to the recipients' own MX hosts)"
        )
    if stored == chosen:
        return None
    if stored.direct:
        return (
            f"resuming through {chosen.describe()} given with --relay; the campaign was "
            "sent directly so far (the relay route is stored in it now)"
        )
    if args.relay:
        how = f"through {chosen.describe()} given with --relay"
    else:
        how = "with direct delivery to the recipients' MX hosts (--direct)"
    return (
        f"resuming {how}, replacing {stored.describe()} stored in the campaign (the new "
        "route is stored in it now)"
    )
