"""Figures for the campaign store (``core.store``) at the sizes it is made for.

Prints, for a campaign of ``--rows`` recipients (default 1,000,000) in a temporary folder:
import time, counts(), pending() streaming (time and memory), flush() of 1,000 updates,
mark_end_of_data() of one id (the latency that gates every end-of-data marker), open()
with recovery, the CSV export, and file sizes for 100,000 recipients.

    .venv/bin/python bench/store_bench.py [--rows N] [--dir PATH] [--page-size BYTES]

Not a test: nothing here fails; docs/STORE.md quotes a run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import store_schema
from core.store import (
    AttemptLog,
    CampaignStore,
    NewRecipient,
    RecipientUpdate,
    Status,
)

T = TypeVar("T")

MESSAGE = b"From: <news@sender.test>\r\nSubject: Hello {first}\r\n\r\nHello {first}.\r\n"
REPLY = "2.0.0 Ok: queued as 4XyZ1234abcd"
#: A plausible successful conversation, as the engine might log it (no body).
TRANSCRIPT = (
    "S: 220 mx.example.test ESMTP\r\nC: EHLO client.test\r\nS: 250-mx.example.test\r\n"
    "S: 250-PIPELINING\r\nS: 250-SIZE 52428800\r\nS: 250-STARTTLS\r\nS: 250 8BITMIME\r\n"
    "C: STARTTLS\r\nS: 220 2.0.0 Ready to start TLS\r\nC: EHLO client.test\r\n"
    "S: 250 mx.example.test\r\nC: MAIL FROM:<news@sender.test> SIZE=2179\r\n"
    "C: RCPT TO:<someone@example.test>\r\nC: DATA\r\nS: 250 2.1.0 Ok\r\nS: 250 2.1.5 Ok\r\n"
    "S: 354 End data with <CR><LF>.<CR><LF>\r\nC: [2179 bytes]\r\nS: 250 " + REPLY + "\r\n"
)


def rss_mib() -> float:
    """Resident memory now (Linux), in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def recipients(count: int) -> Iterator[NewRecipient]:
    """Made one at a time, as a CSV reader would hand them over."""
    for n in range(count):
        domain = f"domain{n % 5000}.test"
        fields = {"first": f"Name{n}", "last": "Smith", "city": "Paris"}
        yield NewRecipient(f"user{n}@{domain}", domain, fields)


def delivered(recipient_id: int, now: float, transcript: str) -> RecipientUpdate:
    attempt = AttemptLog(
        now - 0.2, now, "mx.example.test [192.0.2.1]", "192.0.2.1", "accepted", 250, "2.0.0",
        REPLY, "data", transcript,
    )  # fmt: skip
    return RecipientUpdate(
        recipient_id,
        Status.DELIVERED,
        attempts=1,
        first_attempt_at=now,
        last_attempt_at=now,
        code=250,
        enhanced="2.0.0",
        text=REPLY,
        mx="mx.example.test [192.0.2.1]",
        message_id=f"<{recipient_id}.{now}@sender.test>",
        date_header="Wed, 25 Nov 2026 08:39:00 +0000",
        attempt=attempt,
    )


def timed(action: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def new_store(folder: Path, name: str) -> CampaignStore:
    return CampaignStore.create(folder / name, sender="news@sender.test", message=MESSAGE,
                                settings={"lifetime": 432000})  # fmt: skip


def bench_big(folder: Path, rows: int) -> None:
    store = new_store(folder, "big.mxm")
    making, _ = timed(lambda: sum(1 for _ in recipients(rows)))
    before = rss_mib()
    seconds, added = timed(lambda: store.add_recipients(recipients(rows)))
    print(f"add_recipients: {added:,} rows in {seconds:.2f} s ({added / seconds:,.0f} rows/s),"
          f" of which {making:.2f} s making the NewRecipient rows;"
          f" memory +{rss_mib() - before:.0f} MiB")  # fmt: skip

    seconds, _ = timed(store.counts)
    print(f"counts(): {seconds * 1000:.0f} ms")

    before = rss_mib()
    seconds, streamed = timed(lambda: sum(1 for _ in store.pending()))
    print(f"pending(): {streamed:,} rows in {seconds:.2f} s ({streamed / seconds:,.0f} rows/s),"
          f" memory +{rss_mib() - before:.0f} MiB")  # fmt: skip

    batch = min(1000, rows)  # --rows under 50,000: fewer rounds, never an id not stored
    bench_engine_loop(store, rounds=min(50, rows // batch), batch=batch)
    store.close()
    size = (folder / "big.mxm").stat().st_size
    print(f"file: {size / 2**20:.0f} MiB for {rows:,} recipients after that")

    seconds, (store, report) = timed(lambda: CampaignStore.open(folder / "big.mxm"))
    print(f"open() with recovery: {seconds * 1000:.0f} ms ({report})")
    seconds, written = timed(lambda: store.export_report(folder / "report.csv"))
    print(
        f"export_report(): {written:,} rows in {seconds:.2f} s,"
        f" {(folder / 'report.csv').stat().st_size / 2**20:.0f} MiB"
    )
    store.close()


def bench_engine_loop(store: CampaignStore, rounds: int = 50, batch: int = 1000) -> None:
    """What the engine does: mark each end of data, record each result, flush each batch."""
    marks: list[float] = []
    flushes: list[float] = []
    with_checkpoint: list[float] = []
    now = time.time()
    for round_number in range(rounds):
        first = 1 + round_number * batch
        for recipient_id in range(first, first + batch):
            start = time.perf_counter()
            store.mark_end_of_data([(recipient_id, 1)], now)
            marks.append(time.perf_counter() - start)
            store.record(delivered(recipient_id, now, TRANSCRIPT))
        checkpoint = store._wal_size() >= store_schema.CHECKPOINT_BYTES  # flush() will
        start = time.perf_counter()
        store.flush()
        (with_checkpoint if checkpoint else flushes).append(time.perf_counter() - start)
    median, p99, worst = (statistics.median(marks), percentile(marks, 0.99), max(marks))
    print(f"mark_end_of_data(1 id), {len(marks):,} calls: median {median * 1e6:.0f} µs,"
          f" p99 {p99 * 1e6:.0f} µs, max {worst * 1e6:.0f} µs")  # fmt: skip
    for label, samples in (("alone", flushes), ("with a checkpoint first", with_checkpoint)):
        if samples:
            print(f"flush() of {batch:,} updates with attempt logs, {label}, {len(samples)} calls:"
                  f" median {statistics.median(samples) * 1000:.1f} ms,"
                  f" max {max(samples) * 1000:.1f} ms")  # fmt: skip


def bench_sizes(folder: Path, rows: int = 100_000) -> None:
    for label, transcript in (("no transcript", ""), (f"{len(TRANSCRIPT)}-byte transcript",
                                                      TRANSCRIPT)):  # fmt: skip
        name = f"size-{len(transcript)}.mxm"
        store = new_store(folder, name)
        store.add_recipients(recipients(rows))
        store.close()  # checkpoints and removes the log: the file is all there is
        fresh = (folder / name).stat().st_size
        store, _ = CampaignStore.open(folder / name)
        now = time.time()
        for recipient_id in range(1, rows + 1):
            store.record(delivered(recipient_id, now, transcript))
            if store.queued_updates >= 1000:
                store.flush()
        store.close()
        done = (folder / name).stat().st_size
        print(f"file for {rows:,} recipients: {fresh / 2**20:.1f} MiB imported;"
              f" {done / 2**20:.1f} MiB all delivered, one attempt each, {label}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go")
    parser.add_argument("--page-size", type=int, default=store_schema.PAGE_SIZE)
    options = parser.parse_args()
    store_schema.PAGE_SIZE = options.page_size
    print(f"{platform.python_implementation()} {platform.python_version()},"
          f" SQLite {__import__('sqlite3').sqlite_version}, {os.cpu_count()} CPUs,"
          f" page size {options.page_size}")  # fmt: skip
    with tempfile.TemporaryDirectory(dir=options.dir) as name:
        folder = Path(name)
        print(f"files in {folder} ({os.statvfs(folder).f_bsize}-byte blocks)")
        bench_big(folder, options.rows)
        bench_sizes(folder)


if __name__ == "__main__":
    main()
