"""A soak: ``mxmailer send`` against a hostile lab world, and the figures that say whether
any recipient was lost, sent twice or left hanging.

:func:`run_soak` writes a recipients CSV and a message, starts the world of
:mod:`core.lab.hostile_world` in a child process (:class:`~core.lab.soak_lab.LabProcess`),
and runs ``mxmailer send`` in *this* process, through the same entry point as the
command line (real sockets, the lab's DNS, a campaign file on disk, its CSV report), so
that its peak memory and its file descriptors before and after are the sender's own. A
watchdog interrupts the send (as Ctrl-C would, then a second time to cut connections) if
it outlives its timeout. :func:`figures` then sets what the campaign file reports and
what the lab accepted against what the world's script says should happen. Nothing here
hard-codes an outcome: every expectation comes from the script.
"""

from __future__ import annotations

import csv
import gc
import os
import resource
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core import cli
from core.lab.hostile_world import Expect, HostileScript, Kind, Pace, hostile_script
from core.lab.soak_lab import LabProcess, LabRecord
from core.store import CampaignStore, Status

SENDER = "soak@sender.test"
MESSAGE = b"From: Soak <soak@sender.test>\nSubject: Soak for {{name}}\n\nHello {{name}}.\n"
#: Seconds between the watchdog's first interrupt (finish what is in flight) and its
#: second (cut the connections).
GRACE = 30.0


@dataclass(frozen=True, slots=True)
class SoakOptions:
    """The size of a soak, its seed, and every clock of the run."""

    recipients: int = 100_000
    domains: int = 1_000
    seed: int = 1
    #: Seconds the send may take before the watchdog stops it.
    timeout: float = 900.0
    pace: Pace = field(default_factory=Pace)
    #: The sender's options (see ``mxmailer send --help``): a cap on every network wait,
    #: the first retry after greylisting without a hint and after other failures, and how
    #: long a recipient may be retried at all. The cap is what each tarpit costs; at 1 s a
    #: lab busy with 100 connections on a loaded machine sometimes answered an end of data
    #: later than that, and the sender rightly called the message possibly delivered.
    network_timeout: float = 5.0
    greylist_retry: float = 0.5
    retry: float = 0.5
    lifetime: float = 600.0
    concurrency: int = 100
    per_destination: int = 5


@dataclass(frozen=True, slots=True)
class Row:
    """One recipient as the campaign file has it at the end."""

    status: Status
    code: int | None
    text: str
    mx: str
    attempts: int


@dataclass(frozen=True, slots=True)
class SoakRun:
    """What one soak produced: the sender's report and measures, and the lab's record."""

    options: SoakOptions
    script: HostileScript
    rows: dict[str, Row]
    record: LabRecord
    exit_code: int
    #: The watchdog had to interrupt the send.
    interrupted: bool
    wall: float
    #: This process's peak RSS before the send (the script and the CSV written) and after.
    rss_before_kib: int
    peak_rss_kib: int
    fds_before: int
    fds_after: int


def run_soak(options: SoakOptions, folder: Path) -> SoakRun:
    """Run one soak in ``folder`` (its CSV, message, campaign file and report stay there)."""
    script = hostile_script(options.recipients, options.domains, options.seed, options.pace)
    recipients = _write_recipients(folder / "recipients.csv", script)
    message = folder / "message.eml"
    message.write_bytes(MESSAGE)
    report = folder / "report.csv"
    state = folder / "campaign.mxm"
    lab_life = options.timeout + 2 * GRACE + 120.0
    with LabProcess(
        options.recipients, options.domains, options.seed, options.pace, lab_life
    ) as lab:
        argv = _send_argv(options, recipients, message, state, report, lab)
        rss_before = peak_rss_kib()
        gc.collect()  # what earlier work left unreachable closes its files now, not mid-count
        fds_before = open_fds()
        started = time.monotonic()
        exit_code, interrupted = _send(argv, options.timeout)
        wall = time.monotonic() - started
        gc.collect()
        fds_after = open_fds()
        peak = peak_rss_kib()
        record = lab.record()
    return SoakRun(
        options,
        script,
        read_rows(state),
        record,
        exit_code,
        interrupted,
        wall,
        rss_before,
        peak,
        fds_before,
        fds_after,
    )


def peak_rss_kib() -> int:
    """This process's peak RSS so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def open_fds() -> int:
    """File descriptors this process has open now."""
    return len(os.listdir("/proc/self/fd"))


def _write_recipients(path: Path, script: HostileScript) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows([address, address.partition("@")[0]] for address in script.recipients)
    return path


def _send_argv(
    options: SoakOptions,
    recipients: Path,
    message: Path,
    state: Path,
    report: Path,
    lab: LabProcess,
) -> list[str]:
    return [
        "send", "--recipients", str(recipients), "--message", str(message),
        "--sender", SENDER, "--state", str(state), "--report", str(report),
        "--nameserver", lab.nameserver, "--port", str(lab.port),
        "--timeout", str(options.network_timeout),
        "--greylist-retry", str(options.greylist_retry), "--retry", str(options.retry),
        "--lifetime", str(options.lifetime),
        "--concurrency", str(options.concurrency),
        "--per-destination", str(options.per_destination),
        "--progress", "none",
    ]  # fmt: skip


def _send(argv: list[str], timeout: float) -> tuple[int, bool]:
    """``mxmailer ARGV`` in this process, interrupted (like Ctrl-C) after ``timeout`` s and
    again ``GRACE`` s later; returns its exit code and whether it had to be interrupted."""
    done = threading.Event()
    fired: list[float] = []

    def interrupt() -> None:
        if not done.is_set():
            fired.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    timers = [threading.Timer(timeout, interrupt), threading.Timer(timeout + GRACE, interrupt)]
    for timer in timers:
        timer.daemon = True
        timer.start()
    try:
        code = cli.main(argv)
    except KeyboardInterrupt:  # outside the engine's run: no handler of its own there
        code = 130
    finally:
        done.set()
        for timer in timers:
            timer.cancel()
    return code, bool(fired)


def read_rows(state: Path) -> dict[str, Row]:
    """The campaign file's rows by recipient (lower case); empty if there is no file.

    Read from the file rather than the CSV report, whose status column folds "possibly
    delivered" into "deferred" for the user's spreadsheet."""
    if not state.exists():
        return {}
    store, _ = CampaignStore.open(state, read_only=True)
    with store:
        return {
            s.email.lower(): Row(s.status, s.code, s.text, s.mx, s.attempts) for s in store.states()
        }


# ---- the figures ---------------------------------------------------------------------------


def outcome(row: Row | None) -> str:
    """A reported row in the words of :class:`Expect` (or what else it was)."""
    if row is None:
        return "not in the report"
    if row.status is Status.DELIVERED:
        return Expect.DELIVERED.value
    if row.status is Status.AMBIGUOUS:
        return Expect.AMBIGUOUS.value
    if row.status is Status.BOUNCED and row.code == 550:
        return Expect.UNKNOWN_USER.value
    if row.status is Status.BOUNCED and not row.mx and "null MX" in row.text:
        return Expect.NULL_MX.value
    return f"{row.status.value}: {row.code or ''} {row.text}".strip()


@dataclass(slots=True)
class Figures:
    """The soak's result: each figure, and every way it fell short (``problems``)."""

    recipients: int = 0
    final: int = 0
    stuck: int = 0
    #: Recipients per expected end (by the script) and per reported end.
    expected: Counter[str] = field(default_factory=Counter)
    reported: Counter[str] = field(default_factory=Counter)
    #: Recipients whose reported end is not the one the script expects.
    mismatched: dict[str, str] = field(default_factory=dict)
    #: Lab mailboxes: messages accepted, copies beyond the first, accepted copies for
    #: addresses not in the campaign, deliverable recipients with no copy, reported
    #: delivered without a copy.
    accepted: int = 0
    duplicates: int = 0
    stray: int = 0
    missing: int = 0
    delivered_unseen: int = 0
    #: Ends of data the lab left unanswered on purpose, and those that were resent anyway.
    unanswered: int = 0
    resent: int = 0
    servfail_healed: int = 0
    servfail_domains: int = 0
    #: Per misbehaviour: (cases where the run shows it was met, cases scripted). A soak
    #: whose lab did not misbehave proves nothing.
    met: dict[str, tuple[int, int]] = field(default_factory=dict)
    lab_connections_open: int = 0
    problems: list[str] = field(default_factory=list)


def figures(run: SoakRun) -> Figures:
    """Everything the soak shows, checked against the script."""
    script, rows, record = run.script, run.rows, run.record
    f = Figures(recipients=len(script.recipients))
    expected = script.expected()
    for address, expect in expected.items():
        row = rows.get(address)
        got = outcome(row)
        f.expected[expect.value] += 1
        f.reported[got] += 1
        if row is not None and row.status.final:
            f.final += 1
        if got != expect.value:
            f.mismatched[address] = got
    f.stuck = f.recipients - f.final
    campaign = set(expected)
    f.accepted = sum(record.accepted.values())
    f.duplicates = sum(n - 1 for n in record.accepted.values() if n > 1)
    f.stray = sum(n for a, n in record.accepted.items() if a not in campaign)
    deliverable = [a for a, e in expected.items() if e is Expect.DELIVERED]
    f.missing = sum(1 for a in deliverable if a not in record.accepted)
    f.delivered_unseen = sum(
        1 for a, row in rows.items() if row.status is Status.DELIVERED and a not in record.accepted
    )
    f.unanswered = sum(record.unanswered.values())
    f.resent = sum(1 for a in record.unanswered if a in record.accepted)
    f.servfail_domains = len(script.domains(Kind.SERVFAIL))
    f.servfail_healed = sum(
        1
        for domain in script.domains(Kind.SERVFAIL)
        if record.mx_queries.get(domain, 0) > script.pace.servfail_times
        and all(
            expected[a] is not Expect.DELIVERED or a in record.accepted
            for a in script.recipients_of(domain)
        )
    )
    f.lab_connections_open = record.active
    f.met = _met(run)
    f.problems = _problems(run, f)
    return f


def _met(run: SoakRun) -> dict[str, tuple[int, int]]:
    """Evidence that each scripted misbehaviour happened: retried recipients, connections
    the lab counted, MX queries past the failing ones."""
    script, rows, record, pace = run.script, run.rows, run.record, run.script.pace

    def retried(addresses: Iterable[str]) -> tuple[int, int]:
        chosen = list(addresses)
        return sum(1 for a in chosen if a in rows and rows[a].attempts >= 2), len(chosen)

    def hosts(kind: Kind, name: str, least: int) -> tuple[int, int]:
        domains = script.domains(kind)
        met = sum(1 for d in domains if record.connections.get(name.format(d), 0) >= least)
        return met, len(domains)

    def greylisted(kind: Kind) -> tuple[int, int]:
        return retried(a for d in script.domains(kind) for a in script.recipients_of(d))

    return {
        Kind.GREYLIST_HINT.value: greylisted(Kind.GREYLIST_HINT),
        Kind.GREYLIST_SILENT.value: greylisted(Kind.GREYLIST_SILENT),
        Kind.TARPIT.value: hosts(Kind.TARPIT, "mx-tarpit.{}", 1),
        Kind.GREETING_421.value: hosts(Kind.GREETING_421, "mx.{}", pace.greeting_421_times + 1),
        Kind.SERVFAIL.value: (
            sum(
                1
                for d in script.domains(Kind.SERVFAIL)
                if record.mx_queries.get(d, 0) > pace.servfail_times
            ),
            len(script.domains(Kind.SERVFAIL)),
        ),
        "hung up on before the body, then retried": retried(script.hung_up_before_body),
    }


def _problems(run: SoakRun, f: Figures) -> list[str]:
    script, record = run.script, run.record
    problems = []
    if run.interrupted:
        problems.append(f"the send outlived its {run.options.timeout:g} s and was interrupted")
    if f.stuck:
        problems.append(f"{f.stuck} recipient(s) not final")
    if f.mismatched:
        sample = ", ".join(f"{a}: {got}" for a, got in list(f.mismatched.items())[:5])
        problems.append(
            f"{len(f.mismatched)} recipient(s) ended otherwise than scripted (e.g. {sample})"
        )
    for count, what in (
        (f.duplicates, "duplicate copies in the lab's mailboxes"),
        (f.stray, "copies for addresses not in the campaign"),
        (f.missing, "deliverable recipient(s) missing from the lab's mailboxes"),
        (f.delivered_unseen, "reported delivered, but the lab has no copy"),
        (f.resent, "unanswered end(s) of data resent"),
        (f.lab_connections_open, "lab connection(s) still open after the send"),
    ):
        if count:
            problems.append(f"{count} {what}")
    unanswered = set(record.unanswered)
    if unanswered != script.hung_up_after_body:
        problems.append(
            f"the lab left {len(unanswered)} end(s) of data unanswered, the script "
            f"{len(script.hung_up_after_body)}"
        )
    if f.servfail_healed != f.servfail_domains:
        problems.append(
            f"{f.servfail_domains - f.servfail_healed} SERVFAIL domain(s) not "
            "delivered after healing"
        )
    for what, (met, scripted) in f.met.items():
        if met != scripted:
            problems.append(f"{what}: shown in {met} of {scripted} scripted case(s)")
    if run.fds_after != run.fds_before:
        problems.append(f"open file descriptors {run.fds_before} before, {run.fds_after} after")
    return problems


def describe(run: SoakRun, f: Figures) -> list[str]:
    """The figures as lines for a person to read."""
    o = run.options
    lines = [
        f"soak: {f.recipients:,} recipients over {o.domains:,} domains, seed {o.seed}",
        f"  world: {_world_summary(run.script)}",
        f"  recipients final: {f.final:,}; stuck: {f.stuck:,}",
        "  expected vs reported, per end:",
    ]
    for name in sorted(set(f.expected) | set(f.reported)):
        lines.append(f"    {name:<45} {f.expected[name]:>8,} {f.reported[name]:>8,}")
    lines += [
        f"  lab mailboxes: {f.accepted:,} accepted; duplicates {f.duplicates}; missing "
        f"{f.missing}; stray {f.stray}; reported delivered but not there {f.delivered_unseen}",
        f"  ends of data left unanswered by the lab: {f.unanswered} (resent: {f.resent})",
        f"  SERVFAIL domains delivered after healing: {f.servfail_healed}/{f.servfail_domains}",
        "  misbehaviour met (shown/scripted): "
        + "; ".join(f"{what} {met}/{scripted}" for what, (met, scripted) in f.met.items()),
        f"  lab connections still open: {f.lab_connections_open}",
        f"  mxmailer send: exit {run.exit_code}, wall {run.wall:.1f} s, peak RSS "
        f"{run.peak_rss_kib / 1024:.1f} MiB ({run.rss_before_kib / 1024:.1f} MiB before the "
        f"send), open fds {run.fds_before} before / {run.fds_after} after",
        f"  result: {'PASS' if not f.problems else 'FAIL'}",
        *(f"  problem: {problem}" for problem in f.problems),
    ]
    return lines


def _world_summary(script: HostileScript) -> str:
    counts = Counter(script.kinds.values())
    parts = [f"{counts[kind]} {kind.value}" for kind in Kind if counts[kind]]
    return (
        "; ".join(parts) + f"; {len(script.unknown):,} unknown users; hung up on before the body "
        f"{len(script.hung_up_before_body):,}, after it {len(script.hung_up_after_body):,}"
    )
