"""Crash drills (issue 6): ``mxmailer send`` and the app's engine killed with SIGKILL at
many points of a run, resumed each time, and at the end every recipient is in the lab's
mailboxes exactly once or reported as possibly delivered (AMBIGUOUS); the campaign file
passes ``PRAGMA integrity_check`` after every kill. A full disk and a read-only file stop
the sending with a clear error instead of sending without recording.

The lab runs in this (the test) process, so it survives every kill and counts what it
received: accepted messages and those received whole whose end of data it never answered.
Kill points that need precision (inside a store transaction, between the end-of-data
mark's journal write and the marker) are armed in the child (``crash_child``); those a lab
condition can time (after N delivered, an end-of-data reply held back, DNS unanswered)
are killed from here. N values come from a seeded RNG: ``CRASH_SEED=... pytest ...``
replays a run; the seed is printed.

``.venv/bin/pytest tests/integration/test_crash_drills.py -s`` prints every drill's
figures and, at the end, the totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.engine import FLUSH_BATCH, FLUSH_INTERVAL
from core.eod_journal import identity, journal_path, read_marks
from core.lab import Act, Behaviour, Greylist, Hostile, Stage, TLSMode
from core.lab.records import ReceivedMessage, Recorder
from core.lab.world import LabWorld
from core.store import IMPORT_BATCH, CampaignStore, NewRecipient
from tests.integration.support import slow_world
from tests.integration.test_cli_send import (
    ROOT,
    SENDER,
    lab_args,
    mxmailer,
    read_report,
    send_args,
    spawn_mxmailer,
    write_csv,
    write_message,
)

SEED = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1 << 31))
#: Bound on any one run of the CLI or the app in a drill (the lab answers in ms).
RUN_TIMEOUT = 40.0
#: Connections in all for the drills: what may be in flight when a kill lands.
CONCURRENCY = 3
#: How long before a kill the lab may have received a message whose row the kill left in
#: doubt: the engine saves results every FLUSH_INTERVAL; add the slow lab's dripped reply
#: (about 0.1 s) and scheduling on a loaded 2-core machine. A row in doubt for longer would
#: be a result the engine sat on.
DOUBT_WINDOW = FLUSH_INTERVAL + 1.8


@dataclass
class Tally:
    """Figures over every drill of this module, printed at its end."""

    kill_points: list[str] = field(default_factory=list)
    recipients: int = 0
    duplicates: int = 0
    lost: int = 0
    ambiguous: int = 0
    ambiguous_received: int = 0  # of those, how many the lab did receive
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        return (
            f"crash drills (seed {SEED}): {len(self.kill_points)} kills at "
            f"{len(points(self.kill_points))} distinct points, {self.recipients} recipients: "
            f"{self.duplicates} duplicates, {self.lost} lost, {self.ambiguous} ambiguous "
            f"({self.ambiguous_received} of them received by the lab), "
            f"{time.monotonic() - self.started:.1f} s"
        )


TALLY = Tally()


def points(kills: list[str]) -> set[str]:
    """The distinct places in the code or the conversation: ``marking:1`` and
    ``marking:7`` are one place at two moments of a run."""
    return {kill.partition(":")[0] for kill in kills}


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """The totals, written to the terminal when the module's drills are done."""
    TALLY.started = time.monotonic()
    yield TALLY
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and TALLY.kill_points:
        reporter.write_line("")
        reporter.write_line(TALLY.line())


@pytest.fixture(autouse=True)
def arrivals(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """When the lab received each address's (last) message, on this process's clock."""
    seen: dict[str, float] = {}
    for name in ("message", "message_unanswered"):
        original = getattr(Recorder, name)

        def stamped(
            self: Recorder,
            message: ReceivedMessage,
            original: Callable[[Recorder, ReceivedMessage], None] = original,
        ) -> None:
            for rcpt in message.recipients:
                seen[rcpt.lower()] = time.monotonic()
            original(self, message)

        monkeypatch.setattr(Recorder, name, stamped)
    return seen


def received(world: LabWorld) -> Counter[str]:
    """Each address, as many times as the lab received a message for it: accepted, or
    received whole and never answered (the recipient may have it all the same)."""
    unanswered = [rcpt.lower() for message in world.unanswered() for rcpt in message.recipients]
    return Counter(world.delivered_to() + unanswered)


def check_file(state: Path) -> set[str]:
    """``PRAGMA integrity_check`` of the campaign file (or of what a killed import left);
    the recipients in doubt: end of data marked, no result saved (the next open turns
    them AMBIGUOUS)."""
    if not state.exists():
        partial = state.with_name(state.name + ".importing")
        if partial.exists():
            with closing(sqlite3.connect(partial)) as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return set()
    with closing(sqlite3.connect(state)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = db.execute(
            "SELECT lower(email) FROM recipients"
            " WHERE eod_at IS NOT NULL AND status IN ('queued', 'deferred')"
        ).fetchall()
        # Marks still in the end-of-data journal that no saved result settles.
        (created,) = db.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
        journaled = [
            db.execute(
                "SELECT lower(email) FROM recipients WHERE id = ? AND attempts < ?"
                " AND status IN ('queued', 'deferred')",
                (mark.id, mark.attempt),
            ).fetchone()
            for mark in read_marks(journal_path(state), identity(created))
        ]
    return {email for (email,) in rows} | {row[0] for row in journaled if row is not None}


async def spawn_armed(point: str, *args: str | Path) -> asyncio.subprocess.Process:
    """``mxmailer ARGS`` that SIGKILLs itself at ``point`` (see ``crash_child``)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.crash_child", point, "--", *map(str, args),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def app_args(state: Path, world: LabWorld) -> list[str]:
    """``gui.smoke``'s rehearsal: the window, offscreen, sending ``state`` to ``world``."""
    return [
        str(state), "--nameserver", world.nameserver, "--port", str(world.port),
        "--concurrency", str(CONCURRENCY),
    ]  # fmt: skip


async def spawn_app(
    state: Path, world: LabWorld, stderr: int = asyncio.subprocess.DEVNULL
) -> asyncio.subprocess.Process:
    """The window's engine on qasync, offscreen, sending ``state`` to ``world``."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gui.smoke", *app_args(state, world),
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip


@dataclass
class Drill:
    """One campaign, killed again and again, then run to the end and checked."""

    world: LabWorld
    state: Path
    send: list[str | Path]  # the whole ``mxmailer`` command line, the same every time
    addresses: list[str]
    rng: random.Random
    arrivals: dict[str, float]
    in_doubt: set[str] = field(default_factory=set)  # seen after some kill
    kills: list[str] = field(default_factory=list)
    doubt_per_kill: list[int] = field(default_factory=list)

    async def crash_at(self, point: str, *, app: bool = False) -> None:
        """A run (of the CLI, or of the app's engine) that kills itself at ``point``; it
        must get there."""
        before = received(self.world)
        args = ["rehearse", *app_args(self.state, self.world)] if app else self.send
        process = await spawn_armed(point, *args)
        _, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
        assert process.returncode == -signal.SIGKILL, (
            f"kill point {point} was not reached: exit {process.returncode}\n{err.decode()}"
        )
        self.killed(f"app-{point}" if app else point, before)

    async def kill_when(
        self,
        label: str,
        condition: Callable[[], Awaitable[object]],
        process: asyncio.subprocess.Process | None = None,
    ) -> None:
        """A run (the CLI unless ``process`` is given) killed from here once
        ``condition`` is met; the run must not end before."""
        before = received(self.world)
        if process is None:
            process = await spawn_mxmailer(*self.send)
        waiting = asyncio.ensure_future(condition())
        ended = asyncio.ensure_future(process.wait())
        await asyncio.wait(
            {waiting, ended}, timeout=RUN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if process.returncode is None:
            process.kill()  # the condition is met (or failed, or timed out): never leak it
        waiting.cancel()
        await asyncio.wait_for(ended, RUN_TIMEOUT)
        assert process.returncode == -signal.SIGKILL, (
            f"the run ended (exit {process.returncode}) before {label}"
        )
        assert waiting.done() and not waiting.cancelled(), f"{label}: not reached in time"
        waiting.result()  # the condition's own failure, if it failed
        self.killed(label, before)

    def killed(self, label: str, before: Counter[str]) -> None:
        """After every kill: the file is sound, and what it holds in doubt is explained.

        A row newly in doubt either reached the lab within DOUBT_WINDOW before the kill
        (its result was not due to be saved yet), or its marker was not out yet: at most
        one per connection (CONCURRENCY).
        """
        killed_at = time.monotonic()
        self.kills.append(label)
        TALLY.kill_points.append(label)
        doubt = check_file(self.state)
        now = received(self.world)
        new = doubt - self.in_doubt
        unsent = [email for email in new if now[email] == 0]
        assert len(unsent) <= CONCURRENCY, (label, unsent)
        stale = [email for email in new if now[email] and now[email] == before[email]]
        assert stale == [], f"{label}: in doubt, but received before this run: {stale}"
        late = {
            email: round(killed_at - self.arrivals[email], 2)
            for email in new
            if now[email] and killed_at - self.arrivals[email] > DOUBT_WINDOW
        }
        assert late == {}, f"{label}: received long before the kill, result never saved"
        self.in_doubt |= doubt
        self.doubt_per_kill.append(len(new))

    async def finish(self) -> None:
        """Resume until done (an interrupted exit is resumed again, bounded)."""
        for _ in range(3):
            code, _, err = await mxmailer(*self.send, timeout=RUN_TIMEOUT)
            if code != 130:
                break
        assert code in (0, 1), err
        self.settle()

    def settle(self) -> None:
        """Every recipient exactly once in the lab, or reported possibly delivered."""
        report = self.state.with_name(self.state.stem + "-final.csv")
        store, _ = CampaignStore.open(self.state, read_only=True)
        with store:
            store.export_report(report)
        rows = {row["email"].lower(): row for row in read_report(report)}
        assert sorted(rows) == sorted(a.lower() for a in self.addresses)
        got = received(self.world)
        duplicates = sorted(a for a in rows if got[a] > 1)
        ambiguous = {a for a, row in rows.items() if "possibly delivered" in row["detail"]}
        lost = sorted(
            a
            for a, row in rows.items()
            if a not in ambiguous and (row["status"] != "delivered" or got[a] != 1)
        )
        reached = sum(1 for a in ambiguous if got[a])
        TALLY.recipients += len(rows)
        TALLY.duplicates += len(duplicates)
        TALLY.lost += len(lost)
        TALLY.ambiguous += len(ambiguous)
        TALLY.ambiguous_received += reached
        per_kill = ", ".join(
            f"{k} {n}" for k, n in zip(self.kills, self.doubt_per_kill, strict=True)
        )
        print(
            f"{len(self.kills)} interruptions (rows left in doubt: {per_kill}); "
            f"{len(rows)} recipients: "
            f"{len(duplicates)} duplicates, {len(lost)} lost, {len(ambiguous)} ambiguous "
            f"({reached} received by the lab)"
        )
        assert duplicates == []
        assert lost == [], [(a, rows[a]["status"], rows[a]["detail"], got[a]) for a in lost]
        # Only a kill makes a row ambiguous here: each one was seen in doubt after a kill.
        assert ambiguous <= self.in_doubt, ambiguous - self.in_doubt

    def messages(self, host: str) -> int:
        return self.world.server(host).stats.messages

    def after_messages(self, host: str, n: int) -> Callable[[], Awaitable[None]]:
        """A condition: ``host`` accepted ``n`` more messages than it has now."""
        server = self.world.server(host)
        target = server.stats.messages + n
        return lambda: server.wait_for(lambda: server.stats.messages >= target, RUN_TIMEOUT)


def drill(
    tmp_path: Path,
    world: LabWorld,
    addresses: list[str],
    arrivals: dict[str, float],
    state: Path | None = None,
) -> Drill:
    recipients = write_csv(tmp_path / "r.csv", addresses)
    message = tmp_path / "m.eml"
    message.write_bytes(b"From: <news@sender.test>\nSubject: Hi {{name}}\n\nHello.\n")
    state = state or tmp_path / "campaign.mxm"
    send = [
        *send_args(recipients, message),
        "--concurrency", str(CONCURRENCY),
        "--report", tmp_path / "report.csv",
        *lab_args(world, state),
    ]  # fmt: skip
    rng = random.Random(f"{SEED}-{tmp_path.name}")
    return Drill(world, state, send, addresses, rng, arrivals)


def slow_and_plain() -> LabWorld:
    """slow.test drips each end-of-data reply (a run lasts, and kills land between an
    end of data and its reply); plain.test answers at once."""
    return slow_world().host("mx.plain.test").domain("plain.test", "mx.plain.test")


async def test_the_cli_killed_at_16_points_and_resumed_sends_each_recipient_once(
    tmp_path: Path, arrivals: dict[str, float]
) -> None:
    """One campaign through a whole life of kills, in the order a run meets them (the
    import, the open, the first marks and flushes, mid-run, stopping, the report, the
    close), so that each point is still ahead of the run that arms it."""
    world = slow_and_plain()
    addresses = [f"s{n}@slow.test" for n in range(130)] + [f"p{n}@plain.test" for n in range(30)]
    async with world:
        d = drill(tmp_path, world, addresses, arrivals)
        rng = d.rng
        print(f"seed {SEED}")
        # The import: creating the file, adding the rows, indexing them, opening it.
        for point in ("txn-build:1", "txn-import:1", "txn-index:1", "open:1"):
            await d.crash_at(point)
        await d.crash_at("txn-recovery:1")  # the resume's open, in its recovery
        await d.crash_at("marking:1")  # the first end-of-data mark, before its journal write
        await d.crash_at("txn-flush:1")  # the first results, before their commit
        await d.kill_when("after-n-delivered", d.after_messages("mx.slow.test", rng.randint(3, 8)))
        await d.crash_at(f"marking:{rng.randint(3, 12)}")
        await d.crash_at(f"marked:{rng.randint(3, 12)}")  # mark journaled, "." not sent
        await d.crash_at(f"recorded:{rng.randint(3, 12)}")  # a result only in memory
        await d.crash_at(f"txn-flush:{rng.randint(2, 5)}")
        await d.crash_at(f"flushed:{rng.randint(2, 5)}")  # committed, not yet announced
        await d.kill_when(
            "after-more-delivered", d.after_messages("mx.slow.test", rng.randint(9, 20))
        )
        await stop_then_kill(d)
        await d.kill_when("after-1-delivered", d.after_messages("mx.slow.test", 1))
        await d.crash_at("report:1")  # the run ended; the report half written
        await d.crash_at("close:1")  # nothing left to send; closing the file
        await d.finish()
    assert len(points(d.kills)) >= 16


async def stop_then_kill(d: Drill) -> None:
    """Ctrl-C (the engine lets messages in flight finish), then SIGKILL during that stop."""
    process = await spawn_mxmailer(*d.send, stderr=asyncio.subprocess.PIPE)

    async def stopping() -> None:
        await d.after_messages("mx.slow.test", 3)()
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        said = b""
        while b"stopping" not in said:
            said = await process.stderr.readline()
            assert said, "mxmailer ended before saying it was stopping"

    await d.kill_when("ctrl-c-then-kill", stopping, process)


def special_world() -> LabWorld:
    """Hosts that hold a run at one step: greylisting, STARTTLS, a greeting and an
    end-of-data reply that never come (the first only), DNS that does not answer
    (scripted per test)."""
    world = LabWorld()
    for name in ("grey", "greyrec"):
        host = f"mx.{name}.test"
        world.host(host, Behaviour(hostname=host, greylist=Greylist(1, True, 1)))
    world.host("mx.tls.test", Behaviour(hostname="mx.tls.test", tls=TLSMode.OFFER))
    world.host(
        "mx.hold.test",
        Behaviour(hostname="mx.hold.test", hostile=(Hostile(Stage.END_OF_DATA, Act.SILENCE, 1),)),
    )
    world.host(
        "mx.greet.test",
        Behaviour(hostname="mx.greet.test", hostile=(Hostile(Stage.GREETING, Act.SILENCE, 1),)),
    )
    world.host("mx.dns.test")
    for name in SPECIAL:
        world.domain(f"{name}.test", f"mx.{name}.test")
    return world


SPECIAL = ("grey", "greyrec", "tls", "greet", "hold", "dns")


async def test_the_cli_killed_during_dns_greylisting_starttls_and_unanswered_replies(
    tmp_path: Path, arrivals: dict[str, float]
) -> None:
    """One small campaign per step, so that the step is still ahead when the run starts."""
    async with special_world() as world:
        drills = {}
        for name in SPECIAL:
            folder = tmp_path / name
            folder.mkdir()
            addresses = [f"{name}{n}@{name}.test" for n in range(4)]
            drills[name] = drill(folder, world, addresses, arrivals)
        await drills["grey"].crash_at("greylisted:1")  # halfway through the wait
        await drills["greyrec"].crash_at("recorded:1")  # a greylisting only in memory
        await drills["tls"].crash_at("tls:1")  # STARTTLS said 220, handshake starting
        greet = world.server("mx.greet.test")
        await drills["greet"].kill_when(  # connected, the banner never comes
            "greeting-unanswered",
            lambda: greet.wait_for(lambda: greet.stats.connections >= 1, RUN_TIMEOUT),
        )
        hold = world.server("mx.hold.test")
        await drills["hold"].kill_when(  # "." written, the lab holds the reply
            "end-of-data-unanswered",
            lambda: hold.wait_for(lambda: hold.stats.unanswered >= 1, RUN_TIMEOUT),
        )
        world.zone.drop("dns.test")
        dns = world.dns
        assert dns is not None
        await drills["dns"].kill_when(  # the MX query is out, no answer comes
            "dns-unanswered",
            lambda: dns.wait_for(lambda: dns.queries("dns.test", "MX") >= 1, RUN_TIMEOUT),
        )
        world.zone.heal("dns.test")
        for d in drills.values():
            await d.finish()
    held = hold.unanswered[0].recipients[0]
    assert held in drills["hold"].in_doubt  # the held one: honestly possibly delivered


async def test_the_app_killed_mid_send_and_resumed_sends_each_recipient_once(
    tmp_path: Path, arrivals: dict[str, float]
) -> None:
    """The window's engine (qasync, offscreen) killed mid-send: from outside after N
    delivered, and at its own store writes; resumed by the app each time."""
    world = slow_and_plain()
    addresses = [f"s{n}@slow.test" for n in range(60)] + [f"p{n}@plain.test" for n in range(10)]
    async with world:
        d = drill(tmp_path, world, addresses, arrivals)
        with CampaignStore.create(
            d.state,
            sender=SENDER,
            message=write_message(tmp_path / "app.eml").read_bytes(),
            settings={"helo": "sender.test"},
        ) as store:  # as `mxmailer send --state` leaves a campaign before sending
            store.add_recipients(NewRecipient(a, a.partition("@")[2], {}) for a in addresses)
        for n in (d.rng.randint(3, 10), d.rng.randint(10, 20)):
            await d.kill_when(
                "app-after-n-delivered",
                d.after_messages("mx.slow.test", n),
                await spawn_app(d.state, world),
            )
        await d.crash_at(f"marking:{d.rng.randint(2, 8)}", app=True)
        await d.crash_at(f"marked:{d.rng.randint(2, 8)}", app=True)
        await d.crash_at(f"txn-flush:{d.rng.randint(2, 4)}", app=True)
        app = await spawn_app(d.state, world, asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(app.communicate(), RUN_TIMEOUT)
        assert app.returncode == 0, err.decode()
        await d.crash_at("close:1", app=True)  # opened again, nothing to send, closing
        d.settle()


async def test_a_full_disk_stops_the_sending_with_a_clear_error(
    tmp_path: Path, arrivals: dict[str, float]
) -> None:
    await _writes_fail(tmp_path, arrivals, "disk-full", "disk full while saving")


async def test_a_campaign_file_turned_read_only_stops_the_sending(
    tmp_path: Path, arrivals: dict[str, float]
) -> None:
    await _writes_fail(tmp_path, arrivals, "read-only", "is read-only")


async def test_a_real_full_disk_stops_the_sending_with_a_clear_error(
    tmp_path: Path, arrivals: dict[str, float]
) -> None:
    """The campaign file on a small tmpfs that this test fills mid-run: SQLite meets
    ENOSPC appending to its log. Needs the right to mount (root here; skipped without)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(disk)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root): the PRAGMA drill stands")
    filler = disk / "filler"

    async def fill(d: Drill | None = None) -> None:
        if d is not None:
            await d.after_messages("mx.slow.test", 5)()
        chunk = bytes(64 * 1024)
        with filler.open("wb", buffering=0) as handle, contextlib.suppress(OSError):
            for _ in range(4 * 16 + 1):  # 4 MiB in 64 KiB writes: the last one cannot fit
                handle.write(chunk)

    async def full_again(d: Drill) -> None:
        """A resume while the disk is full stops too: at the open (exit 2) or, since
        closing the file checkpointed its log and so freed a little room, after the few
        end-of-data marks that fit (exit 1); whatever it sent is on the file."""
        await fill()
        before = received(d.world)
        code, _, err = await mxmailer(*d.send, timeout=RUN_TIMEOUT)
        assert code in (1, 2), err
        assert "disk full while" in err and f"the campaign file {d.state}" in err
        filler.unlink()
        d.in_doubt |= assert_recorded(d, received(d.world) - before)

    try:
        await _writes_fail(
            tmp_path,
            arrivals,
            "announce",
            "disk full while",
            state=disk / "campaign.mxm",
            during=fill,
            make_room=filler.unlink,
            then=full_again,
            label="tmpfs-full",
        )
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def assert_recorded(d: Drill, got: Counter[str]) -> set[str]:
    """Every address in ``got`` is on the campaign file as delivered, possibly delivered,
    or in doubt (marked): nothing went out unrecorded. Returns the rows in doubt."""
    doubt = check_file(d.state)
    with closing(sqlite3.connect(d.state)) as db:
        statuses = dict(db.execute("SELECT lower(email), status FROM recipients"))
    recorded = {a for a, status in statuses.items() if status in ("delivered", "ambiguous")}
    assert [a for a in got if a not in recorded | doubt] == []
    assert sum(1 for s in statuses.values() if s == "queued") > CONCURRENCY  # it stopped
    return doubt


async def _writes_fail(
    tmp_path: Path,
    arrivals: dict[str, float],
    point: str,
    complaint: str,
    *,
    state: Path | None = None,
    during: Callable[[Drill], Awaitable[None]] | None = None,
    make_room: Callable[[], None] | None = None,
    then: Callable[[Drill], Awaitable[None]] | None = None,
    label: str = "",
) -> None:
    """The store's writes start failing mid-run (SQLite's own SQLITE_FULL/READONLY): the
    CLI stops with the error, nothing goes out without its end-of-data mark in the
    journal, and a later resume (once ``freed``) completes the campaign."""
    world = slow_and_plain()
    addresses = [f"s{n}@slow.test" for n in range(80)]
    async with world:
        d = drill(tmp_path, world, addresses, arrivals, state)
        server = world.server("mx.slow.test")
        process = await spawn_armed(f"{point}:3", *d.send)
        assert process.stdout is not None and process.stderr is not None
        line_read = asyncio.ensure_future(process.stdout.readline())
        if during is not None:  # done, or the failure came first, or the run ended first
            await asyncio.wait(
                {asyncio.ensure_future(during(d)), line_read},
                timeout=RUN_TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
        line = await asyncio.wait_for(line_read, RUN_TIMEOUT)
        at_break = server.stats.messages  # the file refuses writes (or the disk is full)
        if line == b"STORE-BROKEN\n":
            line = await asyncio.wait_for(process.stdout.readline(), RUN_TIMEOUT)
        if line != b"STORE-FAILED\n":
            await process.wait()
            pytest.fail(f"the store never refused a write: {await process.stderr.read()!r}")
        at_failure = server.stats.messages
        _, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
        after = server.stats.messages - at_failure
        # Marks go to the end-of-data journal, which may still take writes: the broken
        # file is noticed at the next results flush (FLUSH_BATCH results or FLUSH_INTERVAL
        # later); what went out meanwhile is journaled, so it opens as possibly delivered.
        assert server.stats.messages - at_break <= FLUSH_BATCH + CONCURRENCY
        message = err.decode()
        if make_room is not None:  # a full disk: the checks below need some room
            make_room()
        assert process.returncode == 1, message
        assert "sending stopped, because progress could not be saved" in message
        assert complaint in message and str(d.state) in message
        assert after <= CONCURRENCY  # only what was in flight when the write failed
        doubt = assert_recorded(d, received(world))
        print(f"{label or point}: stopped; {after} message(s) arrived after the failed write")
        d.in_doubt |= doubt
        d.kills.append(label or point)
        d.doubt_per_kill.append(len(doubt))
        if then is not None:
            await then(d)
        await d.finish()  # the disk has room again / the file is writable again


async def test_a_read_only_campaign_file_is_refused_before_anything_is_sent(
    tmp_path: Path, arrivals: dict[str, float]
) -> None:
    """Not root: the file's mode. Root writes through modes: the immutable attribute."""
    async with slow_and_plain() as world:
        d = drill(tmp_path, world, ["a@plain.test", "b@plain.test"], arrivals)
        await d.crash_at("open:1")  # imported, nothing sent
        if os.geteuid() != 0:
            d.state.chmod(0o400)
            undo = [lambda: d.state.chmod(0o600)]
        elif subprocess.run(["chattr", "+i", str(d.state)], capture_output=True).returncode:
            pytest.skip("running as root without chattr +i: no way to make the file read-only")
        else:
            undo = [lambda: subprocess.run(["chattr", "-i", str(d.state)], check=True)]
        try:
            code, _, err = await mxmailer(*d.send, timeout=RUN_TIMEOUT)
        finally:
            for step in undo:
                step()
        assert code == 2, err
        assert f"the campaign file {d.state} is read-only" in err
        assert received(world) == Counter()
        await d.finish()


async def test_an_import_killed_after_its_first_batch_is_started_over(
    tmp_path: Path, arrivals: dict[str, float]
) -> None:
    """An import commits every IMPORT_BATCH rows: killed inside its second batch, the
    rows already committed must not become a campaign that a rerun adds to again."""
    count = IMPORT_BATCH + 5
    async with slow_and_plain() as world:
        d = drill(tmp_path, world, [f"u{n}@plain.test" for n in range(count)], arrivals)
        await d.crash_at("txn-import:2")
        assert not d.state.exists()
        await d.crash_at("open:1")  # the rerun's import is whole; nothing sent yet
        with closing(sqlite3.connect(d.state)) as db:
            rows, distinct = db.execute(
                "SELECT count(*), count(DISTINCT email) FROM recipients"
            ).fetchone()
    assert rows == distinct == count
    assert received(world) == Counter()


async def test_a_report_that_cannot_be_written_is_a_clear_error_after_the_sending(
    tmp_path: Path, arrivals: dict[str, float]
) -> None:
    """Found by these drills: a --report that could not be written (a full disk, a
    missing or read-only folder) ended a finished run with a Python traceback. The mail
    has gone out and every result is saved: say so, and how to write the report."""
    async with slow_and_plain() as world:
        d = drill(tmp_path, world, ["a@plain.test", "b@plain.test"], arrivals)
        nowhere = tmp_path / "missing" / "report.csv"
        send = [nowhere if arg == tmp_path / "report.csv" else arg for arg in d.send]
        code, _, err = await mxmailer(*send, timeout=RUN_TIMEOUT)
        assert code == 2, err
        assert "Traceback" not in err
        assert f"cannot write the report {nowhere}: No such file or directory" in err
        assert f"mxmailer send --state {d.state} --report FILE" in err
        assert received(world) == Counter(["a@plain.test", "b@plain.test"])
        await d.finish()  # as the message says: the report is written, nothing sent again
    assert (tmp_path / "report.csv").exists()
