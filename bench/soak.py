"""The soak against a hostile lab (issue 6): ``mxmailer send`` to 100,000 recipients over
1,000 lab domains that misbehave on purpose, and the figures that say whether anyone was
lost, sent twice or left hanging.

The world (see ``core/lab/hostile_world.py``): a tenth of the domains greylist (half with
a retry hint, half without), a twentieth each have a tarpit as preferred MX with a healthy
one behind it, answer 421 at the greeting for their first connections, or reject unknown
users with 550; a fiftieth each publish a null MX or answer SERVFAIL for their first MX
queries; one domain's MX drips every reply byte by byte; and some recipients of the plain
domains are hung up on mid-DATA, before their body (to be retried) or after it (to be
reported as possibly delivered, and never resent). It runs in a child process; the send
runs in this one, through ``mxmailer``'s own entry point, with short timeouts and retry
delays, and is interrupted if it outlives ``--timeout``.

Printed at the end: recipients final and stuck, expected and reported ends, duplicates,
missing and stray copies in the lab's mailboxes, unanswered ends of data and whether any
was resent, SERVFAIL domains delivered after healing, peak RSS, open file descriptors
before and after, wall time. Exit 0 if every check holds, 1 if not.

Run it with ``.venv/bin/python bench/soak.py`` (``--recipients``, ``--domains``,
``--seed``, ``--timeout``). Only loopback addresses and ``.test`` names are used.
"""

from __future__ import annotations

import argparse
import faulthandler
import sys
import tempfile
from pathlib import Path

from core.lab.soak import GRACE, SoakOptions, describe, figures, run_soak

#: Seconds past the watchdog's second interrupt before the whole benchmark gives up
#: (the import before the send and the reading after it are in this too).
LAST_RESORT = 300.0


def main(argv: list[str] | None = None) -> int:
    defaults = SoakOptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=defaults.recipients)
    parser.add_argument("--domains", type=int, default=defaults.domains)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout,
        help="seconds the send may take before it is interrupted (default %(default)s)",
    )
    parser.add_argument("--keep", type=Path, help="a folder to keep the campaign files in")
    args = parser.parse_args(argv)
    options = SoakOptions(
        recipients=args.recipients, domains=args.domains, seed=args.seed, timeout=args.timeout
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return report(options, args.keep)
    with tempfile.TemporaryDirectory(prefix="mxmailer-soak-") as folder:
        return report(options, Path(folder))


def report(options: SoakOptions, folder: Path) -> int:
    print(f"soak: running in {folder} (the lab in a child process)", flush=True)
    # The last resort, should even the watchdog's second interrupt not end the send: every
    # thread's stack on stderr, then exit (the lab child stops when its stdin closes).
    faulthandler.dump_traceback_later(options.timeout + 2 * GRACE + LAST_RESORT, exit=True)
    try:
        run = run_soak(options, folder)
    finally:
        faulthandler.cancel_dump_traceback_later()
    result = figures(run)
    for line in describe(run, result):
        print(line)
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
