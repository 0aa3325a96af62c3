"""``mxmailer send``: a campaign file made or resumed, run to the end, reported.

Exit codes: 0 every recipient delivered (rows on a suppression list were never to be
sent, so they do not count against it; invalid rows do: the list needs a look); 1
finished with some not delivered, or sending stopped because progress could not be saved
(a full disk, a campaign file turned read-only: stderr names the file and the problem;
nothing was sent unrecorded, and the same command resumes once it is fixed); 2 usage or
input errors, a campaign file that cannot be written included (a clear message on
stderr, nothing sent), or a --report that could not be written at the end (the campaign
file holds every result: the message says how to write the report again); 130
interrupted (state saved; running the same command again resumes).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from core import relay_cli
from core.connection import Timeouts
from core.dkim import DKIMError
from core.dns import MXResolver, parse_nameserver
from core.engine import Engine, EngineConfig
from core.events import EventBus
from core.outgoing import (
    DKIM_DOMAIN,
    DKIM_KEY,
    DKIM_SELECTOR,
    LIST_UNSUBSCRIBE_MAILTO,
    LIST_UNSUBSCRIBE_URL,
    SANDBOX,
    OutgoingMessages,
)
from core.progress import JSONLines, ProgressBar
from core.recipients import (
    ImportSummary,
    RecipientsError,
    parse_address,
    read_header,
    read_recipients,
)
from core.relay import CampaignRoute, campaign_route, with_route
from core.retry import RetryPolicy
from core.smtp import TLSPolicy, UnsafeArgumentError, commands
from core.store import CampaignStore, NewRecipient, Status, StoreError
from core.suppression import SuppressionList
from core.template import TemplateError, describe

EXIT_DELIVERED, EXIT_UNDELIVERED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_STARTTLS = {
    "opportunistic": TLSPolicy.MAY,
    "require": TLSPolicy.REQUIRE,
    "off": TLSPolicy.OFF,
}


class UsageError(Exception):
    """Bad arguments or inputs: reported on stderr, exit 2, nothing sent."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipients", type=Path, help="CSV with an email column")
    parser.add_argument(
        "--encoding", help="the CSV's text encoding (default: detected, e.g. utf-8, cp1252)"
    )
    parser.add_argument(
        "--delimiter", help="the CSV's delimiter: comma, semicolon, tab, pipe (default: detected)"
    )
    parser.add_argument(
        "--address-column",
        metavar="NAME|INDEX",
        help="the column holding addresses, by header or 0-based index (default: found by name)",
    )
    parser.add_argument(
        "--suppression",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="addresses and @domains never to send to (repeatable); matches are 'suppressed'",
    )
    parser.add_argument("--message", type=Path, help="the message as .eml, {{column}} merged")
    parser.add_argument("--sender", help="envelope sender (MAIL FROM)")
    parser.add_argument("--helo", help="name sent in EHLO (default: the sender's domain)")
    parser.add_argument(
        "--nameserver",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="DNS server to ask (repeatable); default: the system's",
    )
    parser.add_argument("--port", type=int, default=25, help="the MX servers' port")
    parser.add_argument("--state", type=Path, help="campaign file; resumed if it exists")
    parser.add_argument("--report", type=Path, help="write a CSV report here at the end")
    parser.add_argument("--concurrency", type=int, default=100, help="connections in all")
    parser.add_argument(
        "--per-destination", type=int, default=5, help="connections per MX host set/provider"
    )
    parser.add_argument(
        "--greylist-retry",
        type=float,
        metavar="SECONDS",
        help="first retry after greylisting when the server gives no hint (default ~330 s)",
    )
    parser.add_argument(
        "--retry",
        type=float,
        metavar="SECONDS",
        help="first backoff step after other transient failures (default 300 s)",
    )
    parser.add_argument(
        "--lifetime", type=float, metavar="SECONDS", help="give up after (default 5 days)"
    )
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="cap on every network timeout"
    )
    parser.add_argument(
        "--rate",
        type=float,
        metavar="PER_MINUTE",
        help="messages per minute per mailbox provider (default: no pacing)",
    )
    parser.add_argument(
        "--list-unsubscribe-mailto",
        metavar="ADDRESS",
        help="List-Unsubscribe by mail: an address or mailto: URL ({{fields}} allowed)",
    )
    parser.add_argument(
        "--list-unsubscribe-url",
        metavar="URL",
        help="one-click unsubscribe (RFC 8058): an https URL receiving a POST, "
        "e.g. https://example.com/u?e={{email}}",
    )
    parser.add_argument("--dkim-key", type=Path, metavar="FILE", help="DKIM private key (PEM)")
    parser.add_argument("--dkim-selector", metavar="NAME", help="DKIM selector (with --dkim-key)")
    parser.add_argument(
        "--dkim-domain", metavar="DOMAIN", help="DKIM signing domain (default: the sender's)"
    )
    parser.add_argument("--starttls", choices=sorted(_STARTTLS), default="opportunistic")
    relay_cli.add_arguments(parser)
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default=None)


@dataclass(frozen=True, slots=True)
class _Inputs:
    store: CampaignStore
    config: EngineConfig
    total: int


def run(args: argparse.Namespace) -> int:
    try:
        inputs = _prepare(args)
    except (UsageError, StoreError, RecipientsError, TemplateError, DKIMError) as error:
        print(f"mxmailer send: {error}", file=sys.stderr)
        return EXIT_USAGE
    with inputs.store as store:
        try:
            interrupted = asyncio.run(_run_engine(store, inputs, args.progress))
        except StoreError as error:
            print(
                f"mxmailer send: sending stopped, because progress could not be saved: {error}",
                file=sys.stderr,
            )
            return EXIT_UNDELIVERED
        if args.report is not None:
            try:
                rows = store.export_report(args.report)
            except StoreError as error:  # the mail went out; the results are all saved
                print(
                    f"mxmailer send: {error}. Every result is in the campaign file: write the"
                    f" report with mxmailer send --state {store.path} --report FILE",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            print(f"report: {rows} rows written to {args.report}", file=sys.stderr)
        counts = store.counts()
    if interrupted:
        print("interrupted: state saved; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    not_delivered = sum(
        n for status, n in counts.items() if status not in (Status.DELIVERED, Status.SUPPRESSED)
    )
    return EXIT_UNDELIVERED if not_delivered else EXIT_DELIVERED


async def _run_engine(store: CampaignStore, inputs: _Inputs, progress: str | None) -> bool:
    bus = EventBus()
    view = _progress_view(progress, inputs.total)
    if view is not None:
        bus.subscribe(view, per_recipient=view.per_recipient)
    engine = Engine(store, inputs.config, bus)
    loop = asyncio.get_running_loop()
    interrupted = False

    def on_interrupt() -> None:
        nonlocal interrupted
        if interrupted:  # a second Ctrl-C: cut the connections, settle who was in flight
            engine.abort()
            return
        interrupted = True
        print(
            "\nstopping: finishing messages in flight (Ctrl-C again to cut them)", file=sys.stderr
        )
        engine.stop()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        await engine.run()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if view is not None:
            view.close()
    return interrupted


def _progress_view(progress: str | None, total: int) -> ProgressBar | JSONLines | None:
    if progress is None:
        progress = "bar" if sys.stderr.isatty() else "none"
    if progress == "bar":
        return ProgressBar(total)
    if progress == "jsonl":
        return JSONLines()
    return None


def _prepare(args: argparse.Namespace) -> _Inputs:
    try:
        relay_cli.check(args)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.state is not None and args.state.exists():
        store, recovery = CampaignStore.open(args.state)
        if recovery.ambiguous:
            print(
                f"resumed: {recovery.ambiguous} recipient(s) possibly delivered before the "
                "interruption are not sent again (reported as such)",
                file=sys.stderr,
            )
        ignored = [
            flag
            for flag, value in (
                ("--recipients", args.recipients),
                ("--message", args.message),
                ("--sender", args.sender),
                ("--list-unsubscribe-mailto", args.list_unsubscribe_mailto),
                ("--list-unsubscribe-url", args.list_unsubscribe_url),
                ("--dkim-key", args.dkim_key),
                ("--dkim-selector", args.dkim_selector),
                ("--dkim-domain", args.dkim_domain),
                ("--encoding", args.encoding),
                ("--delimiter", args.delimiter),
                ("--address-column", args.address_column),
            )
            if value is not None
        ]
        if ignored:
            print(
                f"resuming {args.state}: {', '.join(ignored)} ignored (the campaign file "
                "holds them)",
                file=sys.stderr,
            )
        try:
            if args.relay and store.settings.get(SANDBOX) is True:
                raise _sandbox_refused(args.state)  # before a relay password is asked for
            helo = args.helo or str(store.settings.get("helo", ""))
            stored = _stored_route(args, store)
            # With nothing left to send, the stored relays' password is not needed (a
            # report written again, on a machine without it).
            pending = any(n for status, n in store.counts().items() if not status.final)
            config = _engine_config(args, helo, store.sender, stored=stored, login=pending)
            _check_sandbox(args.state, store, config)
            _check_nameservers(config)
            OutgoingMessages(store.message, store.settings)  # the DKIM key is still usable
            route = CampaignRoute.of(config.relay)
            if stored is not None and not (args.relay or args.direct):
                route = stored  # kept as stored (a run without its login included)
            settings = store.settings
            if args.helo:
                settings["helo"] = config.helo
            if settings.get(SANDBOX) is not True:  # a sandbox campaign only goes to a lab
                settings = with_route(settings, route)
            if settings != store.settings:
                store.set_settings(settings)
            note = relay_cli.route_note(args, stored, route)
            if note is not None:
                print(note, file=sys.stderr)
            if args.suppression:
                suppressed = suppress_pending(store, SuppressionList.load(*args.suppression))
                print(
                    f"resuming {args.state}: {suppressed} recipient(s) not yet delivered are "
                    "on the suppression list and will not be sent",
                    file=sys.stderr,
                )
        except (UsageError, StoreError, TemplateError, DKIMError, RecipientsError):
            store.close()
            raise
        return _Inputs(store, config, sum(store.counts().values()))
    missing = [
        flag
        for flag, value in (
            ("--recipients", args.recipients),
            ("--message", args.message),
            ("--sender", args.sender),
        )
        if value is None
    ]
    if missing:
        raise UsageError(f"{', '.join(missing)} required for a new campaign")
    sender = _check_sender(args.sender)
    helo = args.helo or sender.rpartition("@")[2]
    config = _engine_config(args, helo, sender)
    source = _RecipientsSource.from_args(args)
    _check_nameservers(config)
    if source.suppression is not None and source.suppression.rejected:
        first = source.suppression.rejected[0]
        print(
            f"suppression list: {len(source.suppression.rejected)} line(s) ignored, not an "
            f"address or @domain (first: line {first.line} {first.entry!r}: {first.reason})",
            file=sys.stderr,
        )
    settings = with_route(
        {"helo": helo, **_message_settings(args, sender)}, CampaignRoute.of(config.relay)
    )
    message = _read_message(args.message, source, settings)
    path = args.state or _temporary_state()
    summary = ImportSummary()
    _import(path, sender, message, settings, source, summary)
    store, _ = CampaignStore.open(path)
    print(summary.describe(), file=sys.stderr)
    return _Inputs(store, config, summary.valid + summary.invalid + summary.suppressed)


def _stored_route(args: argparse.Namespace, store: CampaignStore) -> CampaignRoute | None:
    """The route the campaign file remembers (None: none). One it cannot read is refused
    unless --relay or --direct replaces it: it must not silently become direct."""
    try:
        return campaign_route(store.settings)
    except ValueError as error:
        if args.relay or args.direct:
            return None
        raise UsageError(
            f"{error}: give --relay to send it through relays, or --direct to send to "
            "the recipients' own MX hosts"
        ) from error


def _check_sandbox(path: Path, store: CampaignStore, config: EngineConfig) -> None:
    """A campaign made in the window's sandbox (perhaps from a real list, with the demo
    message) goes only to a lab: every nameserver on loopback, no relay."""
    if store.settings.get(SANDBOX) is not True:
        return
    to_lab = bool(config.nameservers) and all(
        ipaddress.ip_address(host).is_loopback for host, _ in config.nameservers or ()
    )
    if config.relay is not None or not to_lab:
        raise _sandbox_refused(path)


def _sandbox_refused(path: Path) -> UsageError:
    return UsageError(
        f"{path} was made in the window's sandbox: it is only ever sent to a lab on "
        "this computer. Give --nameserver with the lab's loopback address (see "
        "mxmailer lab), or import the list again as a real campaign"
    )


def _check_nameservers(config: EngineConfig) -> None:
    """Refuse to start when no nameserver answers: every recipient would wait out its
    lifetime in DNS retries. Relay mode asks none: a relay is found by its name, not by
    MX lookups."""
    if config.relay is not None:
        return
    resolver = MXResolver(config.nameservers, timeout=config.dns_timeout)
    if asyncio.run(resolver.answers()):
        return
    if config.nameservers:
        asked = ", ".join(f"{host}:{port}" for host, port in config.nameservers)
        advice = "check the --nameserver address and port, and that the server runs"
    else:
        asked = "the system's nameservers (/etc/resolv.conf)"
        advice = "check the network connection, or give one with --nameserver"
    raise UsageError(
        f"{asked} did not answer a DNS query within {config.dns_timeout:g} s: {advice}"
    )


def suppress_pending(store: CampaignStore, suppression: SuppressionList) -> int:
    """Mark the campaign's not-yet-final recipients that ``suppression`` lists as
    suppressed (an unsubscribe that arrived mid-campaign); returns how many."""
    matched = 0
    for state in store.pending():
        local = state.email.rpartition("@")[0]
        entry = suppression.lookup(f"{local.lower()}@{state.domain}", state.domain)
        if entry is None:
            continue
        reason = f"on the suppression list (entry {entry})"
        store.record(
            state.to_update(
                status=Status.SUPPRESSED, wait_reason="", next_attempt_at=None, reason=reason
            )
        )
        matched += 1
    store.flush()
    return matched


@dataclass(frozen=True, slots=True)
class _RecipientsSource:
    """The recipients file and how to read it, as the options say."""

    path: Path
    encoding: str | None
    delimiter: str | None
    address_column: str | int | None
    suppression: SuppressionList | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _RecipientsSource:
        column = args.address_column
        suppression = SuppressionList.load(*args.suppression) if args.suppression else None
        return cls(
            args.recipients,
            args.encoding,
            args.delimiter,
            int(column) if column is not None and column.isdigit() else column,
            suppression,
        )

    def fields(self) -> list[str]:
        return read_header(
            self.path,
            encoding=self.encoding,
            delimiter=self.delimiter,
            address_column=self.address_column,
        )

    def rows(self, summary: ImportSummary) -> Iterator[NewRecipient]:
        return read_recipients(
            self.path,
            summary,
            encoding=self.encoding,
            delimiter=self.delimiter,
            address_column=self.address_column,
            suppression=self.suppression,
        )


def _import(
    path: Path,
    sender: str,
    message: bytes,
    settings: dict[str, object],
    source: _RecipientsSource,
    summary: ImportSummary,
) -> None:
    """Build the campaign file under a temporary name and give it its name only once the
    import is complete: an interrupted import must not look like a campaign to resume."""
    partial = path.with_name(path.name + ".importing")
    for leftover in (partial, *_sqlite_companions(partial)):
        leftover.unlink(missing_ok=True)
    try:
        with CampaignStore.create(
            partial, sender=sender, message=message, settings=settings
        ) as store:
            store.add_recipients(source.rows(summary))
        partial.replace(path)
    except BaseException:
        for leftover in (partial, *_sqlite_companions(partial)):
            leftover.unlink(missing_ok=True)
        raise


def _sqlite_companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def _check_sender(sender: str) -> str:
    try:
        address, _ = parse_address(sender)
        commands.mail_from(address)
    except (ValueError, UnsafeArgumentError) as error:
        raise UsageError(
            f"--sender {sender!r}: {error}: give the full address the campaign is sent "
            "from, e.g. news@example.com"
        ) from error
    return address


def _message_settings(args: argparse.Namespace, sender: str) -> dict[str, object]:
    """The campaign settings that shape each message: List-Unsubscribe and DKIM."""
    settings: dict[str, object] = {}
    if args.list_unsubscribe_mailto:
        settings[LIST_UNSUBSCRIBE_MAILTO] = args.list_unsubscribe_mailto
    if args.list_unsubscribe_url:
        if not args.list_unsubscribe_url.lower().startswith("https://"):
            raise UsageError("--list-unsubscribe-url must be an https:// URL (RFC 8058)")
        settings[LIST_UNSUBSCRIBE_URL] = args.list_unsubscribe_url
    if args.dkim_key is None:
        if args.dkim_selector or args.dkim_domain:
            raise UsageError("--dkim-selector and --dkim-domain need --dkim-key")
        return settings
    if not args.dkim_selector:
        raise UsageError("--dkim-key needs --dkim-selector (the name under _domainkey)")
    settings[DKIM_KEY] = str(args.dkim_key.resolve())
    settings[DKIM_SELECTOR] = args.dkim_selector
    settings[DKIM_DOMAIN] = args.dkim_domain or sender.rpartition("@")[2]
    return settings


def _read_message(
    path: Path, recipients: _RecipientsSource, settings: Mapping[str, object]
) -> bytes:
    """The .eml's bytes, once the template, its fields and the DKIM key are known good."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read the message {path}: {error.strerror}") from error
    messages = OutgoingMessages(raw, settings)
    columns = recipients.fields()
    unknown = messages.template.unknown_fields(columns)
    if unknown:
        raise UsageError(
            f"the message uses fields no column provides: {', '.join(unknown)} "
            f"(columns: {', '.join(sorted(columns))})"
        )
    if messages.signer is not None:
        sample = describe(messages.template.preview({}, to="preview@example.test").data)
        from_domain = parseaddr(sample.header("From") or "")[1].rpartition("@")[2]
        for warning in (*messages.signer.warnings, messages.signer.check_alignment(from_domain)):
            if warning:
                print(f"DKIM: {warning}", file=sys.stderr)
    return raw


def _engine_config(
    args: argparse.Namespace,
    helo: str,
    sender: str,
    *,
    stored: CampaignRoute | None = None,
    login: bool = True,
) -> EngineConfig:
    """The engine's settings from the options; a resumed campaign's route from
    ``stored`` unless --relay or --direct replaces it (see :func:`relay_cli.relay_config`)."""
    try:
        commands.ehlo(helo or sender.rpartition("@")[2])
    except UnsafeArgumentError as error:
        raise UsageError(
            f"--helo {error.value!r}: a HELO name is one DNS name, without spaces or line "
            "breaks: give this machine's public host name, e.g. mail.example.com"
        ) from error
    try:
        nameservers = tuple(parse_nameserver(text) for text in args.nameserver) or None
    except ValueError as error:
        raise UsageError(f"--nameserver: {error}") from error
    for flag, value in (
        ("--concurrency", args.concurrency),
        ("--per-destination", args.per_destination),
    ):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1")
    if not 0 < args.port < 65536:
        raise UsageError("--port must be 1..65535")
    if args.rate is not None and args.rate <= 0:
        raise UsageError("--rate must be positive")
    retry = RetryPolicy()
    changes: dict[str, float] = {}
    if args.greylist_retry is not None:
        changes |= {
            "greylist_first": args.greylist_retry,
            "greylist_jitter": args.greylist_retry * 0.25,
            "hint_min": min(retry.hint_min, args.greylist_retry),
        }
    if args.retry is not None:
        changes |= {
            "backoff_first": args.retry,
            "backoff_max": max(args.retry, min(retry.backoff_max, args.retry * 12)),
        }
    if args.lifetime is not None:
        changes["lifetime"] = args.lifetime
    if any(value < 0 for value in changes.values()):
        raise UsageError("retry delays and the lifetime cannot be negative")
    timeouts = Timeouts()
    dns_timeout = 5.0
    if args.timeout is not None:
        if args.timeout <= 0:
            raise UsageError("--timeout must be positive")
        timeouts = _capped(timeouts, args.timeout)
        dns_timeout = min(dns_timeout, args.timeout)
    try:
        relay = relay_cli.relay_config(args, stored, login=login)
    except ValueError as error:
        raise UsageError(str(error)) from error
    return EngineConfig(
        relay=relay,
        helo=helo or sender.rpartition("@")[2],
        port=args.port,
        nameservers=nameservers,
        concurrency=args.concurrency,
        per_destination=args.per_destination,
        tls=_STARTTLS[args.starttls],
        timeouts=timeouts,
        retry=_replace(retry, changes),
        dns_timeout=dns_timeout,
        rate=args.rate,
    )


def _capped(timeouts: Timeouts, cap: float) -> Timeouts:
    return dataclasses.replace(
        timeouts,
        **{
            f.name: min(getattr(timeouts, f.name), cap)
            for f in dataclasses.fields(timeouts)
            if f.name != "session"  # the watchdog of a whole connection, not one wait
        },
    )


def _replace(retry: RetryPolicy, changes: dict[str, float]) -> RetryPolicy:
    return dataclasses.replace(retry, **changes)


def _temporary_state() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mxmailer-"))
    return folder / "campaign.mxm"
