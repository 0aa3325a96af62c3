"""The delivery engine: who is sent next, over which connection, and what happens after.

It owns the run of a campaign (Postfix's qmgr): recipients due now go to their
destination's queue; connections pull from those queues (so a job is only taken by a
connection that is ready for it); results become store updates and events; greylisted
and deferred recipients wait on one timer heap without holding anyone else up. It never
parses SMTP (``core.connection`` talks), never builds SQL (``core.store`` remembers) and
never imports Qt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import heapq
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from core.connection import (
    ConnectionConfig,
    ConnectionReport,
    SMTPConnection,
    Target,
    Timeouts,
    Transcript,
)
from core.destinations import Destination, Destinations, Provider
from core.dns import MXHost, MXResolver, Route, RouteFailure
from core.events import (
    AttemptFinished,
    CampaignLog,
    Counters,
    DestinationPaused,
    EventBus,
    PhaseChanged,
    ProviderLoad,
    RecipientFinal,
    RecipientWaiting,
    SenderProblemReported,
)
from core.faults import RELAY_LOGIN, Fault, SenderProblem, classify_fault
from core.outgoing import OutgoingMessages
from core.relay import PROVIDER as RELAY_PROVIDER
from core.relay import RelayConfig, relay_hosts
from core.retry import RetryPolicy
from core.smtp import (
    BodyLineTooLongError,
    FailureKind,
    Outcome,
    Phase,
    RecipientResult,
    Reply,
    SessionConfig,
    TLSPolicy,
    Transaction,
)
from core.store import (
    AttemptLog,
    CampaignStore,
    RecipientState,
    RecipientUpdate,
    Status,
    StoreError,
)
from core.template import date_header, new_message_id

log = logging.getLogger(__name__)

#: How often queued store updates are committed (and final statuses announced).
FLUSH_INTERVAL = 0.2
#: Results queued that make a flush come sooner: a commit takes ~0.1 ms per result, and
#: a window on the same loop must not wait for a thousand at once (~70 ms measured).
FLUSH_BATCH = 250
#: Recipients loaded between two turns of the event loop at the start of a run: loading
#: 100,000 takes most of a second, which a window on the same loop must not freeze for.
LOAD_SLICE = 2_000
#: How long a host whose TLS handshake failed gets plaintext under opportunistic TLS.
TLS_BROKEN_FOR = 3600.0
#: Transcript lines kept with a failed attempt: the end of the conversation, where it failed.
TRANSCRIPT_LINES = 60
#: Domains resolved at once. Thousands of simultaneous queries overflow a resolver's (or
#: this machine's UDP) buffers, and every lost answer defers its domain's recipients.
DNS_LOOKUPS = 32
#: The delivery rate the counters show is over the last this many seconds.
RATE_WINDOW = 10.0


@dataclass(frozen=True, slots=True)
class EngineConfig:
    helo: str
    port: int = 25
    nameservers: tuple[tuple[str, int], ...] | None = None
    concurrency: int = 100
    per_destination: int = 5
    transactions_per_connection: int = 100
    max_mx_hosts: int = 5
    tls: TLSPolicy = TLSPolicy.MAY
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dns_timeout: float = 5.0
    #: How long a domain's routing is reused before the resolver is asked again (it
    #: answers from its own cache until the records' TTL runs out).
    route_refresh: float = 300.0
    #: Messages per minute per provider (None: as fast as the limits allow).
    rate: float | None = None
    #: Consecutive failed connections before a destination is paused.
    pause_after_failures: int = 3
    #: Relay mode: every recipient goes to these smarthosts, not to its domain's MX.
    relay: RelayConfig | None = None
    #: Publish each recipient's SMTP steps (mail, rcpt, data, end-of-data) as PhaseChanged,
    #: for a window that shows them; each is an event per step, which a command line that
    #: shows only counts need not pay for.
    smtp_phases: bool = False


@dataclass(slots=True, eq=False)
class Job:
    """One recipient while the engine works on it (the store row is the truth)."""

    id: int
    email: str
    domain: str
    fields: dict[str, str]
    status: Status
    attempts: int
    first_attempt_at: float | None
    message_id: str
    date_header: str
    greylist_mx: str
    greylistings: int = 0
    failures: int = 0
    next_attempt_at: float | None = None
    started_at: float = 0.0
    target: str = ""  # "mx.host.test [127.0.0.2]" of the last attempt
    address: str = ""  # its IP address
    last: tuple[int | None, str, str] = (None, "", "")  # code, enhanced, text
    transcript: str = ""  # of the last failed attempt, for its attempt log entry

    @property
    def rcpt(self) -> str:
        """The address for RCPT TO: the domain in its A-label (ASCII) form for DNS/SMTP."""
        local, _, _ = self.email.rpartition("@")
        return f"{local}@{self.domain}"

    @classmethod
    def from_state(cls, state: RecipientState) -> Job:
        return cls(
            state.id,
            state.email,
            state.domain,
            state.fields,
            state.status,
            state.attempts,
            state.first_attempt_at,
            state.message_id,
            state.date_header,
            state.greylist_mx,
            greylistings=1 if state.wait_reason == "greylisted" else 0,
            failures=1 if state.wait_reason == "deferred" else 0,
            next_attempt_at=state.next_attempt_at,
            last=(state.code, state.enhanced, state.text),
        )


@dataclass(slots=True)
class RunSummary:
    counts: dict[Status, int] = field(default_factory=dict)
    stopped: bool = False


class Engine:
    """Runs one campaign to the end (every recipient final) or until ``stop()``."""

    def __init__(
        self,
        store: CampaignStore,
        config: EngineConfig,
        events: EventBus | None = None,
        *,
        resolver: MXResolver | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.events = events or EventBus()
        self.clock = clock
        self.rng = rng or random.Random()
        self.resolver = resolver or MXResolver(
            config.nameservers, timeout=config.dns_timeout, rng=self.rng
        )
        self.messages = OutgoingMessages(store.message, store.settings)
        self.sender = store.sender
        self.destinations = Destinations(config.per_destination, rate=config.rate)
        self._connection_config = _connection_config(config)
        #: Relay mode: the relays as route hosts, once their names resolved.
        self._relay_hosts: tuple[MXHost, ...] = ()
        #: Relay mode: the lookup of the relays' names, shared by the domains routed
        #: while it runs (one lookup, one line per name that does not resolve).
        self._relay_lookup: asyncio.Task[None] | None = None
        self._timers: list[tuple[float, int, Job]] = []
        self._sequence = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._resolving: dict[str, list[Job]] = {}
        # Domain -> its destination and until when that routing is trusted. The resolver
        # caches by TTL too; this spares a lookup task per recipient on the hot path.
        self._routes: dict[str, tuple[Destination, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        self._unfinished = 0
        self._loading = False
        #: A flush due at once (FLUSH_BATCH results queued), until it has run.
        self._early_flush: asyncio.Handle | None = None
        self._waiting = 0
        self._paused = False
        self._stopping = False
        self._done: asyncio.Future[None] | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        #: When each recent delivery happened, oldest first: the rate over RATE_WINDOW.
        self._sent_times: deque[float] = deque()
        self._counts: dict[Status, int] = {}
        self._failure: StoreError | None = None
        #: End-of-data marks waiting for this turn's journal write: job id -> attempt.
        self._to_mark: dict[int, int] = {}
        self._resumes: list[Callable[[], None]] = []
        self._marked: set[int] = set()  # journaled, marker not yet handed out
        self._journal_scheduled = False
        self._tls_broken: dict[str, float] = {}  # host -> until when to skip STARTTLS
        self._dns_slots = asyncio.Semaphore(DNS_LOOKUPS)

    # ---- control ------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        """Run to the end. Raises :class:`StoreError` if progress could not be saved:
        sending stops at once then, since sending without recording could send twice."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        if self._stopping:  # stopped before it started
            self._done.set_result(None)
        self._counts = self.store.counts()
        try:
            self._loading = True
            try:
                await self._load()
            finally:
                self._loading = False
            # Everything alive now (the recipients just loaded, a window's rows) lives
            # about as long as the run: out of the collector's sight, a full collection no
            # longer walks it all (pauses of 60-200 ms at 30,000 recipients, measured, in
            # the loop a window shares). Process-wide, so undone when the run ends.
            gc.freeze()
            self._schedule_flush()
            if self._unfinished == 0 and not self._done.done():
                self._done.set_result(None)
            await self._done
        except BaseException:
            # A load that failed half-way (or a cancelled run): nothing new starts, and
            # what the slices already loaded have in flight finishes and is saved.
            self.stop()
            raise
        finally:
            gc.unfreeze()
            await self._wind_down()
        if self._failure is not None:
            raise self._failure
        counts = {status: n for status, n in self.store.counts().items() if n}
        return RunSummary(counts, self._stopping)

    async def _load(self) -> None:
        """Queue every unfinished recipient, a slice at a time: the first ones are being
        sent while the rest load, and the loop turns between slices. The run cannot end
        while loading (:attr:`_loading`), even if every recipient so far is final."""
        for number, state in enumerate(self.store.pending(), 1):
            if self._stopping:
                return
            job = Job.from_state(state)
            self._unfinished += 1
            if job.next_attempt_at is not None and job.next_attempt_at > self.clock():
                self._wait(job, job.next_attempt_at)
            else:
                self._dispatch(job)
            if number % LOAD_SLICE == 0:
                await asyncio.sleep(0)

    def pause(self) -> None:
        """Open no new connections; those open finish what they hold."""
        self._paused = True
        self.events.publish(CampaignLog("campaign paused"))

    def resume(self) -> None:
        self._paused = False
        self.events.publish(CampaignLog("campaign resumed"))
        self._kick_all()

    def stop(self) -> None:
        """Let transactions in flight finish; leave everything else queued; end ``run``."""
        self._stopping = True
        self.events.publish(CampaignLog("stopping: finishing messages in flight"))
        if self._done is not None and not self._done.done() and not self._tasks:
            self._done.set_result(None)

    def abort(self) -> None:
        """Stop now: connections are cut (their recipients settled honestly: not sent,
        or possibly delivered when the end of data was out) and ``run`` ends."""
        self.stop()
        for task in list(self._tasks):
            task.cancel()

    def _fail_run(self, error: StoreError) -> None:
        """Progress cannot be saved: stop sending now and let ``run`` raise."""
        if self._failure is None:
            self._failure = error
            self.events.publish(CampaignLog(f"sending stopped: {error}"))
        self.stop()

    def _record(self, update: RecipientUpdate) -> None:
        if self._failure is not None:
            return  # the store refuses writes now; run() reports why
        try:
            self.store.record(update)
        except StoreError as error:
            self._fail_run(error)
            return
        if self.store.queued_updates >= FLUSH_BATCH and self._early_flush is None:
            self._early_flush = asyncio.get_running_loop().call_soon(self._flush)

    # ---- scheduling ---------------------------------------------------------------------

    def _dispatch(self, job: Job) -> None:
        """A job is due: route it to its destination's queue (resolving first if needed)."""
        if self._stopping:
            return
        known = self._routes.get(job.domain)
        if known is not None and known[1] > self.clock():
            self._enqueue(known[0], job)
            return
        waiting = self._resolving.get(job.domain)
        if waiting is not None:
            waiting.append(job)
            return
        self._resolving[job.domain] = [job]
        if self.events.per_recipient:
            self.events.publish(PhaseChanged(job.id, "resolving"))
        self._spawn(self._resolve(job.domain))

    async def _resolve(self, domain: str) -> None:
        try:
            async with self._dns_slots:  # 1,000 domains must not flood the resolver
                if self.config.relay is not None:
                    result = await self._relay_route(self.config.relay, domain)
                else:
                    result = await self.resolver.route(domain)
        except Exception as error:  # the domain's jobs must not wait on a dead task
            log.exception("routing %s failed", domain)
            result = RouteFailure(domain, False, f"routing failed: {error}")
        jobs = self._resolving.pop(domain, [])
        if isinstance(result, RouteFailure):
            self.events.publish(CampaignLog(f"DNS for {domain}: {result.reason}"))
            for job in jobs:
                self._dns_failed(job, result)
            return
        provider = RELAY_PROVIDER if self.config.relay is not None else ""
        destination = self.destinations.for_route(result, provider)
        self._routes[domain] = (destination, self.clock() + self.config.route_refresh)
        for job in jobs:
            self._enqueue(destination, job)

    async def _relay_route(self, relay: RelayConfig, domain: str) -> Route | RouteFailure:
        """Relay mode: the same route for every domain, the relays in the order given.
        Their names are looked up by the first domain routed (again by the first after a
        failure); the domains routed meanwhile wait for that lookup."""
        if not self._relay_hosts:
            if self._relay_lookup is None or self._relay_lookup.done():
                self._relay_lookup = asyncio.ensure_future(self._look_up_relays(relay))
            # Shielded: one waiter cancelled must not cancel the lookup the others share.
            await asyncio.shield(self._relay_lookup)
            if not self._relay_hosts:
                return RouteFailure(domain, False, "no relay's name could be resolved")
        return Route(domain, self._relay_hosts, False)

    async def _look_up_relays(self, relay: RelayConfig) -> None:
        hosts, problems = await relay_hosts(relay)
        for problem in problems:
            self.events.publish(CampaignLog(problem))
        self._relay_hosts = hosts

    def _enqueue(self, destination: Destination, job: Job, *, front: bool = False) -> None:
        now = self.clock()
        if destination.paused(now):
            self._wait_for_pause(job, destination.resumes_at)
            return
        if front:
            destination.queue.appendleft(job)
        else:
            destination.queue.append(job)
            if self.events.per_recipient:
                self.events.publish(PhaseChanged(job.id, "queued"))
        self._kick(destination)

    def _kick(self, destination: Destination) -> None:
        """Open connections for a destination's queue: no more than it has jobs for (a
        job is taken only once a connection is ready, so the queue is what is left)."""
        now = self.clock()
        while (
            not self._paused
            and not self._stopping
            and self._active < self.config.concurrency
            and destination.active < len(destination.queue)
            and destination.can_open(now)
        ):
            destination.active += 1
            destination.provider.active += 1
            self._active += 1
            self._spawn(self._connect(destination))

    def _wake(self, provider: Provider) -> None:
        provider.wake_armed = False
        for destination in self.destinations:
            if destination.provider is provider:
                self._kick(destination)

    def _kick_all(self) -> None:
        for destination in self.destinations:
            self._kick(destination)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task failed", exc_info=task.exception())
            self.events.publish(CampaignLog(f"internal error: {task.exception()!r}"))
        if self._stopping and not self._tasks and self._done and not self._done.done():
            self._done.set_result(None)

    # ---- one connection, with failover --------------------------------------------------

    async def _connect(self, destination: Destination) -> None:
        """Walk the destination's MX hosts and addresses until one takes the queue."""
        try:
            head = destination.queue[0] if destination.queue else None
            prefer = head.greylist_mx if head else ""
            last_failure = ""
            served = False
            refused: Reply | None = None  # a relay's 5xx to our login
            # Relays: every one the user gave, in order; MX hosts: at most max_mx_hosts.
            most = len(destination.route.hosts) if self.config.relay else self.config.max_mx_hosts
            targets = destination.targets(most, self.rng, prefer)
            for host, address in targets:
                if not destination.queue or self._stopping:
                    served = True
                    break
                report, decided = await self._attempt(destination, host, address)
                if self._tls_broke(report, host):
                    # Opportunistic TLS whose handshake failed: plaintext, at once.
                    report, decided = await self._attempt(destination, host, address)
                if report.failure is None or decided:
                    served = True
                    if report.failure is not None and report.failure.reply is not None:
                        if report.failure.reply.code == 421:
                            self._struggled(destination, str(report.failure.reply))
                    else:
                        destination.succeeded()
                    break
                failure = report.failure
                last_failure = f"{host} [{address}]: {failure.detail or failure.reply or ''}"
                last_failure = last_failure.rstrip(": ")
                self.events.publish(CampaignLog(f"{failure.kind.value}: {last_failure}"))
                if failure.kind is FailureKind.AUTH and failure.reply is not None:
                    refused = failure.reply if failure.reply.code >= 500 else None
            if not served:
                if refused is not None:
                    self._login_refused(destination, str(refused))
                self._all_hosts_failed(destination, last_failure)
        finally:
            destination.active -= 1
            destination.provider.active -= 1
            self._active -= 1
            self._kick(destination)
            if self._active < self.config.concurrency:
                self._kick_all()

    async def _attempt(
        self, destination: Destination, host: str, address: str
    ) -> tuple[ConnectionReport, bool]:
        """One connection to one address: its report, and whether it decided anyone."""
        source = _QueueSource(self, destination, host, address)
        relay = self.config.relay.by_name(host) if self.config.relay is not None else None
        target = (
            Target(relay.host, address, relay.port)
            if relay is not None
            else Target(host, address, self.config.port)
        )
        connection = SMTPConnection(
            target,
            self._config_for(destination, host),
            source,
            source.on_result,
            on_end_of_data=self._on_end_of_data,
            on_phase=source.on_phase if self.config.smtp_phases else None,
        )
        source.transcript = connection.transcript
        try:
            report = await connection.run()
        finally:
            source.give_back()
        return report, source.decided

    def _tls_broke(self, report: ConnectionReport, host: str) -> bool:
        """Under opportunistic TLS, a failed handshake: remember the host as "TLS broken"
        for a while (Postfix does the same) and say that plaintext should be tried now."""
        failure = report.failure
        if (
            failure is None
            or failure.kind is not FailureKind.TLS
            or failure.phase is not Phase.TLS_HANDSHAKE
            or self._connection_config.session.tls is not TLSPolicy.MAY  # relays: REQUIRE
            or host in self._tls_broken
        ):
            return False
        self._tls_broken[host] = self.clock() + TLS_BROKEN_FOR
        self.events.publish(
            CampaignLog(f"{host}: TLS handshake failed ({failure.detail}); using plaintext")
        )
        return True

    def _config_for(self, destination: Destination, host: str) -> ConnectionConfig:
        """The connection settings: the provider's messages-per-connection rule, and
        plaintext for a host whose TLS is remembered as broken."""
        config = self._connection_config
        per_connection = destination.provider.messages_per_connection
        if per_connection is not None and per_connection < config.max_transactions:
            config = dataclasses.replace(config, max_transactions=per_connection)
        broken_until = self._tls_broken.get(host)
        if broken_until is not None:
            if broken_until > self.clock():
                plaintext = dataclasses.replace(config.session, tls=TLSPolicy.OFF)
                config = dataclasses.replace(config, session=plaintext)
            else:
                del self._tls_broken[host]
        return config

    def _all_hosts_failed(self, destination: Destination, why: str) -> None:
        """No host took a connection: each queued job counts an attempt (so that its
        lifetime runs out even if the destination never comes back), then waits for the
        pause this may start, or backs off."""
        now = self.clock()
        jobs = list(destination.queue)
        destination.queue.clear()  # taken before a pause would hold them uncounted
        self._struggled(destination, why)
        hosts = "relays" if self.config.relay is not None else "MX hosts"
        for job in jobs:
            job.attempts += 1
            job.first_attempt_at = job.first_attempt_at or now
            job.last = (None, "", f"all {hosts} failed: {why}")
            if destination.paused(now):
                self._wait_for_pause(job, destination.resumes_at)
            else:
                self._transient(job, None, reason="deferred")

    def _login_refused(self, destination: Destination, reply: str) -> None:
        """The relays refused the login for good (5xx): retrying the same password cannot
        help and trips lockouts, so the relays pause for the recipients' lifetime (they
        expire with the reply) and the user is told what to fix."""
        provider = destination.provider
        # Past any waiting recipient's lifetime (each began by now), so all end now.
        provider.paused_until = self.clock() + self.config.retry.lifetime + 1.0
        self.events.publish(
            SenderProblemReported(
                provider.name, RELAY_LOGIN.kind, RELAY_LOGIN.explanation, RELAY_LOGIN.fix, reply
            )
        )

    def _struggled(self, destination: Destination, why: str) -> None:
        destination.struggled()
        if destination.failures >= self.config.pause_after_failures or "421" in why:
            until = self.clock() + self.config.retry.backoff_first
            destination.paused_until = until
            self.events.publish(
                DestinationPaused(destination.key, destination.provider.name, why, until)
            )
            self._hold(destination)

    def _hold(self, destination: Destination) -> None:
        """A paused destination's queued jobs wait for the pause to end."""
        until = destination.resumes_at
        jobs = list(destination.queue)
        destination.queue.clear()
        for job in jobs:
            self._wait_for_pause(job, until)

    def _wait_for_pause(self, job: Job, until: float) -> None:
        """Wait for a paused destination, unless the lifetime is over by then."""
        first = job.first_attempt_at
        if first is not None and self.config.retry.expired(first, until):
            self._finish(job, Status.EXPIRED, None)
            return
        self._defer(job, until, "destination paused", record=True)

    # ---- results --------------------------------------------------------------------------

    def _on_end_of_data(self, transaction: Transaction, resume: Callable[[], None]) -> bool:
        """Record "possibly delivered" before the marker goes out (one journal write a
        loop turn: :mod:`core.eod_journal`).

        The first ask holds the marker and queues the job; one write at the end of this
        loop turn covers every connection that asked meanwhile, then resumes them, and the
        second ask lets the marker go. If the record cannot be saved, raise: the
        connection is cut and its marker is never written.
        """
        if self._failure is not None:
            raise self._failure
        job = transaction.tag
        assert isinstance(job, Job)
        if job.id in self._marked:
            self._marked.discard(job.id)
            if self.config.smtp_phases and self.events.per_recipient:
                self.events.publish(PhaseChanged(job.id, Phase.END_OF_DATA.value))
            return True
        self._to_mark[job.id] = job.attempts
        self._resumes.append(resume)
        if not self._journal_scheduled:
            self._journal_scheduled = True
            asyncio.get_running_loop().call_soon(self._journal_marks)
        return False

    def forget_mark(self, job: Job) -> None:
        """The job's attempt is over: a mark made or pending for it must not let a later
        attempt's marker out unrecorded, nor mark a message that never went out."""
        self._marked.discard(job.id)
        self._to_mark.pop(job.id, None)

    def _journal_marks(self) -> None:
        self._journal_scheduled = False
        marks, self._to_mark = self._to_mark, {}
        resumes, self._resumes = self._resumes, []
        if not marks:  # every connection that asked ended meanwhile
            return
        try:
            self.store.mark_end_of_data(list(marks.items()), self.clock())
            self._marked.update(marks)
        except StoreError as error:
            self._fail_run(error)
        for resume in resumes:
            resume()

    def on_result(self, result: RecipientResult) -> None:
        """What a connection decided for one recipient (never ``unattempted`` here)."""
        job = result.transaction.tag
        assert isinstance(job, Job)
        self.forget_mark(job)
        outcome = result.outcome
        reply = result.reply
        code = reply.code if reply else None
        enhanced = str(reply.enhanced) if reply and reply.enhanced else ""
        text = reply.text if reply else result.reason
        job.last = (code, enhanced, text)
        if self.events.per_recipient:
            self.events.publish(
                AttemptFinished(job.id, outcome.value, code, enhanced, text, job.target)
            )
        if outcome is Outcome.ACCEPTED:
            self._finish(job, Status.DELIVERED, result)
            self._sent_times.append(self.clock())
        elif outcome is Outcome.AMBIGUOUS:
            self._finish(job, Status.AMBIGUOUS, result)
        elif outcome is Outcome.GREYLISTED:
            job.greylistings += 1
            job.greylist_mx = job.target.partition(" ")[0]
            delay = self.config.retry.after_greylisting(
                job.greylistings, result.retry_after, self.rng
            )
            self._retry_later(job, delay, "greylisted", result)
        else:
            fault, problem = classify_fault(reply)
            if fault is Fault.SENDER and problem is not None:
                self._sender_problem(job, problem, reply, result)
            elif outcome is Outcome.PERMANENT:
                self._finish(job, Status.BOUNCED, result, fault)
            else:
                job.failures += 1
                delay = self.config.retry.after_failure(job.failures, self.rng)
                self._retry_later(job, delay, "deferred", result)

    def _sender_problem(
        self, job: Job, problem: SenderProblem, reply: Reply | None, result: RecipientResult
    ) -> None:
        """Not the recipient's bounce: pause the provider, keep the recipient queued."""
        known = self._routes.get(job.domain)
        destination = known[0] if known else None
        now = self.clock()
        until = now + self.config.retry.backoff_first
        if destination is not None and destination.provider.paused_until < now:
            destination.provider.paused_until = until
            self.events.publish(
                SenderProblemReported(
                    destination.provider.name,
                    problem.kind,
                    problem.explanation,
                    problem.fix,
                    str(reply) if reply else "",
                )
            )
            self.events.publish(
                DestinationPaused(destination.key, destination.provider.name, problem.kind, until)
            )
            for other in self.destinations:
                if other.provider is destination.provider:
                    self._hold(other)
        job.failures += 1
        self._retry_later(job, until - now, "sender problem", result, fault=Fault.SENDER)

    def _dns_failed(self, job: Job, failure: RouteFailure) -> None:
        now = self.clock()
        job.attempts += 1
        job.first_attempt_at = job.first_attempt_at or now
        job.last = (None, "", f"DNS: {failure.reason}")
        if failure.permanent:
            self._finish(job, Status.BOUNCED, None, Fault.RECIPIENT, text=job.last[2])
        else:
            self._transient(job, None, reason="deferred")

    def _transient(self, job: Job, result: RecipientResult | None, *, reason: str) -> None:
        job.failures += 1
        delay = self.config.retry.after_failure(job.failures, self.rng)
        self._retry_later(job, delay, reason, result)

    def _retry_later(
        self,
        job: Job,
        delay: float,
        reason: str,
        result: RecipientResult | None,
        fault: Fault = Fault.UNKNOWN,
    ) -> None:
        now = self.clock()
        first = job.first_attempt_at or now
        if self.config.retry.expired(first, now + delay):
            self._finish(job, Status.EXPIRED, result, fault)
            return
        self._defer(job, now + delay, reason, record=True, result=result, fault=fault)

    def _defer(
        self,
        job: Job,
        until: float,
        reason: str,
        *,
        record: bool,
        result: RecipientResult | None = None,
        fault: Fault = Fault.UNKNOWN,
    ) -> None:
        self._move(job, Status.DEFERRED if job.attempts else Status.QUEUED)
        job.next_attempt_at = until
        if record:
            self._record(self._update(job, job.status, reason, until, result, fault))
        if self.events.per_recipient:
            self.events.publish(RecipientWaiting(job.id, reason, until))
        self._wait(job, until)

    def _finish(
        self,
        job: Job,
        status: Status,
        result: RecipientResult | None,
        fault: Fault = Fault.UNKNOWN,
        *,
        text: str = "",
    ) -> None:
        self._move(job, status)
        self._unfinished -= 1
        self._record(self._update(job, status, "", None, result, fault, text=text))
        if self._unfinished == 0 and not self._loading:
            self._flush()
            if self._done is not None and not self._done.done():
                self._done.set_result(None)

    def _move(self, job: Job, status: Status) -> None:
        counts = self._counts
        counts[job.status] = counts.get(job.status, 0) - 1
        counts[status] = counts.get(status, 0) + 1
        job.status = status

    def _update(
        self,
        job: Job,
        status: Status,
        reason: str,
        next_attempt_at: float | None,
        result: RecipientResult | None,
        fault: Fault,
        *,
        text: str = "",
    ) -> RecipientUpdate:
        now = self.clock()
        code, enhanced, last_text = job.last
        attempt = None
        if result is not None:
            attempt = AttemptLog(
                job.started_at or now,
                now,
                job.target,
                job.address,
                result.outcome.value,
                code,
                enhanced,
                last_text,
                result.stage.value if result.stage else "",
                job.transcript,
            )
            job.transcript = ""
        return RecipientUpdate(
            job.id,
            status,
            wait_reason=reason,
            next_attempt_at=next_attempt_at,
            attempts=job.attempts,
            first_attempt_at=job.first_attempt_at,
            last_attempt_at=now if job.attempts else None,
            code=code,
            enhanced=enhanced,
            text=text or last_text,
            mx=job.target,
            fault=fault.value,
            message_id=job.message_id,
            date_header=job.date_header,
            greylist_mx=job.greylist_mx,
            attempt=attempt,
        )

    # ---- timers and flushing ------------------------------------------------------------

    def _wait(self, job: Job, until: float) -> None:
        self._waiting += 1
        heapq.heappush(self._timers, (until, next(self._sequence), job))
        if self._timers[0][2] is job:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._timers:
            return
        delay = max(0.0, self._timers[0][0] - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._timers_due)

    def _timers_due(self) -> None:
        self._timer = None
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            _, _, job = heapq.heappop(self._timers)
            self._waiting -= 1
            self._dispatch(job)
        self._arm()

    def _schedule_flush(self) -> None:
        loop = asyncio.get_running_loop()
        self._flush_timer = loop.call_later(FLUSH_INTERVAL, self._periodic_flush)

    def _periodic_flush(self) -> None:
        self._flush()
        if self._done is not None and not self._done.done():
            self._schedule_flush()

    def _flush(self) -> None:
        """Commit what is queued, then announce the final statuses it made durable."""
        if self._early_flush is not None:
            self._early_flush.cancel()
            self._early_flush = None
        if self._failure is not None:
            return
        try:
            updates = self.store.flush()
        except StoreError as error:
            self._fail_run(error)
            return
        for update in updates if self.events.per_recipient else ():
            if update.status.final:
                self.events.publish(
                    RecipientFinal(
                        update.id, update.status, update.code, update.enhanced, update.text,
                        update.mx,
                    )
                )
        self.events.publish(self._counters())

    def _counters(self) -> Counters:
        now = self.clock()
        recent = self._sent_times
        while recent and recent[0] <= now - RATE_WINDOW:
            recent.popleft()
        next_retry = self._timers[0][0] if self._timers else None
        counts = {status: n for status, n in self._counts.items() if n > 0}
        providers = {
            provider.name: ProviderLoad(
                provider.active,
                provider.limit,
                provider.paused_until if provider.paused_until > now else None,
            )
            for provider in self.destinations.providers()
        }
        return Counters(counts, self._waiting, next_retry, len(recent) / RATE_WINDOW, providers)

    async def _wind_down(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._flush()
        self.events.flush()

    # ---- building transactions ----------------------------------------------------------

    def take(self, destination: Destination, host: str, address: str) -> Transaction | None:
        """The next transaction for a connection to ``host``: None when there is none."""
        now = self.clock()
        if destination.paused(now):
            self._hold(destination)  # e.g. a sender problem reported on another connection
            return None
        if destination.queue and (later := destination.provider.pace(now)):
            # Paced: this connection ends; the provider is woken when a send is due.
            provider = destination.provider
            if not provider.wake_armed:
                provider.wake_armed = True
                asyncio.get_running_loop().call_later(later - now, self._wake, provider)
            return None
        while destination.queue and not self._stopping:
            job = destination.queue.popleft()
            now = self.clock()
            if job.first_attempt_at is None:
                job.first_attempt_at = now
            if not job.message_id:
                job.message_id = new_message_id(self.sender)
                job.date_header = date_header(now)
            job.attempts += 1
            job.started_at = now
            job.target = f"{host} [{address}]"
            job.address = address
            try:
                body, needs_smtputf8 = self.messages.render_body(
                    job.fields, to=job.email, message_id=job.message_id, date=job.date_header
                )
            except BodyLineTooLongError as error:
                job.last = (None, "", f"the message cannot be sent as it is: {error}")
                self._finish(job, Status.BOUNCED, None, text=job.last[2])
                continue
            if self.events.per_recipient:
                self.events.publish(PhaseChanged(job.id, "sending"))
            return Transaction(self.sender, (job.rcpt,), body, needs_smtputf8, tag=job)
        return None


#: The SMTP steps a window shows per recipient (with ``smtp_phases``).
_ENVELOPE_PHASES: Final = frozenset({Phase.MAIL, Phase.RCPT, Phase.DATA})


def _connection_config(config: EngineConfig) -> ConnectionConfig:
    """How each connection talks: to MX hosts, with the settings' TLS policy; to relays,
    with TLS required (or from the first byte), the certificate verified, and the login."""
    relay = config.relay
    if relay is None:
        session, context = SessionConfig(config.helo, config.tls), None
    else:
        session = SessionConfig(
            config.helo,
            TLSPolicy.REQUIRE,
            credentials=relay.credentials,
            implicit_tls=relay.implicit_tls,
        )
        context = relay.tls_context()
    return ConnectionConfig(
        session,
        config.timeouts,
        max_transactions=config.transactions_per_connection,
        tls_context=context,
    )


class _QueueSource:
    """A connection's view of its destination's queue, and of what it decided."""

    def __init__(self, engine: Engine, destination: Destination, host: str, address: str):
        self.engine = engine
        self.destination = destination
        self.host = host
        self.address = address
        self.decided = False  # some recipient got a reply on this connection
        self.returned: list[Job] = []
        self.transcript: Transcript | None = None

    def next_transaction(self) -> Transaction | None:
        return self.engine.take(self.destination, self.host, self.address)

    def on_phase(self, phase: Phase, awaited: Transaction | None) -> None:
        """The envelope step a recipient's conversation waits on. Its end of data is
        announced by the engine when the marker is let go (the reply may then take long)."""
        events = self.engine.events
        if (
            phase in _ENVELOPE_PHASES
            and events.per_recipient
            and awaited is not None
            and isinstance(awaited.tag, Job)
        ):
            events.publish(PhaseChanged(awaited.tag.id, phase.value))

    def on_result(self, result: RecipientResult) -> None:
        if result.outcome is Outcome.UNATTEMPTED:
            # Not an attempt: the connection failed before this recipient's RCPT was
            # answered. It goes back to the head of the queue, for the next MX host.
            job = result.transaction.tag
            assert isinstance(job, Job)
            job.attempts -= 1
            self.engine.forget_mark(job)
            self.returned.append(job)
            return
        self.decided = True
        if result.outcome is not Outcome.ACCEPTED and self.transcript is not None:
            # Kept with the failed attempt, for the user to read why (body never included).
            job = result.transaction.tag
            assert isinstance(job, Job)
            job.transcript = "\n".join(self.transcript.lines()[-TRANSCRIPT_LINES:])
        self.engine.on_result(result)

    def give_back(self) -> None:
        self.destination.queue.extendleft(reversed(self.returned))
        self.returned.clear()


