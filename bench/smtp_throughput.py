"""SMTP client throughput against one Postfix ``smtp-sink`` on loopback.

What it measures: how many ~2 KB messages per second three SMTP clients push through
10 concurrent, reused connections to the same ``smtp-sink`` (Postfix's discard-everything
test server), and how much client CPU each message costs:

* ``mxmailer driver``: our asyncio driver (``core.connection.deliver``) with the sans-IO
  session from ``core.smtp``; it pipelines (RFC 2920) when the server offers it.
* ``smtp-source``: Postfix's C load generator, lock-step (no pipelining), ``-d`` to keep
  its connections open. The bar for "fast enough".
* ``aiosmtplib``: the reference asyncio SMTP client for Python, lock-step. The bar for
  "worth writing our own".

Why: the product's claim is that a Python bulk mailer need not be the bottleneck. The spec
sets two bars, driver >= 1.0x smtp-source and driver >= 5x aiosmtplib (messages per
second); this script prints whether they are met. A missed bar is a result, not an error:
the script exits 0. It exits 1 only if a client failed to deliver every message, and 2 if
``smtp-sink`` cannot be had.

Each Python client runs in its own fresh interpreter (this file, ``--worker``), so its
CPU figure (``getrusage(RUSAGE_SELF)`` around the send loop) holds nothing but sending.
``smtp-source``'s CPU is ``getrusage(RUSAGE_CHILDREN)`` around its whole run. The sink's
CPU is read from ``/proc/<pid>/stat``, to show whether it, not the client, is the limit.
Repeats are interleaved (driver, smtp-source, aiosmtplib, driver, ...) and the table shows
each client's median run by messages per second.

Only loopback and ``.test`` names are used. Run it with ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "PERFORMANCE.md"
SMTP_SINK = Path("/usr/sbin/smtp-sink")
SMTP_SOURCE = Path("/usr/sbin/smtp-source")

CONNECTIONS = 10
SENDER = "bench@client.test"
HELO = "client.test"
SINK_HOST = "sink.test"
SUBPROCESS_TIMEOUT = 300.0
APT_TIMEOUT = 900.0
SINK_START_TIMEOUT = 10.0
SOURCE_PAYLOAD = 2048  # smtp-source -l: payload bytes (CRLFs included), headers not counted

MARK_BEGIN = "<!-- bench:smtp_throughput -->"
MARK_END = "<!-- /bench:smtp_throughput -->"

DRIVER = "mxmailer driver"
SOURCE = "smtp-source"
AIOSMTPLIB = "aiosmtplib"

DOCS_INTRO = """\
# Performance

`bench/smtp_throughput.py` measures SMTP client throughput on loopback: the same ~2 KB
message sent over 10 concurrent, reused connections to one Postfix `smtp-sink` (which
discards everything) by our driver (`core.connection`), by Postfix's own C load generator
`smtp-source`, and by `aiosmtplib`, the reference asyncio SMTP client for Python. It
reports wall time, messages per second, client CPU per message, and the sink's own CPU
(to show whether the sink, not the client, was the limit).

The spec's bars: **driver >= 1.0x smtp-source** and **driver >= 5x aiosmtplib**, in
messages per second.

Reproduce (as root on Debian; it installs the `postfix` package, unconfigured, for
`smtp-sink` and `smtp-source`):

```sh
make bench
```

The section below is rewritten by each run; text outside it is kept.

"""


class BenchError(Exception):
    """A client failed to deliver, or a tool failed: the figures would mean nothing."""


class SetupError(BenchError):
    """``smtp-sink`` or ``smtp-source`` cannot be had (exit status 2)."""


@dataclass(frozen=True, slots=True)
class Run:
    """One client's one run: what it sent, how long it took, what it cost."""

    client: str
    messages: int
    wall: float
    cpu: float
    sink_cpu: float

    @property
    def rate(self) -> float:
        return self.messages / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.messages * 1e6

    @property
    def sink_cpu_us(self) -> float:
        return self.sink_cpu / self.messages * 1e6

    @property
    def sink_core(self) -> float:
        return self.sink_cpu / self.wall * 100


# ---- the message ---------------------------------------------------------------------


def build_message() -> bytes:
    """Headers plus 26 body lines of 76 characters, CRLF: about the size of what
    ``smtp-source -l 2048`` sends (2048 payload bytes behind ~130 header bytes)."""
    headers = [
        f"From: <{SENDER}>",
        f"To: <r@{SINK_HOST}>",
        "Subject: throughput benchmark",
        "Date: Wed, 01 Jan 2025 00:00:00 +0000",
        f"Message-ID: <bench@{HELO}>",
    ]
    lines = [f"{n:02d}" + "x" * 74 for n in range(1, 27)]
    return ("\r\n".join([*headers, "", *lines]) + "\r\n").encode("ascii")


def shares(total: int, parts: int) -> list[int]:
    """Split ``total`` messages over ``parts`` connections as evenly as possible."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


# ---- workers: each Python client in its own fresh interpreter ------------------------


def worker_driver(port: int, messages: int) -> dict[str, object]:
    """Send with our driver over CONNECTIONS concurrent connections; check every result."""
    sys.path.insert(0, str(ROOT))
    from core.connection import ConnectionConfig, ConnectionReport, Target, deliver
    from core.smtp import Body, Outcome, SessionConfig, Transaction

    body = Body.from_bytes(build_message())
    target = Target(SINK_HOST, "127.0.0.1", port)
    config = ConnectionConfig(SessionConfig(HELO), max_transactions=10**9)

    async def send_all() -> list[ConnectionReport]:
        jobs = []
        first = 0
        for share in shares(messages, CONNECTIONS):
            batch = [
                Transaction(SENDER, (f"r{i}@{SINK_HOST}",), body)
                for i in range(first, first + share)
            ]
            jobs.append(deliver(target, batch, config))
            first += share
        return list(await asyncio.gather(*jobs))

    wall, cpu, reports = measure(lambda: asyncio.run(send_all()))
    outcomes: dict[str, int] = {}
    failures: list[str] = []
    for report in reports:
        for result in report.results:
            outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
        if report.failure is not None:
            failures.append(str(report.failure))
    accepted = outcomes.get(Outcome.ACCEPTED.value, 0)
    ok = accepted == messages and len(outcomes) == 1 and not failures
    return {
        "ok": ok,
        "messages": accepted,
        "wall": wall,
        "cpu": cpu,
        "outcomes": outcomes,
        "failures": failures[:5],
    }


def worker_aiosmtplib(port: int, messages: int) -> dict[str, object]:
    """Send with aiosmtplib: CONNECTIONS tasks, each one connection sending its share."""
    import aiosmtplib

    message = build_message()

    async def one_connection(first: int, share: int) -> int:
        smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1",
            port=port,
            local_hostname=HELO,
            start_tls=False,
            use_tls=False,
        )
        await smtp.connect()
        sent = 0
        try:
            for i in range(first, first + share):
                refused, _ = await smtp.sendmail(SENDER, [f"r{i}@{SINK_HOST}"], message)
                sent += 0 if refused else 1
        finally:
            await smtp.quit()
        return sent

    async def send_all() -> list[int]:
        jobs = []
        first = 0
        for share in shares(messages, CONNECTIONS):
            jobs.append(one_connection(first, share))
            first += share
        return list(await asyncio.gather(*jobs))

    wall, cpu, counts = measure(lambda: asyncio.run(send_all()))
    sent = sum(counts)
    return {"ok": sent == messages, "messages": sent, "wall": wall, "cpu": cpu}


T = TypeVar("T")


def measure(action: Callable[[], T]) -> tuple[float, float, T]:
    """Wall seconds and this process's user+sys CPU seconds spent in ``action``."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = action()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


WORKERS: dict[str, Callable[[int, int], dict[str, object]]] = {
    DRIVER: worker_driver,
    AIOSMTPLIB: worker_aiosmtplib,
}


# ---- setup: smtp-sink and smtp-source from Debian's postfix --------------------------


def ensure_postfix_tools() -> None:
    """Install Debian's postfix, preseeded to "No configuration", if its tools are missing."""
    if SMTP_SINK.exists() and SMTP_SOURCE.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SetupError(
            f"{SMTP_SINK} and {SMTP_SOURCE} are missing, and installing Debian's postfix "
            "needs root and apt-get. Install the 'postfix' package (choose 'No "
            "configuration') and run again."
        )
    print("installing Debian's postfix (No configuration) for smtp-sink and smtp-source ...")
    run_checked(
        ["debconf-set-selections"],
        stdin="postfix postfix/main_mailer_type select No configuration\n",
    )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "postfix"]
    if not run_checked(install, env=env, fatal=False):
        run_checked(["apt-get", "update", "-qq"], env=env)
        run_checked(install, env=env)
    if not (SMTP_SINK.exists() and SMTP_SOURCE.exists()):
        raise SetupError(f"postfix is installed but {SMTP_SINK} or {SMTP_SOURCE} is missing")


def run_checked(
    command: Sequence[str],
    *,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    fatal: bool = True,
) -> bool:
    """Run a setup command; on failure raise (``fatal``) or return False."""
    done = subprocess.run(
        command,
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT,
        check=False,
    )
    if done.returncode == 0:
        return True
    if fatal:
        raise SetupError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen[bytes]:
    """Start smtp-sink on loopback in its own process group and wait until it listens."""
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(
        [str(SMTP_SINK), *user, f"127.0.0.1:{port}", "1000"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + SINK_START_TIMEOUT
    while time.monotonic() < deadline:
        if sink.poll() is not None:
            error = sink.stderr.read().decode(errors="replace") if sink.stderr else ""
            raise SetupError(f"smtp-sink exited at once ({sink.returncode}): {error}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return sink
        time.sleep(0.05)
    stop_sink(sink)
    raise SetupError(f"smtp-sink did not listen on 127.0.0.1:{port} in time")


def stop_sink(sink: subprocess.Popen[bytes]) -> float:
    """Kill smtp-sink's process group; return the CPU seconds it used in all."""
    total = process_cpu(sink.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sink.pid, sig)
        try:
            sink.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue
    if sink.stderr is not None:
        sink.stderr.close()
    return total


def process_cpu(pid: int) -> float:
    """User+sys CPU seconds of a live process, from /proc (0.0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- one run of each client ----------------------------------------------------------


def run_python_client(client: str, port: int, messages: int, sink_pid: int) -> Run:
    """Run a Python client in a fresh interpreter; it reports JSON on stdout."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        client,
        "--port",
        str(port),
        "--messages",
        str(messages),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sink_before = process_cpu(sink_pid)
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        env=env,
        cwd=ROOT,
        check=False,
    )
    sink_cpu = process_cpu(sink_pid) - sink_before
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(
            f"{client} worker failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        ) from None
    if not report["ok"] or done.returncode != 0:
        raise BenchError(f"{client} did not deliver all {messages} messages: {report}")
    return Run(
        client, int(report["messages"]), float(report["wall"]), float(report["cpu"]), sink_cpu
    )


def run_smtp_source(port: int, messages: int, sink_pid: int) -> Run:
    """Run Postfix's smtp-source; CPU from RUSAGE_CHILDREN around it."""
    command = [
        str(SMTP_SOURCE),
        "-d",
        "-s",
        str(CONNECTIONS),
        "-m",
        str(messages),
        "-l",
        str(SOURCE_PAYLOAD),
        "-M",
        HELO,
        "-f",
        SENDER,
        "-t",
        f"r@{SINK_HOST}",
        f"127.0.0.1:{port}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sink_before = process_cpu(sink_pid)
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=False
    )
    wall = time.perf_counter() - start
    sink_cpu = process_cpu(sink_pid) - sink_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchError(f"smtp-source failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(SOURCE, messages, wall, cpu, sink_cpu)


def run_all(port: int, sink_pid: int, messages: int, slow: int, repeat: int) -> list[Run]:
    """Interleave the clients ``repeat`` times, printing each run as it ends."""
    runs: list[Run] = []
    for attempt in range(1, repeat + 1):
        for client in (DRIVER, SOURCE, AIOSMTPLIB):
            if client == SOURCE:
                run = run_smtp_source(port, messages, sink_pid)
            else:
                count = slow if client == AIOSMTPLIB else messages
                run = run_python_client(client, port, count, sink_pid)
            runs.append(run)
            print(
                f"  run {attempt}/{repeat} {client:<16} {run.messages:>7} msgs "
                f"{run.wall:7.2f} s {run.rate:9.0f} msg/s {run.cpu_us:7.1f} µs CPU/msg "
                f"(sink {run.sink_core:3.0f}% of a core)",
                flush=True,
            )
    return runs


# ---- results -------------------------------------------------------------------------


def median_runs(
    runs: list[Run], clients: Sequence[str] = (DRIVER, SOURCE, AIOSMTPLIB)
) -> dict[str, Run]:
    """Each client's median run by messages per second (the lower middle for even counts)."""
    chosen: dict[str, Run] = {}
    for client in clients:
        mine = sorted((run for run in runs if run.client == client), key=lambda r: r.rate)
        chosen[client] = mine[(len(mine) - 1) // 2]
    return chosen


def render_table(chosen: dict[str, Run]) -> list[str]:
    source, aio = chosen[SOURCE].rate, chosen[AIOSMTPLIB].rate
    rows = [
        [
            "client",
            "messages",
            "wall s",
            "msg/s",
            "client CPU µs/msg",
            "sink CPU µs/msg",
            "sink % of a core",
            "vs smtp-source",
            "vs aiosmtplib",
        ]
    ]
    for run in chosen.values():
        rows.append(
            [
                run.client,
                str(run.messages),
                f"{run.wall:.2f}",
                f"{run.rate:,.0f}",
                f"{run.cpu_us:.1f}",
                f"{run.sink_cpu_us:.1f}",
                f"{run.sink_core:.0f}",
                f"{run.rate / source:.2f}x",
                f"{run.rate / aio:.2f}x",
            ]
        )
    return markdown_table(rows)


def markdown_table(rows: list[list[str]]) -> list[str]:
    """A Markdown table, first column left-aligned, the others right-aligned."""
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(w) if col == 0 else cell.rjust(w)
            for col, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if number == 0:
            marks = ["-" * w if col == 0 else "-" * (w - 1) + ":" for col, w in enumerate(widths)]
            lines.append("| " + " | ".join(marks) + " |")
    return lines


def render_bars(chosen: dict[str, Run]) -> list[str]:
    driver = chosen[DRIVER].rate
    bars = [
        ("driver >= 1.0x smtp-source", driver / chosen[SOURCE].rate, 1.0),
        ("driver >= 5x aiosmtplib", driver / chosen[AIOSMTPLIB].rate, 5.0),
    ]
    return [
        f"- {name} (msg/s): {ratio:.2f}x: **{'MET' if ratio >= bar else 'MISSED'}**"
        for name, ratio, bar in bars
    ]


def render_spread(runs: list[Run], clients: Sequence[str] = (DRIVER, SOURCE, AIOSMTPLIB)) -> str:
    """Every run's msg/s, per client, and the spread (max - min over the median)."""
    parts = []
    for client in clients:
        rates = [run.rate for run in runs if run.client == client]
        spread = (max(rates) - min(rates)) / statistics.median(rates) * 100
        listed = ", ".join(f"{rate:,.0f}" for rate in rates)
        parts.append(f"{client} {listed} (spread {spread:.0f}%)")
    return "Every run, msg/s in order: " + "; ".join(parts) + "."


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = found.group(1).strip() if found else model
    sink = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "postfix"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    postfix = sink.stdout.strip() or "unknown"
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}; "
        f"Python {platform.python_version()} ({platform.python_implementation()}); "
        f"Linux {platform.release()}; postfix {postfix}"
    )


def render_section(
    runs: list[Run], messages: int, slow: int, repeat: int, message_size: int
) -> list[str]:
    chosen = median_runs(runs)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return [
        f"## SMTP throughput, {when}",
        "",
        f"Machine: {machine()}.",
        "",
        f"Each client sent over {CONNECTIONS} concurrent reused connections to one "
        f"`smtp-sink` on 127.0.0.1: {messages:,} messages per run ({slow:,} for aiosmtplib, "
        f"figures are per message), {repeat} interleaved runs; the table shows each "
        f"client's **median** run by msg/s. Message: {message_size} bytes for the Python "
        f"clients; `smtp-source -l {SOURCE_PAYLOAD}` sends {SOURCE_PAYLOAD} payload bytes "
        "plus its own ~130 bytes of headers. Client CPU is user+sys.",
        "",
        *render_table(chosen),
        "",
        *render_bars(chosen),
        "",
        render_spread(runs),
        "",
        "Command: `make bench` (that is, `.venv/bin/python bench/smtp_throughput.py`).",
    ]


def write_docs(
    section: list[str],
    path: Path = DOCS,
    *,
    begin: str = MARK_BEGIN,
    end: str = MARK_END,
    after: str | None = None,
) -> None:
    """Replace the section between ``begin`` and ``end`` in the docs file, or add it
    (and the file) if missing: right after the line ``after`` when given and present,
    else at the end. Other benchmarks pass their own markers."""
    block = "\n".join([begin, *section, end])
    text = path.read_text() if path.exists() else DOCS_INTRO
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    elif after is not None and after in text:
        head, _, tail = text.partition(after)
        tail = tail.lstrip("\n")
        text = head + after + "\n\n" + block + "\n" + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---- main ----------------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--messages",
        type=positive,
        default=50_000,
        help="messages per run for the driver and smtp-source (default 50000)",
    )
    parser.add_argument(
        "--slow-messages",
        type=positive,
        default=None,
        help="messages per run for aiosmtplib (default: --messages / 5)",
    )
    parser.add_argument(
        "--repeat",
        type=positive,
        default=3,
        help="interleaved runs per client; the median is reported (default 3)",
    )
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help=f"print only; do not rewrite {DOCS.relative_to(ROOT)}",
    )
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def benchmark(args: argparse.Namespace) -> int:
    messages = args.messages
    slow = args.slow_messages or max(CONNECTIONS, messages // 5)
    ensure_postfix_tools()
    port = free_port()
    sink = start_sink(port)
    try:
        print(
            f"smtp-sink pid {sink.pid} on 127.0.0.1:{port}; {messages:,} messages per run "
            f"({slow:,} for aiosmtplib), {CONNECTIONS} connections, {args.repeat} runs"
        )
        runs = run_all(port, sink.pid, messages, slow, args.repeat)
    finally:
        sink_total = stop_sink(sink)
    print(f"smtp-sink stopped; it used {sink_total:.2f} s CPU in all")
    section = render_section(runs, messages, slow, args.repeat, len(build_message()))
    print()
    print("\n".join(section))
    if not args.no_docs:
        write_docs(section)
        print(f"\nwrote {DOCS.relative_to(ROOT)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        report = WORKERS[args.worker](args.port, args.messages)
        print(json.dumps(report))
        return 0 if report["ok"] else 1
    try:
        return benchmark(args)
    except BenchError as error:
        print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
        return 2 if isinstance(error, SetupError) else 1
    except subprocess.TimeoutExpired as error:
        print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
