"""``mxmailer-gui --smoke``: the whole app, proven end to end in a few seconds.

Opens the window on a new sandbox campaign, sends it to the lab, waits (bounded) for
the run to end, checks that every recipient ended as the sample says it must, closes
the window and returns an exit code. CI runs it offscreen; so does ``make run`` when
there is no screen to show the window on.

``python -m gui.smoke CAMPAIGN --nameserver HOST:PORT --port PORT`` is the same proof for
a campaign file made elsewhere (``mxmailer send --state``; the crash drills of
tests/integration/test_crash_drills.py kill it mid-send and resume the file): the window,
its session and its engine on the qasync loop, headless, send that file to a lab already
running on loopback (``mxmailer lab``, or a test's), then close; exit 0 when the run ended
without a failure. A rehearsal can only reach the lab: the nameserver must be a loopback
address and every recipient domain must end in ``.test`` (RFC 2606: never a real
domain), so the window's confirmation before real delivery is not asked.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from core.dns import parse_nameserver
from core.engine import EngineConfig
from core.relay import parse_relays
from gui.main_window import MainWindow, WindowOptions
from gui.sandbox import (
    BANNER,
    LAB_TIMEOUTS,
    expected_outcome,
    lab_retry_policy,
)
from gui.session import ConfigFactory
from gui.settings_model import AppSettings, Delivery, real_engine_config
from gui.state import BUSY

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: The greylisting retry a rehearsal waits when the lab gives no hint.
REHEARSAL_GREYLIST_SECONDS = 1


async def run_smoke(window: MainWindow, *, timeout: float) -> int:
    """Send the sandbox campaign in ``window``; 0 when it ended as expected."""
    started = time.monotonic()
    window.open_sandbox()
    session = window.session
    if session is None:
        return _fail(window, "the sandbox campaign could not be opened")
    window.start()
    try:
        await asyncio.wait_for(session.wait_ended(), timeout)
    except TimeoutError:
        session.abort()
        await session.wait_ended()
        return _fail(window, f"the sandbox run did not end within {timeout:.0f} s")
    problems = check_results(window)
    took = time.monotonic() - started
    rows = window.model.book.rows
    tally = Counter(row.status.value for row in rows)
    print(
        f"smoke: {len(rows)} recipients: "
        + ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))
        + f" in {took:.1f} s",
        file=sys.stderr,
    )
    if problems:
        return _fail(window, "; ".join(problems))
    print("smoke: the sandbox campaign ended as expected", file=sys.stderr)
    return EXIT_OK


def check_results(window: MainWindow) -> list[str]:
    """What is wrong with the finished sandbox run, as the window shows it."""
    problems = []
    if window.sandbox_banner.isHidden() or window.sandbox_banner.text != BANNER:
        problems.append("the sandbox banner is not shown")
    for row in window.model.book.rows:
        expected = expected_outcome(row.email)
        if row.status.value != expected:
            problems.append(f"{row.email} is {row.status.value}, not {expected} ({row.text})")
    greylisted = [row for row in window.model.book.rows if row.domain == "grey.test"]
    if not greylisted or any(row.attempts < 2 for row in greylisted):
        problems.append("grey.test recipients were not greylisted and then delivered")
    problems.extend(f"internal error: {error}" for error in window.reporter.errors)
    return problems


def _fail(window: MainWindow, why: str) -> int:
    print(f"smoke: FAILED: {why}", file=sys.stderr)
    for line in window.log.lines:
        print(f"  log: {line}", file=sys.stderr)
    return EXIT_FAILED


# ---- a rehearsal: an existing campaign file, sent to a lab on loopback ------------------


def rehearsal_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gui.smoke",
        description="Send an existing campaign file (.test recipients only) through the "
        "window's engine, headless, to a lab running on loopback; exit 0 when the run "
        "ended without a failure.",
    )
    parser.add_argument("campaign", type=Path, help="the campaign file (.mxm) to send")
    parser.add_argument(
        "--nameserver", required=True, metavar="HOST:PORT", help="the lab's DNS (loopback)"
    )
    parser.add_argument("--port", type=int, required=True, help="the lab's MX port")
    parser.add_argument("--concurrency", type=int, default=3, help="connections in all")
    parser.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS", help="give up after"
    )
    return parser


def lab_config(nameserver: tuple[str, int], port: int) -> ConfigFactory:
    """The settings' engine configuration, pointed at the lab and timed for it. Relays
    (a campaign's stored route wins over the settings) are refused unless they are
    loopback addresses: a name would be resolved by the system, not the lab, and a real
    relay would take the mail (with the keyring's password) to the internet."""

    def make(settings: AppSettings) -> EngineConfig:
        outside = non_loopback_relays(settings.relay_list)
        if outside:
            raise RuntimeError(
                f"a rehearsal reaches only the lab, and this campaign goes through the relay"
                f" {', '.join(outside)}: give it a loopback relay or send it direct first"
            )
        return dataclasses.replace(
            real_engine_config(settings),
            port=port,
            nameservers=(nameserver,),
            timeouts=LAB_TIMEOUTS,
            retry=lab_retry_policy(REHEARSAL_GREYLIST_SECONDS),
            dns_timeout=2.0,
        )

    return make


def non_loopback_relays(relays: Sequence[str]) -> list[str]:
    """The relays (``HOST[:PORT]``) that are not a loopback address."""
    outside = []
    for relay in parse_relays(relays, implicit_tls=False):
        try:
            loopback = ipaddress.ip_address(relay.host).is_loopback
        except ValueError:  # a name
            loopback = False
        if not loopback:
            outside.append(relay.name)
    return outside


async def run_rehearsal(window: MainWindow, path: Path, *, concurrency: int, timeout: float) -> int:
    """Open ``path`` in ``window``, send it with real-delivery settings (the engine
    configuration only reaches the lab), wait (bounded) for the run to end."""
    started = time.monotonic()
    if not window.open_file(path):
        return _fail(window, f"{path} could not be opened")
    session = window.session
    assert session is not None
    real = sorted({s.domain for s in session.store.states() if not s.domain.endswith(".test")})
    if real:
        return _fail(window, f"a rehearsal sends to .test domains only, not {', '.join(real[:3])}")
    failures: list[str] = []
    session.run_ended.connect(failures.append)
    settings = dataclasses.replace(
        window.settings,
        sender=session.store.sender,
        delivery=Delivery.REAL,
        real_acknowledged=True,
        concurrency=concurrency,
        per_destination=min(concurrency, 5),
    )
    window.apply_settings(settings)
    window.start()
    if session.run_state not in BUSY:
        why = session.send_blocked() or "nothing to send"
        return _fail(window, f"the run did not start: {why}")
    print(f"rehearsal: sending {session.unfinished} recipient(s) of {path}", file=sys.stderr)
    try:
        await asyncio.wait_for(session.wait_ended(), timeout)
    except TimeoutError:
        session.abort()
        await session.wait_ended()
        return _fail(window, f"the run did not end within {timeout:.0f} s")
    tally = ", ".join(f"{n} {status.value}" for status, n in session.counts.items() if n)
    print(f"rehearsal: {tally} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    problems = [failure for failure in failures if failure]
    problems.extend(f"internal error: {error}" for error in window.reporter.errors)
    return _fail(window, "; ".join(problems)) if problems else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gui.smoke CAMPAIGN --nameserver HOST:PORT --port PORT``."""
    args = rehearsal_parser().parse_args(argv)
    prog = "python -m gui.smoke"
    try:
        nameserver = parse_nameserver(args.nameserver)
    except ValueError as error:
        print(f"{prog}: --nameserver: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not ipaddress.ip_address(nameserver[0]).is_loopback:
        print(f"{prog}: --nameserver must be a loopback address (a lab)", file=sys.stderr)
        return EXIT_USAGE
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    # Imported here: gui.app imports this module.
    from PySide6.QtWidgets import QApplication

    from gui.loop import ErrorReporter, binding_problem, make_loop

    problem = binding_problem()
    if problem is not None:
        print(f"{prog}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    app = QApplication.instance() or QApplication([prog])
    reporter = ErrorReporter()
    with tempfile.TemporaryDirectory(prefix="mxmailer-rehearsal-") as folder:
        assert isinstance(app, QApplication)
        loop = make_loop(app, reporter)
        options = WindowOptions(Path(folder), config_factory=lab_config(nameserver, args.port))
        # A rehearsal reaches only the lab: no count question, and no pre-flight checks
        # (they would look at the real internet's DNS and port 25).
        window = MainWindow(
            options,
            reporter,
            confirm=lambda _title, _text: True,
            preflight=lambda _session, go: go(),
        )
        with loop:
            code: int = loop.run_until_complete(_rehearse(window, args))
        asyncio.set_event_loop(None)
    return code


async def _rehearse(window: MainWindow, args: argparse.Namespace) -> int:
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_closed() -> None:
        if not closed.done():
            closed.set_result(None)

    window.closed.connect(on_closed)
    window.show()
    code = await run_rehearsal(
        window, args.campaign, concurrency=args.concurrency, timeout=args.timeout
    )
    window.shut_down()
    await asyncio.wait_for(closed, args.timeout)
    return code


if __name__ == "__main__":
    sys.exit(main())
