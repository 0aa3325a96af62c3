"""The ``mxmailer`` command line. Subcommands arrive with the engine (``send``) and the
window (``gui``); today it offers ``version`` and a one-off ``probe`` of an SMTP server on
loopback, useful to see the driver's transcript against a lab server."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from collections.abc import Sequence

from core import __version__
from core.connection import ConnectionConfig, Target, deliver
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "probe":
        return asyncio.run(_probe(args))
    build_parser().print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
