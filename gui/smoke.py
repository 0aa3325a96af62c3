"""``mxmailer-gui --smoke``: the whole app, proven end to end in a few seconds.

Opens the window on a new sandbox campaign, sends it to the lab, waits (bounded) for
the run to end, checks that every recipient ended as the sample says it must, closes
the window and returns an exit code. CI runs it offscreen; so does ``make run`` when
there is no screen to show the window on.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

from gui.main_window import MainWindow
from gui.sandbox import BANNER, expected_outcome

EXIT_OK, EXIT_FAILED = 0, 1


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
