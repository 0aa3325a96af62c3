"""GUI responsiveness: the window while its engine sends 100,000 messages at full speed.

What it measures, in one run, against one lab (``bench/engine_throughput.py``'s: 100
accepting MX hosts on 127.0.0.2-101 for 1,000 domains ``d{n}.test``, served by a
:class:`~core.lab.world.LabWorld` in a thread of this process):

1. **The CLI**, ``mxmailer send`` in a subprocess, on ``--recipients`` (default 100,000)
   personalised recipients, ``--concurrency 100 --per-destination 5``: its sending rate.
2. **The app**, in its own subprocess (this script with ``--child``), offscreen, as a user
   runs it: the same CSV imported the way the Import dialog does (``read_recipients``
   into a new campaign file, timed), the campaign opened in the window (the table filled
   with every row, timed), then Start with the same limits and the same lab. While it
   sends, a 10 ms ``QTimer`` probe records how late each tick comes: the event loop's
   latency, which is what a user feels as a frozen window. It prints the probe's
   percentiles, the rate, and the app's peak RSS.

Both rates are the same measure: recipients divided by the span from the first attempt
to the last one, read from each campaign file, so neither includes start-up or import.
The bars (issue 5): probe p99 < 50 ms and max < 200 ms during the run, GUI rate >= 0.5x
the CLI's, import of 100,000 rows into the table < 3 s, memory < 500 MB. A missed bar is
a result (exit 0); a message not delivered is an error (exit 1).

Only loopback addresses and ``.test`` names are used; every wait is bounded. Run it with
``make bench`` or ``.venv/bin/python bench/gui_responsiveness.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import engine_throughput as et
import smtp_throughput as st

MARK_BEGIN = "<!-- bench:gui_responsiveness -->"
MARK_END = "<!-- /bench:gui_responsiveness -->"
PROBE_MS = 10
#: The whole app run (import, open, send, close) must end within this.
CHILD_TIMEOUT = 900.0
BARS = {"p99_ms": 50.0, "max_ms": 200.0, "ratio": 0.5, "import_s": 3.0, "rss_mib": 500.0}


# ---- the app, in its own process --------------------------------------------------------


def child(args: argparse.Namespace) -> int:
    """Import, open and send the campaign in the real window; print one JSON line."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from core.engine import EngineConfig
    from core.recipients import ImportSummary, read_recipients
    from core.store import CampaignStore
    from gui.loop import ErrorReporter, make_loop
    from gui.main_window import MainWindow, WindowOptions
    from gui.sandbox import SANDBOX_SETTING, build_sandbox_campaign
    from gui.settings_model import AppSettings, Delivery, save_settings
    from gui.state import RunState

    folder = Path(args.folder)
    app = QApplication.instance() or QApplication(["mxmailer-gui"])
    assert isinstance(app, QApplication)
    reporter = ErrorReporter()
    loop = make_loop(app, reporter)

    # The Import dialog's path: read_recipients into a new campaign file.
    started = time.perf_counter()
    summary = ImportSummary()
    campaign = build_sandbox_campaign(
        folder / "app",
        lambda: read_recipients(Path(args.csv), summary),
        summary,
        Path(args.message).read_bytes(),
        stem="bench",
    )
    import_seconds = time.perf_counter() - started
    # Sent to this bench's lab, not the sandbox's: a campaign the settings send for real,
    # with the engine configured the way the CLI run was.
    with CampaignStore.open(campaign.path)[0] as store:
        store.set_settings({k: v for k, v in store.settings.items() if k != SANDBOX_SETTING})
        sender = store.sender
    settings_file = folder / "app-settings.json"
    real = AppSettings(
        sender=sender, helo=st.HELO, delivery=Delivery.REAL, real_acknowledged=True
    )
    save_settings(settings_file, real)

    def config(_: AppSettings) -> EngineConfig:
        return EngineConfig(
            helo=st.HELO,
            port=args.port,
            nameservers=((args.nameserver_host, args.nameserver_port),),
            concurrency=et.BIG_CONCURRENCY,
            per_destination=et.BIG_PER_DESTINATION,
            smtp_phases=True,
        )

    window = MainWindow(
        WindowOptions(folder / "data", settings_file=settings_file, config_factory=config),
        reporter,
        confirm=lambda _title, _text: True,
        preflight=lambda _session, go: go(),  # the lab only: no checks of the internet
    )
    window.show()
    app.processEvents()
    started = time.perf_counter()
    opened = window.open_file(campaign.path)
    app.processEvents()  # the table's first paint is part of opening
    open_seconds = time.perf_counter() - started
    if not opened or window.session is None:
        print(json.dumps({"error": "the campaign did not open: " + window.error_banner.text}))
        return 1

    gaps: list[float] = []
    finished = [False]
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(PROBE_MS)
    probe.timeout.connect(tick)

    async def run() -> float:
        session = window.session
        assert session is not None
        probe.start()
        last[0] = time.perf_counter()
        begun = time.perf_counter()
        window.start()
        await asyncio.wait_for(session.wait_ended(), CHILD_TIMEOUT)
        wall = time.perf_counter() - begun
        probe.stop()
        finished[0] = session.run_state is RunState.FINISHED
        closed = loop.create_future()
        window.closed.connect(lambda: closed.done() or closed.set_result(None))
        window.close()
        await closed
        return wall

    with loop:
        wall = loop.run_until_complete(run())
    late = sorted(max(0.0, gap * 1000 - PROBE_MS) for gap in gaps)
    print(
        json.dumps(
            {
                "rows": summary.valid,
                "import_s": import_seconds,
                "open_s": open_seconds,
                "run_wall_s": wall,
                "ticks": len(late),
                "p50_ms": statistics.median(late) if late else 0.0,
                "p99_ms": late[min(len(late) - 1, int(len(late) * 0.99))] if late else 0.0,
                "max_ms": late[-1] if late else 0.0,
                "state": str(campaign.path),
                "finished": finished[0],
                "errors": reporter.errors,
            }
        )
    )
    return 0


# ---- the parent: lab, CLI, app ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppRun:
    figures: dict[str, object]
    measured: et.Measured

    def number(self, key: str) -> float:
        value = self.figures[key]
        assert isinstance(value, int | float)
        return float(value)


def sending_span(state: Path) -> float:
    """Seconds from the first attempt to the last one, from the campaign file."""
    first, last = et.attempt_span(state)
    return last - first


def run_app(folder: Path, csv_path: Path, message: Path, world_ns: str, port: int) -> AppRun:
    host, _, ns_port = world_ns.rpartition(":")
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--folder",
        str(folder),
        "--csv",
        str(csv_path),
        "--message",
        str(message),
        "--nameserver-host",
        host,
        "--nameserver-port",
        ns_port,
        "--port",
        str(port),
    ]
    done = et.run_measured(command, CHILD_TIMEOUT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise et.VerificationError(
            f"the app exited {done.returncode}:\n{done.stdout}\n{done.stderr[-4000:]}"
        )
    figures = json.loads(lines[-1])
    if not figures.get("finished"):
        raise et.VerificationError(f"the app's run did not finish: {figures}")
    if figures.get("errors"):
        raise et.VerificationError(f"the app reported internal errors: {figures['errors']}")
    return AppRun(figures, done)


def benchmark(args: argparse.Namespace) -> list[str]:
    addresses = et.big_addresses(args.recipients)
    world = et.big_world()
    with tempfile.TemporaryDirectory(prefix="gui-bench-") as tmp, et.LabLoop() as lab:
        folder = Path(tmp)
        csv_path = et.write_recipients(folder / "recipients.csv", addresses)
        message = et.write_message(folder / "message.eml")
        lab.call(world.start())
        try:
            print(
                f"lab: {et.BIG_HOSTS} MX hosts on port {world.port}, {et.BIG_DOMAINS:,} "
                f"domains, DNS on {world.nameserver}; {len(addresses):,} recipients",
                flush=True,
            )
            campaign = et.Campaign(
                csv_path,
                message,
                folder / "cli.mxm",
                world.nameserver,
                world.port,
                et.BIG_CONCURRENCY,
                et.BIG_PER_DESTINATION,
            )
            cli = et.run_cli(campaign, len(addresses), CHILD_TIMEOUT)
            cli_span = sending_span(campaign.state)
            cli_received, _ = lab.call(et._received(world))
            et.verify_received(cli_received, addresses)
            print(f"CLI: {len(addresses) / cli_span:,.0f} msg/s over {cli_span:.1f} s", flush=True)
            lab.call(world.stop())
            world = et.big_world()  # fresh mailboxes for the app's run
            lab.call(world.start())
            app = run_app(folder, csv_path, message, world.nameserver, world.port)
            received, _ = lab.call(et._received(world))
        finally:
            lab.call(world.stop())
        et.verify_received(received, addresses)
        et.verify_campaign(Path(str(app.figures["state"])), len(addresses))
        app_span = sending_span(Path(str(app.figures["state"])))
    return render(len(addresses), cli, cli_span, app, app_span)


def render(
    rows: int, cli: et.Measured, cli_span: float, app: AppRun, app_span: float
) -> list[str]:
    cli_rate, app_rate = rows / cli_span, rows / app_span
    ratio = app_rate / cli_rate
    table_s = app.number("import_s") + app.number("open_s")
    rss_mib = (app.measured.rss_kib or 0) / 1024
    met = {
        "p99_ms": app.number("p99_ms") < BARS["p99_ms"],
        "max_ms": app.number("max_ms") < BARS["max_ms"],
        "ratio": ratio >= BARS["ratio"],
        "import_s": table_s < BARS["import_s"],
        "rss_mib": rss_mib < BARS["rss_mib"],
    }
    return [
        "## The window under load (`bench/gui_responsiveness.py`), "
        + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "",
        f"{rows:,} recipients over {et.BIG_DOMAINS:,} lab domains and {et.BIG_HOSTS} lab MX "
        f"hosts, {et.BIG_CONCURRENCY} connections, {et.BIG_PER_DESTINATION} per destination; "
        f"the app offscreen in its own process, a {PROBE_MS} ms QTimer probe on its loop. "
        f"{st.machine()}.",
        "",
        "| | figure | bar |",
        "|---|---:|---|",
        f"| event-loop lateness p50 | {app.number('p50_ms'):.1f} ms | |",
        f"| event-loop lateness p99 | {app.number('p99_ms'):.1f} ms | < 50 ms: "
        f"{et.verdict(met['p99_ms'])} |",
        f"| event-loop lateness max | {app.number('max_ms'):.1f} ms | < 200 ms: "
        f"{et.verdict(met['max_ms'])} |",
        f"| probe ticks during the run | {app.number('ticks'):,.0f} | |",
        f"| CLI rate (first to last attempt) | {cli_rate:,.0f} msg/s | |",
        f"| app rate (first to last attempt) | {app_rate:,.0f} msg/s | |",
        f"| app / CLI | {ratio:.2f}x | >= 0.5x: {et.verdict(met['ratio'])} |",
        f"| CSV import into a campaign file | {app.number('import_s'):.2f} s | |",
        f"| campaign opened in the table (every row) | {app.number('open_s'):.2f} s | |",
        f"| import + table | {table_s:.2f} s | < 3 s: {et.verdict(met['import_s'])} |",
        f"| app peak RSS | {rss_mib:,.0f} MiB | < 500 MB: {et.verdict(met['rss_mib'])} |",
        f"| CLI peak RSS | {(cli.rss_kib or 0) / 1024:,.0f} MiB | |",
        "",
        "Every message was checked in the lab's mailboxes: exactly one copy each, for both "
        "runs. Command: `.venv/bin/python bench/gui_responsiveness.py` (part of `make bench`).",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--recipients",
        type=st.positive,
        default=100_000,
        help=f"recipients over {et.BIG_DOMAINS} lab domains (default 100000)",
    )
    parser.add_argument("--no-docs", action="store_true", help="print only")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--folder", "--csv", "--message", "--nameserver-host"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    for name in ("--nameserver-port", "--port"):
        parser.add_argument(name, type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    if args.recipients < et.BIG_DOMAINS:
        print(f"--recipients must be at least {et.BIG_DOMAINS}", file=sys.stderr)
        return 2
    try:
        section = benchmark(args)
    except st.BenchError as error:
        print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
        return 1
    print()
    print("\n".join(section))
    if not args.no_docs:
        st.write_docs(section, begin=MARK_BEGIN, end=MARK_END)
        print(f"\nwrote {st.DOCS.relative_to(st.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
