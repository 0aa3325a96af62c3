"""The ``mxmailer`` command line: ``send`` a campaign, run the ``lab`` standalone,
``probe`` one SMTP server on loopback to read the driver's transcript, or open the
window (``gui``, imported only then: core never imports Qt)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from collections.abc import Sequence

from core import __version__, review, send
from core.bounces import command as bounces
from core.connection import ConnectionConfig, Target, deliver
from core.preflight import command as preflight
from core.smtp import SessionConfig, TLSPolicy


def _loopback(value: str) -> str:
    """Only loopback addresses may be probed: this command never reaches the internet."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address") from error
    if not address.is_loopback:
        raise argparse.ArgumentTypeError(f"{value} is not a loopback address")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mxmailer",
        description="Bulk mail delivered directly to each recipient domain's MX servers.",
    )
    parser.add_argument("--version", action="version", version=f"mxmailer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    send_parser = commands.add_parser(
        "send",
        help="send a campaign directly to each recipient domain's MX servers",
        description="Send a campaign. Resume it by running the same command again with "
        "the same --state file.",
    )
    send.add_arguments(send_parser)
    preview = commands.add_parser(
        "preview",
        help="print the exact message one recipient of a campaign file receives",
    )
    review.add_preview_arguments(preview)
    export = commands.add_parser(
        "export-bounces",
        help="write a campaign's bounced addresses (the recipients' own faults) as a "
        "suppression list",
    )
    review.add_export_arguments(export)
    bounces_parser = commands.add_parser(
        "bounces",
        help="read the bounce/unsubscribe mailbox over IMAP and update a campaign file",
    )
    bounces.add_arguments(bounces_parser)
    domains = commands.add_parser(
        "export-domains",
        help="write a campaign's per-domain summary (delivered, bounced, greylisted, "
        "median delivery delay, top bounce replies) as CSV",
    )
    review.add_export_arguments(domains, "the CSV file to write")
    preflight_parser = commands.add_parser(
        "preflight",
        help="check port 25, reverse DNS, HELO, blocklists, SPF, DKIM, DMARC, "
        "List-Unsubscribe, providers and STARTTLS before a real campaign",
    )
    preflight.add_arguments(preflight_parser)
    lab_parser = commands.add_parser(
        "lab",
        help="run the rehearsal lab (DNS and MX servers on loopback) until Ctrl-C",
    )
    lab_parser.add_argument(
        "--greylist-seconds", type=int, default=20, help="how long grey.test greylists"
    )
    probe = commands.add_parser(
        "probe",
        help="hold one SMTP conversation (EHLO, STARTTLS, QUIT) with a loopback server "
        "and print its transcript",
    )
    probe.add_argument("address", type=_loopback, help="the server's loopback IP address")
    probe.add_argument("port", type=int, help="the server's port")
    probe.add_argument("--helo", default="localhost.test", help="the name sent in EHLO")
    probe.add_argument(
        "--tls", choices=[p.value for p in TLSPolicy], default=TLSPolicy.MAY.value
    )
    # The window's own options (and --help) are parsed by gui.app: only `main` hands them on.
    commands.add_parser(
        "gui",
        help="open the window (see `mxmailer gui --help`)",
        add_help=False,
    )
    return parser


async def _probe(args: argparse.Namespace) -> int:
    config = ConnectionConfig(SessionConfig(args.helo, TLSPolicy(args.tls)))
    report = await deliver(Target(args.address, args.address, args.port), [], config)
    print("\n".join(report.transcript.lines()))
    if report.failure is not None:
        print(f"failed: {report.failure.kind.value} during {report.failure.phase.value}: "
              f"{report.failure.detail or report.failure.reply}", file=sys.stderr)
        return 1
    return 0


async def _lab(args: argparse.Namespace) -> int:
    # Imported here: the lab (and its certificate maker) costs a send nothing.
    from core.lab.world import sandbox_world

    async with sandbox_world(greylist_seconds=args.greylist_seconds) as world:
        print(f"lab DNS on {world.nameserver}; MX hosts listen on port {world.port}:")
        for host in world.hosts.values():
            state = "refuses connections" if host.server is None else "listening"
            print(f"  {host.name:<20} {host.address:<12} {state}")
        print(
            "\nsend to it with:\n  mxmailer send --recipients FILE.csv --message FILE.eml "
            f"--sender you@sender.test --nameserver {world.nameserver} --port {world.port} "
            "--state campaign.mxm\n\nCtrl-C stops the lab.",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "gui":
        # Imported here: core never imports Qt unless the window is asked for.
        from gui.app import main as gui_main

        return gui_main(rest, prog="mxmailer gui")
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "send":
        return send.run(args)
    if args.command == "preview":
        return review.run_preview(args)
    if args.command == "export-bounces":
        return review.run_export_bounces(args)
    if args.command == "bounces":
        return bounces.run(args)
    if args.command == "export-domains":
        return review.run_export_domains(args)
    if args.command == "preflight":
        return preflight.run(args)
    if args.command == "lab":
        return asyncio.run(_lab(args))
    if args.command == "probe":
        return asyncio.run(_probe(args))
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
