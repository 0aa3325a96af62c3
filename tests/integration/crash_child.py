"""``mxmailer`` with one crash point armed: run as a subprocess by the crash drills.

``python -m tests.integration.crash_child POINT -- ARGS...`` runs ``mxmailer ARGS`` (the
real ``core.cli.main``; ``ARGS`` starting with ``rehearse``: the window's engine,
``python -m gui.smoke ARGS[1:]``) after arming ``POINT``, a place in the code where the process
SIGKILLs itself. The kill is real (no exception, no ``finally``, no flush, no SQLite
rollback); only *where* it lands is chosen, which a kill from outside cannot do with
precision (inside a store transaction before its COMMIT, between the end-of-data mark's
journal write and the marker). Points that a lab condition can time (after N delivered messages,
an end-of-data reply held by the lab) are killed from the test process instead.

``POINT`` is ``WHAT:N`` (the Nth time WHAT happens in this process):

* ``txn-build``, ``txn-import``, ``txn-index``, ``txn-flush``, ``txn-recovery``: inside
  the Nth SQLite transaction of that kind, after its statements ran, just before COMMIT
  (seen through :meth:`sqlite3.Connection.set_trace_callback`).
* ``open``: the Nth ``CampaignStore.open`` (1: the open that follows a new import).
* ``marking``: as the Nth ``mark_end_of_data`` is called (nothing journaled yet).
* ``marked``: right after the Nth ``mark_end_of_data`` returned: the end-of-data journal
  holds the marks, the markers are not yet sent.
* ``recorded``: right after the Nth ``record`` (a result queued, not yet flushed).
* ``flushed``: right after the Nth flush that wrote something committed.
* ``tls``: when the Nth TLS handshake starts (STARTTLS answered 220).
* ``greylisted``: halfway through the wait of the Nth recipient greylisted.
* ``report``: while the CSV report is written (after its first row).
* ``close``: when the campaign file is closed at the end of the run.
* ``disk-full``, ``read-only``: no kill; after the Nth flush the store's own connection
  gets ``PRAGMA max_page_count`` at its current size (SQLite then answers SQLITE_FULL,
  as on a full disk) or ``PRAGMA query_only`` (SQLITE_READONLY, as on a disk remounted
  read-only), announced by a line ``STORE-BROKEN``. Every write the store refuses
  afterwards is announced on stdout as a line ``STORE-FAILED``, so the test sees when
  the failure was hit.
* ``announce``: no kill, no PRAGMA: only the ``STORE-FAILED`` lines (for a disk that the
  test itself fills).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core import store_schema
from core.engine import Engine, Job
from core.store import CampaignStore, ReportRow, StoreError

#: What a transaction is, from the statements it ran (the first match wins).
_TRANSACTION_KINDS = (
    ("txn-recovery", "'opened_at'"),
    ("txn-flush", "UPDATE recipients SET status"),
    ("txn-build", "CREATE TABLE"),
    ("txn-import", "INSERT INTO recipients"),
    ("txn-index", "CREATE INDEX"),
)
POINTS = frozenset(
    {kind for kind, _ in _TRANSACTION_KINDS}
    | {"open", "marking", "marked", "recorded", "flushed", "tls", "greylisted", "report"}
    | {"close"}
    | {"disk-full", "read-only", "announce"}
)


def die() -> None:
    """SIGKILL this process: nothing after this line runs, as in a real crash."""
    os.kill(os.getpid(), signal.SIGKILL)


class Countdown:
    """Fires on the Nth call."""

    def __init__(self, n: int) -> None:
        self.left = n

    def __call__(self) -> bool:
        self.left -= 1
        return self.left == 0


def _watch_transactions(kind: str, fire: Countdown) -> None:
    """Kill inside the Nth transaction of ``kind``, just before its COMMIT runs."""
    connect = store_schema.connect

    def watched(path: Path, *, read_only: bool) -> sqlite3.Connection:
        connection = connect(path, read_only=read_only)
        statements: list[str] = []

        def trace(statement: str) -> None:
            if statement.startswith("BEGIN"):
                statements.clear()
            elif statement == "COMMIT":
                seen = " ".join(statements)
                found = next((k for k, marker in _TRANSACTION_KINDS if marker in seen), "")
                if found == kind and fire():
                    die()
            elif len(statements) < 100:  # enough to tell the kind; an import runs 1000s
                statements.append(statement)

        connection.set_trace_callback(trace)
        return connection

    store_schema.connect = watched  # type: ignore[assignment]


def _after(name: str, fire: Countdown, *, only: Callable[[Any], bool] = bool) -> None:
    """Kill right after the Nth call of ``CampaignStore.name`` that ``only`` accepts
    (given its return value, or True for a method returning None)."""
    method = getattr(CampaignStore, name)

    def wrapped(self: CampaignStore, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        if only(True if result is None else result) and fire():
            die()
        return result

    setattr(CampaignStore, name, wrapped)


def _before(owner: Any, name: str, fire: Countdown) -> None:
    """Kill when the Nth call of ``owner.name`` begins."""
    method = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if fire():
            die()
        return method(*args, **kwargs)

    setattr(owner, name, wrapped)


def _greylisted(fire: Countdown) -> None:
    """Kill halfway through the wait of the Nth recipient the engine parks as greylisted
    (its deferral has been flushed by then: the engine flushes every 0.2 s). Watched at
    the engine's decision, not on the event bus: the CLI without a progress view has no
    subscriber, so no per-recipient event is ever made."""
    defer = Engine._defer

    def watched(self: Engine, job: Job, until: float, reason: str, **options: Any) -> None:
        defer(self, job, until, reason, **options)
        if reason == "greylisted" and fire():
            wait = max(0.0, until - time.time())  # the engine's clock
            asyncio.get_running_loop().call_later(wait / 2, die)

    Engine._defer = watched  # type: ignore[method-assign]


def _report(fire: Countdown) -> None:
    """Kill while the report is written: after its first row reached the ``.part`` file's
    writer (the file is never renamed)."""
    rows = CampaignStore.report_rows

    def watched(self: CampaignStore) -> Iterator[ReportRow]:
        for number, row in enumerate(rows(self)):
            if number == 1 and fire():
                die()
            yield row

    CampaignStore.report_rows = watched  # type: ignore[method-assign]


def _fail_writes(pragma: str, fire: Countdown) -> None:
    """After the Nth flush, make the store's connection fail its writes as a full or
    read-only disk would; announce each refused write on stdout."""
    connect = store_schema.connect
    connections: list[sqlite3.Connection] = []

    def kept(path: Path, *, read_only: bool) -> sqlite3.Connection:
        connection = connect(path, read_only=read_only)
        connections.append(connection)
        return connection

    store_schema.connect = kept  # type: ignore[assignment]
    flush = CampaignStore.flush

    def flushed(self: CampaignStore) -> Any:
        result = announced(flush)(self)
        if result and fire():
            connection = connections[-1]
            if pragma == "disk-full":
                (pages,) = connection.execute("PRAGMA page_count").fetchone()
                connection.execute(f"PRAGMA max_page_count = {pages}")
            else:
                connection.execute("PRAGMA query_only = ON")
            print("STORE-BROKEN", flush=True)  # the file refuses writes from here on
        return result

    CampaignStore.flush = flushed  # type: ignore[method-assign]
    CampaignStore.mark_end_of_data = announced(  # type: ignore[method-assign]
        CampaignStore.mark_end_of_data
    )


def announced(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method``, printing ``STORE-FAILED`` on stdout (flushed) when the store refuses."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except StoreError:
            print("STORE-FAILED", flush=True)
            raise

    return wrapped


def arm(point: str) -> None:
    """Arm ``WHAT:N`` (see the module's docstring)."""
    what, _, count = point.partition(":")
    if what not in POINTS or not count.isdigit() or int(count) < 1:
        raise SystemExit(f"crash_child: unknown crash point {point!r}")
    fire = Countdown(int(count))
    if what.startswith("txn-"):
        _watch_transactions(what, fire)
    elif what == "open":
        _before(CampaignStore, "open", fire)
    elif what == "marking":
        _before(CampaignStore, "mark_end_of_data", fire)
    elif what == "marked":
        _after("mark_end_of_data", fire)
    elif what == "recorded":
        _after("record", fire)
    elif what == "flushed":
        _after("flush", fire, only=bool)  # an empty flush writes nothing
    elif what == "tls":
        _before(asyncio.base_events.BaseEventLoop, "start_tls", fire)
    elif what == "greylisted":
        _greylisted(fire)
    elif what == "report":
        _report(fire)
    elif what == "close":
        _before(CampaignStore, "close", fire)
    elif what == "announce":
        CampaignStore.flush = announced(CampaignStore.flush)  # type: ignore[method-assign]
        CampaignStore.mark_end_of_data = announced(  # type: ignore[method-assign]
            CampaignStore.mark_end_of_data
        )
    else:
        _fail_writes(what, fire)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        raise SystemExit("usage: python -m tests.integration.crash_child POINT -- ARGS...")
    arm(argv[0])
    if argv[2:3] == ["rehearse"]:
        from gui.smoke import main as rehearse

        return rehearse(argv[3:])
    from core.cli import main as mxmailer

    return mxmailer(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
