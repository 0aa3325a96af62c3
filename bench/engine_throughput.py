"""Whole-engine throughput: ``mxmailer send`` as a user runs it, against the reference tools.

What it measures, in one run:

1. **Engine vs reference clients, one ``smtp-sink``.** ``--recipients`` (default 20,000)
   personalised recipients (a CSV with ``email`` and ``first_name``; a ~2 KB .eml with
   ``{{first_name}}`` in its Subject and body), all at ``sink.test``, whose MX a
   :class:`~core.lab.dns.LabDNS` in this process points at Postfix's ``smtp-sink`` on
   127.0.0.1. They are sent by the real CLI in a subprocess (``python -m core.cli send``,
   10 connections) and, in the same run and against the same sink, by ``smtp-source``
   (Postfix's C load generator) and ``aiosmtplib`` over 10 reused connections (both run by
   ``bench/smtp_throughput.py``'s helpers). It prints msg/s, client CPU per message, peak
   RSS and the ratios, and checks the campaign file: every recipient must be delivered.
2. **Many destinations.** ``--big`` (default 100,000) recipients over 1,000 lab domains
   ``d{n}.test`` whose MX is one of 100 :class:`~core.lab.server.LabServer` hosts
   ``mx{h}.bench.test`` (127.0.0.2-101, one shared port, a :class:`~core.lab.world.LabWorld`
   in this process), sent by the CLI with ``--concurrency 100 --per-destination 5``. It
   prints wall time, msg/s, the CLI's peak RSS, the campaign file's size, and checks that
   the lab servers got exactly one copy of each message.

Why: ``bench/smtp_throughput.py`` shows the SMTP driver alone is fast; this shows whether
the product is. The whole engine (CSV import, campaign store, per-recipient merge, DNS,
scheduling, results written back) must keep up: the bars are engine >= 0.5x smtp-source
(1.0x is the goal) and >= 3x aiosmtplib in msg/s, and peak RSS < 300 MB at 100,000
recipients. A missed bar is a result (exit 0); a message not delivered is an error
(exit 1); no ``smtp-sink`` is exit 2.

How it is measured: the CLI's wall time is taken around the whole subprocess (interpreter
start and CSV import included, as a user waits for them), its CPU from ``RUSAGE_CHILDREN``
around it. Every client's peak RSS is its ``VmHWM``, sampled from /proc every 10 ms: a
child's ``ru_maxrss`` on Linux includes the peak RSS of the process that spawned it (this
one), so it says nothing about the child. The lab servers of part 2 run in a thread of
this process (their CPU is that thread's), the CLI in another process; 2 cores.

Only loopback addresses and ``.test`` names are used; every wait is bounded. Run it with
``make bench`` or ``.venv/bin/python bench/engine_throughput.py`` (as a script: it imports
``smtp_throughput`` from its own folder).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import smtp_throughput as st

from core.lab.dns import LabDNS, LabZone
from core.lab.world import LabWorld
from core.store import CampaignStore, Status
from core.template import MessageTemplate, date_header, new_message_id

ROOT = st.ROOT
DOCS = st.DOCS
MARK_BEGIN = "<!-- bench:engine_throughput -->"
MARK_END = "<!-- /bench:engine_throughput -->"

SENDER = st.SENDER
HELO = st.HELO
SINK_DOMAIN = "sink.test"
SINK_MX = "mx.sink.test"
CONNECTIONS = st.CONNECTIONS
BIG_HOSTS = 100
BIG_DOMAINS = 1_000
BIG_CONCURRENCY = 100
BIG_PER_DESTINATION = 5
RSS_BAR_BYTES = 300 * 10**6
SOURCE_BAR, SOURCE_GOAL, AIOSMTPLIB_BAR = 0.5, 1.0, 3.0

ENGINE = "mxmailer send (CLI)"
CLIENTS = (ENGINE, st.SOURCE, st.AIOSMTPLIB)
CLI_TIMEOUT = 600.0
BIG_CLI_TIMEOUT = 1800.0
LAB_TIMEOUT = 60.0
KIB, MIB = 1024, 2**20

T = TypeVar("T")


class VerificationError(st.BenchError):
    """The CLI or the lab disagree with what should have been delivered."""


# ---- child processes: CPU and peak RSS ------------------------------------------------


class PeakRSS:
    """Samples ``VmHWM`` (peak RSS) of this process's children every ``POLL`` seconds, from
    a thread, while its ``with`` block runs; ``kib`` is the largest seen (None: no child).

    Not ``ru_maxrss``: on Linux a child's ``ru_maxrss`` (``wait4``, ``RUSAGE_CHILDREN``,
    even its own ``RUSAGE_SELF``) includes the peak of the process that spawned it, since
    ``exec`` keeps the high-water mark of the memory it replaces: this process's, here.
    ``VmHWM`` belongs to the child's own post-``exec`` memory. The last ``POLL`` seconds of
    a child's life are not seen.
    """

    POLL = 0.01

    def __init__(self, ignore: Collection[int] = ()) -> None:
        self.ignore = frozenset(ignore)
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="peak-rss", daemon=True)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(LAB_TIMEOUT)

    @property
    def kib(self) -> int | None:
        return max(self.peaks.values(), default=None)

    def _watch(self) -> None:
        while not self._stop.wait(self.POLL):
            for pid in children() - self.ignore:
                peak = vm_hwm_kib(pid)
                if peak is not None:
                    self.peaks[pid] = max(peak, self.peaks.get(pid, 0))


def children() -> set[int]:
    """Pids of this process's live children (every thread's), from /proc."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def vm_hwm_kib(pid: int) -> int | None:
    """A live process's peak RSS in KiB (None once it has exited or released its memory)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


@dataclass(frozen=True, slots=True)
class Measured:
    """One child process: wall seconds around it, its CPU, its peak RSS (sampled)."""

    returncode: int
    wall: float
    cpu: float
    rss_kib: int | None
    stdout: str
    stderr: str


def run_measured(command: Sequence[str], timeout: float, ignore: Collection[int] = ()
                 ) -> Measured:
    """Run ``command`` in the project folder: CPU from ``RUSAGE_CHILDREN`` around it (no
    other child is reaped meanwhile), peak RSS from :class:`PeakRSS` (``ignore``: other
    children alive meanwhile, such as ``smtp-sink``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with PeakRSS(ignore) as rss:
        start = time.perf_counter()
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(done.returncode, wall, cpu, rss.kib, done.stdout, done.stderr)


# ---- the lab's asyncio loop, in a thread of this process ------------------------------


class LabLoop:
    """An event loop in a daemon thread for LabDNS and LabWorld while this thread waits
    on subprocesses. ``call`` runs a coroutine there and waits for it (bounded)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="lab", daemon=True)

    def __enter__(self) -> LabLoop:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(LAB_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = LAB_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def cpu(self) -> float:
        """CPU seconds the lab thread has used so far."""
        return self.call(_thread_cpu())


async def _thread_cpu() -> float:
    return time.thread_time()


# ---- campaign inputs -------------------------------------------------------------------


def write_message(path: Path) -> Path:
    """A ~2 KB plain-text .eml merging ``{{first_name}}`` in its Subject and body, about the
    size of ``smtp-source -l 2048`` and of ``bench/smtp_throughput.py``'s message."""
    headers = [
        f"From: Bench <{SENDER}>",
        "Subject: Hello {{first_name}}, your throughput benchmark",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    lines = ["Dear {{first_name}},", ""] + [f"{n:02d}" + "x" * 74 for n in range(1, 25)]
    lines += ["", "Regards, {{first_name}}'s benchmark"]
    path.write_text("\n".join([*headers, "", *lines]) + "\n", encoding="ascii")
    return path


def rendered_size(message: Path) -> int:
    """Bytes of one recipient's merged message, as the engine renders it."""
    template = MessageTemplate(message.read_bytes())
    address = f"r00000@{SINK_DOMAIN}"
    rendered = template.render(
        {"first_name": "Name00000"},
        to=address,
        message_id=new_message_id(SENDER),
        date=date_header(time.time()),
    )
    return len(rendered.data)


def write_recipients(path: Path, addresses: Sequence[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["email", "first_name"])
        writer.writerows((address, f"Name{n:05d}") for n, address in enumerate(addresses))
    return path


def sink_addresses(count: int) -> list[str]:
    return [f"r{n:05d}@{SINK_DOMAIN}" for n in range(count)]


def big_addresses(count: int) -> list[str]:
    """``count`` recipients spread evenly over the lab domains, interleaved."""
    return [f"u{n}@d{n % BIG_DOMAINS}.test" for n in range(count)]


# ---- the CLI ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Campaign:
    recipients: Path
    message: Path
    state: Path
    nameserver: str
    port: int
    concurrency: int
    per_destination: int


def send_command(campaign: Campaign, extra: Sequence[str] = ()) -> list[str]:
    return [
        *extra,
        "-m",
        "core.cli",
        "send",
        "--recipients",
        str(campaign.recipients),
        "--message",
        str(campaign.message),
        "--sender",
        SENDER,
        "--helo",
        HELO,
        "--nameserver",
        campaign.nameserver,
        "--port",
        str(campaign.port),
        "--state",
        str(campaign.state),
        "--progress",
        "none",
        "--per-destination",
        str(campaign.per_destination),
        "--concurrency",
        str(campaign.concurrency),
    ]


def run_cli(
    campaign: Campaign, expected: int, timeout: float, ignore: Collection[int] = ()
) -> Measured:
    """Run ``mxmailer send``; fail loudly unless it exits 0 with all delivered."""
    done = run_measured([sys.executable, *send_command(campaign)], timeout, ignore)
    if done.returncode != 0:
        raise VerificationError(
            f"mxmailer send exited {done.returncode}:\n{done.stdout}\n{done.stderr[-4000:]}"
        )
    verify_campaign(campaign.state, expected)
    return done


def verify_campaign(state: Path, expected: int) -> None:
    """The campaign file must hold ``expected`` rows, every one delivered."""
    store, _ = CampaignStore.open(state, read_only=True)
    with store:
        counts = store.counts()
    delivered = counts[Status.DELIVERED]
    if delivered != expected or sum(counts.values()) != expected:
        other = {status.value: n for status, n in counts.items() if n}
        raise VerificationError(f"campaign {state}: {delivered}/{expected} delivered: {other}")


def campaign_bytes(state: Path) -> int:
    """The campaign file and what SQLite left beside it (WAL, shared memory)."""
    return sum(
        path.stat().st_size
        for path in (state, state.with_name(state.name + "-wal"))
        if path.exists()
    )


def startup_cost() -> Measured:
    """Interpreter start plus everything ``send`` imports (``send --help`` stops right
    after its parser is built): what every CLI run pays before it reads the CSV."""
    return run_measured([sys.executable, "-m", "core.cli", "send", "--help"], 60.0)


# ---- part 1: engine vs smtp-source vs aiosmtplib on one smtp-sink ----------------------


@dataclass(frozen=True, slots=True)
class Phases:
    """Where the CLI's wall time went, from its campaign file's attempt times: before the
    first attempt (interpreter start, CSV import), sending (first attempt to last result),
    after (results written back, exit)."""

    before: float
    sending: float
    after: float


@dataclass(frozen=True, slots=True)
class Result:
    """One client's run against the sink; ``rss_kib`` is None when it cannot be known."""

    run: st.Run
    rss_kib: int | None
    phases: Phases | None = None


def reference(action: Callable[[], st.Run], sink_pid: int) -> Result:
    """Run a reference client with ``smtp_throughput``'s helper, watching its peak RSS."""
    with PeakRSS(ignore=[sink_pid]) as rss:
        run = action()
    return Result(run, rss.kib)


def run_engine_on_sink(campaign: Campaign, messages: int, sink_pid: int) -> Result:
    sink_before = st.process_cpu(sink_pid)
    launched = time.time()
    done = run_cli(campaign, messages, CLI_TIMEOUT, ignore=[sink_pid])
    sink_cpu = st.process_cpu(sink_pid) - sink_before
    first, last = attempt_span(campaign.state)
    phases = Phases(first - launched, last - first, launched + done.wall - last)
    return Result(st.Run(ENGINE, messages, done.wall, done.cpu, sink_cpu), done.rss_kib, phases)


def attempt_span(state: Path) -> tuple[float, float]:
    """The first attempt's start and the last attempt's end, as the campaign file saved
    them (the engine's wall clock, as ``time.time()`` here)."""
    connection = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        first, last = connection.execute(
            "SELECT min(first_attempt_at), max(last_attempt_at) FROM recipients"
        ).fetchone()
    finally:
        connection.close()
    return float(first), float(last)


def part_one(folder: Path, messages: int, repeat: int) -> list[Result]:
    """``repeat`` rounds of the CLI, then smtp-source, then aiosmtplib, all on one sink
    (interleaved, so that a busy moment of the machine does not favour one client)."""
    port = st.free_port()
    sink = st.start_sink(port)
    zone = LabZone().mx_for(SINK_DOMAIN, {SINK_MX: "127.0.0.1"})
    results: list[Result] = []
    try:
        with LabLoop() as lab:
            dns = lab.call(LabDNS(zone).start())
            try:
                print(
                    f"part 1: smtp-sink pid {sink.pid} on 127.0.0.1:{port}, lab DNS on "
                    f"{dns.nameserver}; {messages:,} messages, {CONNECTIONS} connections each,"
                    f" {repeat} round(s)",
                    flush=True,
                )
                recipients = write_recipients(folder / "sink.csv", sink_addresses(messages))
                message = write_message(folder / "message.eml")
                for number in range(repeat):
                    campaign = Campaign(
                        recipients,
                        message,
                        folder / f"c{number}.mxm",
                        dns.nameserver,
                        port,
                        CONNECTIONS,
                        CONNECTIONS,
                    )
                    results.append(run_engine_on_sink(campaign, messages, sink.pid))
                    report(results[-1])
                    results.append(
                        reference(lambda: st.run_smtp_source(port, messages, sink.pid), sink.pid)
                    )
                    report(results[-1])
                    results.append(
                        reference(
                            lambda: st.run_python_client(
                                st.AIOSMTPLIB, port, messages, sink.pid
                            ),
                            sink.pid,
                        )
                    )
                    report(results[-1])
            finally:
                lab.call(dns.stop())
    finally:
        sink_total = st.stop_sink(sink)
    print(f"  smtp-sink stopped; it used {sink_total:.2f} s CPU in all", flush=True)
    return results


def report(result: Result) -> None:
    run = result.run
    print(
        f"  {run.client:<20} {run.messages:>7} msgs {run.wall:7.2f} s {run.rate:8.0f} msg/s "
        f"{run.cpu_us:7.1f} µs CPU/msg, peak RSS {rss_text(result.rss_kib)} "
        f"(sink {run.sink_core:3.0f}% of a core)",
        flush=True,
    )


def rss_text(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / KIB:.1f} MiB"


# ---- part 2: 100,000 recipients over 1,000 lab domains ---------------------------------


@dataclass(frozen=True, slots=True)
class BigResult:
    messages: int
    domains: int
    cli: Measured
    lab_cpu: float
    campaign_bytes: int
    connections: int

    @property
    def rate(self) -> float:
        return self.messages / self.cli.wall


def big_world() -> LabWorld:
    """100 accepting MX hosts on 127.0.0.2-101; domain n's one MX is host n % 100."""
    world = LabWorld()
    for host in range(BIG_HOSTS):
        world.host(f"mx{host}.bench.test")
    for domain in range(BIG_DOMAINS):
        world.domain(f"d{domain}.test", f"mx{domain % BIG_HOSTS}.bench.test")
    return world


def part_two(folder: Path, messages: int) -> BigResult:
    addresses = big_addresses(messages)
    world = big_world()
    with LabLoop() as lab:
        lab.call(world.start())
        try:
            print(
                f"part 2: {BIG_HOSTS} lab MX hosts on port {world.port}, {BIG_DOMAINS:,} "
                f"domains, lab DNS on {world.nameserver}; {messages:,} messages",
                flush=True,
            )
            campaign = Campaign(
                write_recipients(folder / "big.csv", addresses),
                write_message(folder / "message.eml"),
                folder / "big.mxm",
                world.nameserver,
                world.port,
                BIG_CONCURRENCY,
                BIG_PER_DESTINATION,
            )
            lab_before = lab.cpu()
            cli = run_cli(campaign, messages, BIG_CLI_TIMEOUT)
            lab_cpu = lab.cpu() - lab_before
            received, connections = lab.call(_received(world))
        finally:
            lab.call(world.stop())
    verify_received(received, addresses)
    return BigResult(
        messages,
        len({a.rpartition("@")[2] for a in addresses}),
        cli,
        lab_cpu,
        campaign_bytes(campaign.state),
        connections,
    )


async def _received(world: LabWorld) -> tuple[list[str], int]:
    """Every recipient of every accepted message, and connections accepted, read in the
    lab's own thread."""
    connections = sum(h.server.stats.connections for h in world.hosts.values() if h.server)
    return world.delivered_to(), connections


def verify_received(received: list[str], addresses: Sequence[str]) -> None:
    """Exactly one copy for each address, nothing else."""
    counts = Counter(received)
    twice = [address for address, n in counts.items() if n > 1]
    wanted = {address.lower() for address in addresses}
    missing = wanted - counts.keys()
    stray = counts.keys() - wanted
    if len(received) != len(addresses) or twice or missing or stray:
        raise VerificationError(
            f"lab servers received {len(received):,} copies for {len(addresses):,} "
            f"recipients: {len(twice)} twice (e.g. {twice[:3]}), {len(missing)} missing "
            f"(e.g. {sorted(missing)[:3]}), {len(stray)} unexpected"
        )


def big_report(big: BigResult) -> None:
    print(
        f"  {ENGINE:<20} {big.messages:>7} msgs {big.cli.wall:7.2f} s {big.rate:8.0f} msg/s "
        f"{big.cli.cpu / big.messages * 1e6:7.1f} µs CPU/msg, peak RSS "
        f"{rss_text(big.cli.rss_kib)}; lab thread {big.lab_cpu:.1f} s CPU",
        flush=True,
    )


# ---- results ---------------------------------------------------------------------------


def by_client(results: list[Result]) -> dict[str, Result]:
    """Each client's median run by msg/s (``smtp_throughput.median_runs``)."""
    chosen = st.median_runs([result.run for result in results], CLIENTS)
    return {
        client: next(result for result in results if result.run is run)
        for client, run in chosen.items()
    }


def part_one_table(results: list[Result]) -> list[str]:
    chosen = by_client(results)
    source, aio = chosen[st.SOURCE].run.rate, chosen[st.AIOSMTPLIB].run.rate
    rows = [
        [
            "client",
            "messages",
            "wall s",
            "msg/s",
            "client CPU µs/msg",
            "client % of a core",
            "peak RSS",
            "sink % of a core",
            "vs smtp-source",
            "vs aiosmtplib",
        ]
    ]
    for result in (chosen[ENGINE], chosen[st.SOURCE], chosen[st.AIOSMTPLIB]):
        run = result.run
        rows.append(
            [
                run.client,
                f"{run.messages:,}",
                f"{run.wall:.2f}",
                f"{run.rate:,.0f}",
                f"{run.cpu_us:.1f}",
                f"{run.cpu / run.wall * 100:.0f}",
                rss_text(result.rss_kib),
                f"{run.sink_core:.0f}",
                f"{run.rate / source:.2f}x",
                f"{run.rate / aio:.2f}x",
            ]
        )
    return st.markdown_table(rows)


def verdict(met: bool) -> str:
    return "**MET**" if met else "**MISSED**"


def part_one_bars(results: list[Result]) -> list[str]:
    chosen = by_client(results)
    engine = chosen[ENGINE].run.rate
    vs_source = engine / chosen[st.SOURCE].run.rate
    vs_aio = engine / chosen[st.AIOSMTPLIB].run.rate
    goal = "goal 1.0x: reached" if vs_source >= SOURCE_GOAL else "goal 1.0x: not reached"
    return [
        f"- engine >= {SOURCE_BAR}x smtp-source (msg/s): {vs_source:.2f}x: "
        f"{verdict(vs_source >= SOURCE_BAR)} ({goal})",
        f"- engine >= {AIOSMTPLIB_BAR:.0f}x aiosmtplib (msg/s): {vs_aio:.2f}x: "
        f"{verdict(vs_aio >= AIOSMTPLIB_BAR)}",
        *phases_line(chosen[ENGINE], chosen[st.SOURCE].run.rate, chosen[st.AIOSMTPLIB].run.rate),
    ]


def phases_line(engine: Result, source: float, aio: float) -> list[str]:
    """Where the engine's wall time went; the bars above are judged on the whole process."""
    phases = engine.phases
    if phases is None:
        return []
    rate = engine.run.messages / phases.sending
    return [
        f"- the engine's {engine.run.wall:.2f} s: {phases.before:.2f} s before its first "
        f"attempt (interpreter start, CSV import), {phases.sending:.2f} s sending (first "
        f"attempt to last result: {rate:,.0f} msg/s, {rate / source:.2f}x smtp-source, "
        f"{rate / aio:.2f}x aiosmtplib), {phases.after:.2f} s after (results written, "
        "exit). For information only: the bars are judged on the whole process."
    ]


def part_two_table(big: BigResult) -> list[str]:
    rows = [
        [
            "client",
            "recipients",
            "domains",
            "MX hosts",
            "wall s",
            "msg/s",
            "CLI CPU µs/msg",
            "CLI % of a core",
            "CLI peak RSS",
            "campaign file",
            "lab CPU µs/msg",
            "lab % of a core",
            "SMTP connections",
        ],
        [
            ENGINE,
            f"{big.messages:,}",
            f"{big.domains:,}",
            str(BIG_HOSTS),
            f"{big.cli.wall:.2f}",
            f"{big.rate:,.0f}",
            f"{big.cli.cpu / big.messages * 1e6:.1f}",
            f"{big.cli.cpu / big.cli.wall * 100:.0f}",
            rss_text(big.cli.rss_kib),
            f"{big.campaign_bytes / MIB:.1f} MiB",
            f"{big.lab_cpu / big.messages * 1e6:.1f}",
            f"{big.lab_cpu / big.cli.wall * 100:.0f}",
            f"{big.connections:,}",
        ],
    ]
    return st.markdown_table(rows)


def part_two_bars(big: BigResult) -> list[str]:
    if big.cli.rss_kib is None:
        memory = "not seen: **UNKNOWN**"
    else:
        rss = big.cli.rss_kib * KIB
        memory = f"{rss / 1e6:.0f} MB: {verdict(rss < RSS_BAR_BYTES)}"
    return [
        f"- CLI peak RSS < 300 MB at {big.messages:,} recipients: {memory}",
        f"- the lab servers received exactly {big.messages:,} messages, none twice: **yes** "
        "(checked; the run fails otherwise)",
    ]


def render_section(
    results: list[Result], big: BigResult | None, message_size: int, startup: Measured
) -> list[str]:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    messages = by_client(results)[ENGINE].run.messages
    rounds = sum(1 for result in results if result.run.client == ENGINE)
    lines = [
        f"## Whole-engine throughput, {when}",
        "",
        f"Machine: {st.machine()}.",
        "",
        f"**Engine vs reference clients.** {messages:,} recipients, each sent its own merged "
        f"message ({message_size:,} bytes) by `mxmailer send` in a subprocess (10 "
        f"connections: `--concurrency {CONNECTIONS} --per-destination {CONNECTIONS}`) to one "
        f"`smtp-sink` on 127.0.0.1 found through a lab DNS (`{SINK_DOMAIN}` MX "
        f"`{SINK_MX}`); the same count sent by `smtp-source -d -s {CONNECTIONS} -l "
        f"{st.SOURCE_PAYLOAD}` and by aiosmtplib over {CONNECTIONS} reused connections. "
        f"{rounds} interleaved round(s) of engine, smtp-source, aiosmtplib; the table shows "
        "each client's **median** run by msg/s. The engine's wall "
        "time and CPU cover its whole process: interpreter start and imports "
        f"({startup.wall:.2f} s wall, {startup.cpu:.2f} s CPU for `mxmailer send --help` "
        "alone), CSV import into the campaign file, sending, and results written back; "
        "aiosmtplib's cover its send loop only, smtp-source's its whole process. Peak RSS "
        "is each client process's `VmHWM`, sampled every 10 ms.",
        "",
        *part_one_table(results),
        "",
        *part_one_bars(results),
        "",
        st.render_spread([result.run for result in results], CLIENTS),
    ]
    if big is not None:
        lines += [
            "",
            f"**Many destinations.** {big.messages:,} recipients over {big.domains:,} lab "
            f"domains, each with one MX among {BIG_HOSTS} lab SMTP servers (Python, "
            f"`core.lab.LabServer`, 127.0.0.2-{BIG_HOSTS + 1}, one port) run in a thread of "
            "the benchmark process; the CLI in another process with "
            f"`--concurrency {BIG_CONCURRENCY} --per-destination {BIG_PER_DESTINATION}`. "
            "The lab servers share one thread, so one core at most; whichever side is "
            "near 100% of a core is the limit.",
            "",
            *part_two_table(big),
            "",
            *part_two_bars(big),
        ]
    lines += [
        "",
        "Command: `make bench` (that is, `.venv/bin/python bench/engine_throughput.py`, "
        "after `bench/smtp_throughput.py`).",
    ]
    return lines


# ---- main ------------------------------------------------------------------------------


def count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--recipients",
        type=st.positive,
        default=20_000,
        help="recipients for part 1, engine vs smtp-source vs aiosmtplib (default 20000)",
    )
    parser.add_argument(
        "--big",
        type=count,
        default=100_000,
        help="recipients over 1,000 lab domains for part 2 (default 100000; 0 skips it)",
    )
    parser.add_argument(
        "--repeat",
        type=st.positive,
        default=3,
        help="interleaved rounds of part 1; each client's median is reported (default 3)",
    )
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help=f"print only; do not rewrite {DOCS.relative_to(ROOT)}",
    )
    return parser.parse_args(argv)


def benchmark(args: argparse.Namespace) -> int:
    if args.big and args.big < BIG_DOMAINS:
        raise st.SetupError(f"--big needs at least {BIG_DOMAINS} recipients (or 0)")
    st.ensure_postfix_tools()
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        folder = Path(tmp)
        message_size = rendered_size(write_message(folder / "message.eml"))
        startup = startup_cost()
        results = part_one(folder, args.recipients, args.repeat)
        big = None
        if args.big:
            big = part_two(folder, args.big)
            big_report(big)
    section = render_section(results, big, message_size, startup)
    print()
    print("\n".join(section))
    if not args.no_docs:
        st.write_docs(section, begin=MARK_BEGIN, end=MARK_END, after=st.MARK_END)
        print(f"\nwrote {DOCS.relative_to(ROOT)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return benchmark(args)
    except st.BenchError as error:
        print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
        return 2 if isinstance(error, st.SetupError) else 1
    except subprocess.TimeoutExpired as error:
        print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
