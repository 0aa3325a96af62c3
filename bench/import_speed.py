"""Figures for the recipients importer (``core.recipients``) at the size it is made for.

Writes a CSV of ``--rows`` recipients (default 1,000,000: about 1,000 lab ``.test``
domains, name and city columns, a few non-ASCII names) in a temporary folder, imports it
by iterating ``read_recipients`` as the store would, and prints rows/s, wall time, the
peak resident memory of the process (``resource.getrusage``) and the import summary.
Also times email-validator alone on a sample, to show what the fast path saves.

    .venv/bin/python bench/import_speed.py [--rows N] [--dir PATH]

Not a test: nothing here fails; the budget is 10 s for 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from email_validator import validate_email

from core.recipients import ImportSummary, read_recipients
from core.store import CampaignStore

FIRST = ("Ada", "Grace", "Édouard", "Zoë", "Søren", "Ana", "Jürgen", "Renée", "Li", "Omar")
LAST = ("Lovelace", "Hopper", "Lucas", "Nguyễn", "Kierkegaard", "Núñez", "Groß", "Dupré")
CITY = ("London", "Arlington", "Paris", "Hà Nội", "København", "Sevilla", "Köln", "Lyon")


MESSAGE = b"From: Bench <bench@sender.test>\r\nSubject: Hello {{first_name}}\r\n\r\nHi\r\n"


def write_csv(path: Path, rows: int, domains: int = 1000) -> int:
    """The benchmark's file, written in blocks; returns its size in bytes."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("email,first_name,last_name,city\r\n")
        block: list[str] = []
        for n in range(rows):
            block.append(
                f"user{n}@d{n % domains}.example.test,{FIRST[n % 10]},{LAST[n % 8]},"
                f"{CITY[n % 7]}\r\n"
            )
            if len(block) == 10_000:
                handle.write("".join(block))
                block.clear()
        handle.write("".join(block))
    return path.stat().st_size


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the CSV")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, rows {args.rows:,}")

    sample = [f"user{n}@d{n % 1000}.example.test" for n in range(20_000)]
    started = time.perf_counter()
    for address in sample:
        validate_email(address, check_deliverability=False, test_environment=True)
    per_call = (time.perf_counter() - started) / len(sample) * 1e6
    print(
        f"email-validator alone: {per_call:.1f} µs per address "
        f"({per_call * args.rows / 1e6:.1f} s for {args.rows:,})"
    )

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "recipients.csv"
        started = time.perf_counter()
        size = write_csv(path, args.rows)
        print(f"wrote {size / 2**20:.1f} MiB in {time.perf_counter() - started:.1f} s")
        before = peak_rss_mib()
        summary = ImportSummary()
        started = time.perf_counter()
        count = 0
        for _ in read_recipients(path, summary):
            count += 1
        wall = time.perf_counter() - started
        print(
            f"read {count:,} rows in {wall:.2f} s: {count / wall:,.0f} rows/s; "
            f"peak RSS {peak_rss_mib():.0f} MiB (before the import {before:.0f} MiB)"
        )
        print(summary.describe())
        # What a user waits for: the same rows written into a new campaign file.
        started = time.perf_counter()
        with CampaignStore.create(
            Path(folder) / "campaign.mxm", sender="bench@sender.test", message=MESSAGE, settings={}
        ) as store:
            stored = store.add_recipients(read_recipients(path, ImportSummary()))
        wall = time.perf_counter() - started
        print(
            f"imported {stored:,} rows into a campaign file in {wall:.2f} s: "
            f"{stored / wall:,.0f} rows/s; peak RSS {peak_rss_mib():.0f} MiB"
        )


if __name__ == "__main__":
    main()
