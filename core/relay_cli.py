"""``mxmailer send``'s relay options: ``--relay``, ``--relay-security``, ``--relay-cafile``
and ``--relay-user`` (the password from the keyring or the environment, never an option:
``ps`` and shell history would show it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from core import relay
from core.credentials import RELAY
from core.relay import RelayConfig


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
        default="starttls",
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


def relay_config(args: argparse.Namespace) -> RelayConfig | None:
    """The relay settings the options give, None without ``--relay``; ``ValueError``
    with a message for the user when they cannot be used."""
    if not args.relay:
        if args.relay_user or args.relay_cafile:
            raise ValueError("--relay-user and --relay-cafile need --relay")
        return None
    return relay.relay_config(
        args.relay,
        implicit_tls=args.relay_security == "tls",
        user=args.relay_user or "",
        cafile="" if args.relay_cafile is None else str(args.relay_cafile),
    )
