"""The ``mxmailer`` command line: ``send`` a campaign, run the ``lab`` standalone,
``probe`` one SMTP server on loopback to read the driver's transcript, or open the
window (``gui``, imported only then: core never imports Qt).

Start-up is paid by every run (and counted in a campaign's messages/s), so this module
imports nothing heavy: each command's module is imported, and its options added, only
when that command is the one chosen (:data:`COMMANDS`). ``mxmailer --version`` and
``mxmailer --help`` import no command at all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from core import __version__

#: A command's runner: the parsed options in, the exit code out.
Runner = Callable[[argparse.Namespace], int]


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: what ``--help`` says of it, and ``setup``, which imports the
    command's module, adds its options to its parser and returns its runner (None for
    ``gui``, whose options gui.app parses itself)."""

    help: str
    setup: Callable[[argparse.ArgumentParser], Runner | None]
    description: str | None = None
    add_help: bool = True


def _send(parser: argparse.ArgumentParser) -> Runner:
    from core import send

    send.add_arguments(parser)
    return send.run


def _preview(parser: argparse.ArgumentParser) -> Runner:
    from core import review

    review.add_preview_arguments(parser)
    return review.run_preview


def _export_bounces(parser: argparse.ArgumentParser) -> Runner:
    from core import review

    review.add_export_arguments(parser)
    return review.run_export_bounces


def _export_domains(parser: argparse.ArgumentParser) -> Runner:
    from core import review

    review.add_export_arguments(parser, "the CSV file to write")
    return review.run_export_domains


def _bounces(parser: argparse.ArgumentParser) -> Runner:
    from core.bounces import command

    command.add_arguments(parser)
    return command.run


def _preflight(parser: argparse.ArgumentParser) -> Runner:
    from core.preflight import command

    command.add_arguments(parser)
    return command.run


def _lab(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument(
        "--greylist-seconds", type=int, default=20, help="how long grey.test greylists"
    )
    return _run_lab


def _probe(parser: argparse.ArgumentParser) -> Runner:
    from core.smtp import TLSPolicy

    parser.add_argument("address", type=_loopback, help="the server's loopback IP address")
    parser.add_argument("port", type=int, help="the server's port")
    parser.add_argument("--helo", default="localhost.test", help="the name sent in EHLO")
    parser.add_argument(
        "--tls", choices=[p.value for p in TLSPolicy], default=TLSPolicy.MAY.value
    )
    return _run_probe


def _gui(parser: argparse.ArgumentParser) -> None:
    """The window's own options (and --help) are parsed by gui.app: only `main` hands
    them on."""


#: Every command, in ``--help`` order.
COMMANDS: dict[str, Command] = {
    "send": Command(
        "send a campaign to each recipient domain's MX servers, or through a relay",
        _send,
        description="Send a campaign. Resume it by running the same command again with "
        "the same --state file.",
    ),
    "preview": Command(
        "print the exact message one recipient of a campaign file receives", _preview
    ),
    "export-bounces": Command(
        "write a campaign's bounced addresses (the recipients' own faults) as a "
        "suppression list",
        _export_bounces,
    ),
    "bounces": Command(
        "read the bounce/unsubscribe mailbox over IMAP and update a campaign file", _bounces
    ),
    "export-domains": Command(
        "write a campaign's per-domain summary (delivered, bounced, greylisted, "
        "median delivery delay, top bounce replies) as CSV",
        _export_domains,
    ),
    "preflight": Command(
        "check port 25, reverse DNS, HELO, blocklists, SPF, DKIM, DMARC, "
        "List-Unsubscribe, providers and STARTTLS before a real campaign",
        _preflight,
    ),
    "lab": Command("run the rehearsal lab (DNS and MX servers on loopback) until Ctrl-C", _lab),
    "probe": Command(
        "hold one SMTP conversation (EHLO, STARTTLS, QUIT) with a loopback server "
        "and print its transcript",
        _probe,
    ),
    "gui": Command("open the window (see `mxmailer gui --help`)", _gui, add_help=False),
}


def _loopback(value: str) -> str:
    """Only loopback addresses may be probed: this command never reaches the internet."""
    import ipaddress

    try:
        address = ipaddress.ip_address(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address") from error
    if not address.is_loopback:
        raise argparse.ArgumentTypeError(f"{value} is not a loopback address")
    return value


def build_parser(chosen: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, with the options (and runner, as ``args.run``) of
    those in ``chosen`` only (default: all of them, importing every command's module).
    The others are listed with their help, and importing nothing."""
    parser = argparse.ArgumentParser(
        prog="mxmailer",
        description="Bulk mail delivered to each recipient domain's MX servers (or a relay).",
    )
    parser.add_argument("--version", action="version", version=f"mxmailer {__version__}")
    parser.set_defaults(run=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(
            name, help=command.help, description=command.description, add_help=command.add_help
        )
        if chosen is None or name in chosen:
            sub.set_defaults(run=command.setup(sub))
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command named in ``argv``: its first word that is not an option (the
    top-level options, --help and --version, take no value), None if there is none."""
    return next((word for word in argv if not word.startswith("-")), None)


async def _probe_server(args: argparse.Namespace) -> int:
    from core.connection import ConnectionConfig, Target, deliver
    from core.smtp import SessionConfig, TLSPolicy

    config = ConnectionConfig(SessionConfig(args.helo, TLSPolicy(args.tls)))
    report = await deliver(Target(args.address, args.address, args.port), [], config)
    print("\n".join(report.transcript.lines()))
    if report.failure is not None:
        print(f"failed: {report.failure.kind.value} during {report.failure.phase.value}: "
              f"{report.failure.detail or report.failure.reply}", file=sys.stderr)
        return 1
    return 0


def _run_probe(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_probe_server(args))


async def _serve_lab(args: argparse.Namespace) -> int:
    import asyncio
    import signal

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


def _run_lab(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_serve_lab(args))


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    command = chosen_command(words)
    parser = build_parser(() if command is None else (command,))
    args, rest = parser.parse_known_args(words)
    if args.command == "gui":
        # Imported here: core never imports Qt unless the window is asked for.
        from gui.app import main as gui_main

        return gui_main(rest, prog="mxmailer gui")
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.run is None:
        parser.print_help()
        return 0
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
