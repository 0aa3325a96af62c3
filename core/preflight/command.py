"""``mxmailer preflight``: the checks from the command line, as a traffic-light table.

Exit codes: 0 no check failed (warnings and unknowns are shown, not fatal), 1 some check
failed, 2 usage or input errors (nothing checked). The campaign comes from a campaign
file (``--state``) or from a CSV and a sender; defaults are real use (the system's
resolver, port 25, Spamhaus ZEN); tests give lab nameservers, ports and zones. With
``mxmailer send``'s relay options (``--relay`` …) the relay route is checked instead of
the direct one; the relay password is not needed (pre-flight does not log in).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Final, TextIO

from core import relay_cli
from core.dns import parse_nameserver
from core.outgoing import SANDBOX, DKIMSettings
from core.preflight.inputs import (
    DEFAULT_DNSBL,
    Network,
    Preflight,
    RelayRoute,
    from_csv,
    from_store,
    relay_route,
)
from core.preflight.report import EXIT_USAGE, Report, Status
from core.preflight.runner import run_preflight
from core.recipients import RecipientsError
from core.relay import campaign_route
from core.store import CampaignStore, StoreError

#: How each light is written: a word always (colour is not the only signal), coloured on
#: a terminal.
LABEL: Final = {Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL",
                Status.UNKNOWN: "  ? ", Status.NOT_APPLICABLE: "N/A "}
_COLOUR: Final = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "31", Status.UNKNOWN: "36",
                  Status.NOT_APPLICABLE: "2"}
_WIDTH: Final = 100


class UsageError(Exception):
    """Bad arguments: said on stderr, exit 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=Path, help="a campaign file to check")
    parser.add_argument("--recipients", type=Path, help="or: a CSV with an email column")
    parser.add_argument("--sender", help="the envelope sender (with --recipients)")
    parser.add_argument("--helo", help="the EHLO name (default: the campaign's, or the "
                        "sender's domain)")
    parser.add_argument("--dkim-key", type=Path, help="the DKIM private key file")
    parser.add_argument("--dkim-selector", help="the DKIM selector")
    parser.add_argument("--dkim-domain", help="the DKIM domain (default: the sender's)")
    parser.add_argument("--list-unsubscribe-url", help="the one-click unsubscribe URL")
    parser.add_argument("--list-unsubscribe-mailto", help="the unsubscribe address")
    parser.add_argument("--nameserver", action="append", default=[], metavar="HOST[:PORT]",
                        help="a DNS server to ask (repeatable; default: the system's)")
    parser.add_argument("--port", type=int, default=25, help="the MX port to probe")
    parser.add_argument("--source-address", action="append", default=[], metavar="IP",
                        help="the outgoing address to check (repeatable, one per IP version;"
                        " default: the one this machine uses towards recipient MX hosts)")
    parser.add_argument("--dnsbl", action="append", default=[], metavar="ZONE",
                        help=f"a DNS blocklist zone (repeatable; default: {DEFAULT_DNSBL})")
    # The same relay options as `mxmailer send`: check the route a send with them takes.
    relay_cli.add_arguments(parser)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    try:
        preflight = _preflight(args)
    except (UsageError, StoreError, RecipientsError) as error:
        print(f"mxmailer preflight: {error}", file=sys.stderr)
        return EXIT_USAGE
    report = asyncio.run(run_preflight(preflight))
    stream.write(render(report, colour=stream.isatty()))
    return report.exit_code


def render(report: Report, *, colour: bool = False) -> str:
    """The table: one block per light (label, title; the result and the fix indented)."""
    lines: list[str] = []
    for result in report.results:
        label = f"[{LABEL[result.status]}]"
        if colour:
            label = f"\x1b[{_COLOUR[result.status]}m{label}\x1b[0m"
        lines.append(f"{label} {result.title}")
        lines.extend(textwrap.wrap(result.result, _WIDTH, initial_indent="       ",
                                   subsequent_indent="       "))
        if result.fix:
            lines.extend(textwrap.wrap(result.fix, _WIDTH, initial_indent="       fix: ",
                                       subsequent_indent="            "))
    counts = {status: sum(r.status is status for r in report.results) for status in Status}
    lines.append("")
    shown = [s for s in Status if s is not Status.NOT_APPLICABLE or counts[s]]
    lines.append(", ".join(f"{counts[s]} {s.value}" for s in shown))
    return "\n".join(lines) + "\n"


def _preflight(args: argparse.Namespace) -> Preflight:
    network = _network(args)
    if (args.state is None) == (args.recipients is None):
        raise UsageError("give either --state FILE or --recipients CSV --sender ADDR")
    dkim = _dkim(args)
    if args.state is not None:
        if not args.state.exists():
            raise UsageError(f"no campaign file at {args.state}")
        store, _ = CampaignStore.open(args.state, read_only=True)
        with store:
            if store.settings.get(SANDBOX) is True:
                raise UsageError(
                    f"{args.state} was made in the window's sandbox and is only ever sent to "
                    "the lab: the pre-flight checks are for real sending"
                )
            campaign = from_store(store, helo=args.helo)
            if not args.relay and not args.direct:
                network = dataclasses.replace(network, relay=_stored_relay(store.settings))
        changes: dict[str, object] = {}
        if dkim is not None:
            changes["dkim"] = dkim
        if args.list_unsubscribe_url:
            changes["list_unsubscribe_url"] = args.list_unsubscribe_url
        if args.list_unsubscribe_mailto:
            changes["list_unsubscribe_mailto"] = args.list_unsubscribe_mailto
        return Preflight(dataclasses.replace(campaign, **changes), network)  # type: ignore[arg-type]
    if not args.sender or "@" not in args.sender:
        raise UsageError("--recipients needs --sender ADDR (the address mail is sent from)")
    campaign = from_csv(
        args.recipients, args.sender, helo=args.helo, dkim=dkim,
        list_unsubscribe_url=args.list_unsubscribe_url,
        list_unsubscribe_mailto=args.list_unsubscribe_mailto,
    )
    return Preflight(campaign, network)


def _dkim(args: argparse.Namespace) -> DKIMSettings | None:
    if args.dkim_key is None:
        if args.dkim_selector or args.dkim_domain:
            raise UsageError("--dkim-selector and --dkim-domain need --dkim-key")
        return None
    if not args.dkim_selector:
        raise UsageError("--dkim-key needs --dkim-selector (the name under _domainkey)")
    domain = args.dkim_domain or (args.sender or "").rpartition("@")[2]
    if not domain:
        raise UsageError("--dkim-key needs --dkim-domain (or --sender to take it from)")
    return DKIMSettings(str(args.dkim_key), args.dkim_selector, domain)


def _network(args: argparse.Namespace) -> Network:
    try:
        nameservers = tuple(parse_nameserver(text) for text in args.nameserver) or None
    except ValueError as error:
        raise UsageError(f"--nameserver: {error}") from error
    if not 0 < args.port < 65536:
        raise UsageError("--port must be 1..65535")
    addresses: list[str] = []
    for text in args.source_address:
        try:
            addresses.append(str(ipaddress.ip_address(text)))
        except ValueError:
            raise UsageError(f"--source-address {text!r} is not an IP address") from None
    zones = tuple(zone.strip(".").lower() for zone in args.dnsbl) or (DEFAULT_DNSBL,)
    if any(not zone or " " in zone for zone in zones):
        raise UsageError("--dnsbl takes a DNS zone, e.g. zen.spamhaus.org")
    return Network(nameservers, args.port, tuple(addresses), zones, relay=_relay(args))


def _stored_relay(settings: Mapping[str, object]) -> RelayRoute | None:
    """The relays a campaign file remembers (what its next send will use), if any."""
    try:
        route = campaign_route(settings)
        if route is None or route.direct:
            return None
        return relay_route(
            route.relays, implicit_tls=route.implicit_tls, user=route.user, cafile=route.cafile
        )
    except ValueError as error:
        raise UsageError(f"{error}: give --relay or --direct") from None


def _relay(args: argparse.Namespace) -> RelayRoute | None:
    """``mxmailer send``'s relay options, checked as a send checks them (names, ports, the
    CA file), except that the password is not looked for: pre-flight does not log in."""
    try:
        relay_cli.check(args)  # the same contradictions send refuses
        return relay_route(
            args.relay, implicit_tls=args.relay_security == "tls",
            user=args.relay_user or "",
            cafile="" if args.relay_cafile is None else str(args.relay_cafile),
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
