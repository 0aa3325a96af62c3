"""One open campaign: its file, the lab it may be sent to, and the engine while it runs.

Owns the run's life cycle (start, pause, resume, stop, abort, close) and its
:class:`gui.state.RunState`. The engine publishes on this session's
:class:`core.events.EventBus`; the window subscribes to it. Only a campaign made for the
sandbox is sent only to the lab, whatever the settings say. A campaign not made in the
sandbox is sent for real only when the app's settings choose real delivery (see
:func:`gui.settings_model.real_blocked`); its engine configuration comes from an
injectable factory, so tests point it at a lab too. A real Start stores the route it
takes in the campaign file (never the password); relays stored there are kept whatever
the settings say later (:func:`gui.settings_model.run_settings`), and the window says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from core.engine import Engine, EngineConfig
from core.events import Counters, Event, EventBus, ProviderLoad
from core.outgoing import MESSAGE_DRAFT
from core.relay import CampaignRoute, campaign_route, with_route
from core.store import CampaignStore, RecoveryReport, Status, StoreError
from gui.loop import ErrorReporter, spawn
from gui.message_form import UNSENT
from gui.sandbox import SandboxLab, is_sandbox
from gui.settings_model import (
    AppSettings,
    campaign_settings,
    real_blocked,
    real_engine_config,
    route_override,
    run_settings,
    settings_route,
)
from gui.state import BUSY, ActionContext, RunState

#: The engine configuration of a real run, from the app's settings.
ConfigFactory = Callable[[AppSettings], EngineConfig]

log = logging.getLogger(__name__)


class CampaignSession(QObject):
    """A campaign file opened in the window."""

    #: The run state or the counts changed: actions and the strip follow.
    changed = Signal()
    #: A run ended: "" when it ended normally (finished or stopped), else why not.
    run_ended = Signal(str)
    #: A line for the campaign log about the session itself (the lab, the run).
    note = Signal(str)

    def __init__(
        self,
        store: CampaignStore,
        *,
        lab: SandboxLab | None,
        reporter: ErrorReporter,
        recovery: RecoveryReport | None = None,
        settings: Callable[[], AppSettings] = AppSettings,
        config_factory: ConfigFactory = real_engine_config,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.lab = lab
        #: The app's settings as they are now (asked at every check and every Start).
        self.settings = settings
        self.config_factory = config_factory
        self.recovery = recovery
        self.reporter = reporter
        self.bus = EventBus()
        self.bus.subscribe(self._track)
        self.engine: Engine | None = None
        self.counts: dict[Status, int] = store.counts()
        #: How many rows "Retry what may work now" would queue (read while no run holds
        #: the file: at open, after a run, after a retry or a removal).
        self.fixable = 0 if store.read_only else len(store.fixable_ids())
        #: A recipient was tried before (then requeued, perhaps): not fresh any more.
        self.attempted = store.ever_attempted()
        self.waiting = 0
        self.next_retry_at: float | None = None
        self.per_second = 0.0
        #: Each mailbox provider's connections, limit and pause, as of the last counters.
        self.providers: dict[str, ProviderLoad] = {}
        self.run_state = RunState.READY if self.unfinished else RunState.FINISHED
        #: Sending was started (in this session, or in one that was cut short).
        self.started = recovery is not None and recovery.ambiguous > 0
        self.fresh_at_start = False
        self._task: asyncio.Task[None] | None = None
        self._ended: asyncio.Future[None] | None = None

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        reporter: ErrorReporter,
        greylist_seconds: int,
        settings: Callable[[], AppSettings] = AppSettings,
        config_factory: ConfigFactory = real_engine_config,
    ) -> CampaignSession:
        """Open a campaign file: writable (locked against a second MX Mailer, recovered
        after a crash), or read-only to view and export when it cannot be written."""
        try:
            store, recovery = CampaignStore.open(path)
        except StoreError as error:
            if "read-only" not in str(error):
                raise
            store, recovery = CampaignStore.open(path, read_only=True)
        lab = SandboxLab(greylist_seconds=greylist_seconds) if is_sandbox(store) else None
        return cls(
            store,
            lab=lab,
            reporter=reporter,
            recovery=recovery,
            settings=settings,
            config_factory=config_factory,
        )

    # ---- what the window asks -----------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def sandboxed(self) -> bool:
        return self.lab is not None

    @property
    def real(self) -> bool:
        """Not made in the sandbox: if it is sent, it goes to the recipients' servers."""
        return self.lab is None

    def send_blocked(self) -> str | None:
        """Why the window may not send it (read-only; a real campaign the settings do
        not allow); None when it may."""
        if self.store.read_only:
            return "This campaign file is open read-only: it can be viewed and exported."
        if self.lab is not None:
            return None
        blocked = real_blocked(self.settings(), self.store.sender)
        if blocked is None:
            try:
                campaign_route(self.store.settings)
            except ValueError as error:
                why = str(error)
                return (
                    f"{why[:1].upper()}{why[1:]}: send it with mxmailer send --state "
                    f"{self.path} and --direct or --relay."
                )
        return blocked

    # ---- the route ----------------------------------------------------------------------

    def stored_route(self) -> CampaignRoute | None:
        """The route the campaign file remembers (None: none, or one it cannot read)."""
        try:
            return campaign_route(self.store.settings)
        except ValueError:
            return None

    def run_settings(self) -> AppSettings:
        """The settings a real Start uses now: the app's, with the relays the campaign
        file remembers (see :func:`gui.settings_model.run_settings`). What pre-flight
        should check."""
        return run_settings(self.settings(), self.stored_route())

    def next_route(self) -> CampaignRoute | None:
        """The route a real Start takes now (None for the lab, or unusable settings)."""
        if self.lab is not None:
            return None
        try:
            return settings_route(self.run_settings())
        except ValueError:
            return None

    def route_notice(self) -> str | None:
        """Why a real Start does not take the route the Settings give (the campaign's
        stored relays are kept); None when it does, and for the lab."""
        if self.lab is not None:
            return None
        return route_override(self.settings(), self.stored_route(), str(self.path))

    @property
    def sendable(self) -> bool:
        """The window may send it: a writable sandbox campaign (to the lab), or a
        writable real campaign that the settings allow to be sent for real."""
        return self.send_blocked() is None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def unfinished(self) -> int:
        return sum(n for status, n in self.counts.items() if not status.final)

    def context(self) -> ActionContext:
        blocked = self.send_blocked()  # once: it parses the settings and the stored route
        return ActionContext(
            self.run_state,
            blocked is None,
            self.unfinished,
            self.counts.get(Status.BOUNCED, 0),
            fresh=self.fresh,
            writable=not self.store.read_only,
            fixable=self.fixable,
            real=self.real,
            send_blocked=blocked or "",
            draft=self.store.settings.get(MESSAGE_DRAFT) is True,
        )

    @property
    def fresh(self) -> bool:
        """Nothing was sent yet: every status is one the import set, no recipient was
        ever tried (a retried one is queued again), and no run began."""
        if self.started or self.attempted:
            return False
        return all(n == 0 for status, n in self.counts.items() if status not in UNSENT)

    # ---- control ------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or resume after a stop) sending, in a task on the running loop."""
        if self.run_state in BUSY or not self.sendable:
            return
        # Nothing was sent before this run: its message settings may still change.
        self.fresh_at_start = self.fresh
        self.started = True
        self._set_state(RunState.STARTING)
        self._ended = asyncio.get_running_loop().create_future()
        self._task = spawn(self._run(), self.reporter)

    def pause(self) -> None:
        if self.engine is not None and self.run_state is RunState.RUNNING:
            self.engine.pause()
            self._set_state(RunState.PAUSED)

    def resume(self) -> None:
        if self.engine is not None and self.run_state is RunState.PAUSED:
            self.engine.resume()
            self._set_state(RunState.RUNNING)

    def stop(self) -> None:
        """Finish the messages in flight, keep everyone else queued, end the run."""
        if self.run_state not in (RunState.STARTING, RunState.RUNNING, RunState.PAUSED):
            return
        self._set_state(RunState.STOPPING)
        if self.engine is not None:
            self.engine.stop()

    def abort(self) -> None:
        """Cut the connections now (recipients in flight are settled honestly)."""
        self.stop()
        if self.engine is not None:
            self.engine.abort()

    async def wait_ended(self) -> None:
        """Until the current run (if any) has ended."""
        if self._ended is not None:
            await asyncio.shield(self._ended)

    async def close(self) -> None:
        """End any run (cutting connections), stop the lab, close the file."""
        if self.run_state in BUSY:
            self.abort()
            await self.wait_ended()
        if self.lab is not None:
            await self.lab.stop()
        self.store.close()

    # ---- changing the rows (never while a run holds them) ------------------------------

    def retry(self, ids: Sequence[int]) -> int:
        """Queue ``ids`` again (those whose status allows it); how many were. The next
        Start sends them. Refused (StoreError) while a run holds the file."""
        self._check_idle("retrying recipients")
        try:
            return self.store.retry(ids)
        finally:
            self._reread()

    def remove(self, ids: Sequence[int]) -> int:
        """Delete ``ids`` and their attempts from the campaign; how many went. Refused
        (StoreError) while a run holds the file."""
        self._check_idle("removing recipients")
        try:
            return self.store.remove(ids)
        finally:
            self._reread()

    def _check_idle(self, action: str) -> None:
        if self.run_state in BUSY:
            raise StoreError(f"{action} is not possible while the campaign is sending")

    def _reread(self) -> None:
        """Counts, the fixable rows and the run state, from the file."""
        self.counts = self.store.counts()
        self.fixable = len(self.store.fixable_ids())
        self.attempted = self.store.ever_attempted()
        self.run_state = RunState.READY if self.unfinished else RunState.FINISHED
        self.changed.emit()

    # ---- the run ------------------------------------------------------------------------

    async def _run(self) -> None:
        failure = ""
        try:
            if self.lab is not None:  # a sandbox campaign goes to the lab, always
                failure = await self._start_lab(self.lab)
                if failure or self.run_state is RunState.STOPPING:
                    return
                config = self.lab.engine_config()
            else:
                try:
                    config = self._real_config()
                except RuntimeError as error:  # the settings cannot be used now
                    failure = f"Sending did not start: {error}"
                    return
            if self.run_state is not RunState.STARTING:
                return  # Stop (or closing the window) came before the engine existed
            self.engine = Engine(self.store, config, self.bus)
            self._set_state(RunState.RUNNING)
            await self.engine.run()
        except StoreError as error:
            failure = f"Sending stopped, because progress could not be saved: {error}"
        except Exception as error:
            log.exception("the run failed")
            failure = f"The run failed: {error!r}"
        finally:
            self.engine = None
            with contextlib.suppress(StoreError):  # else the last counters stand
                self.counts = self.store.counts()
                self.fixable = len(self.store.fixable_ids())
            # Nothing is retried or sent until the next start.
            self.waiting, self.next_retry_at, self.per_second = 0, None, 0.0
            self._set_state(RunState.READY if self.unfinished else RunState.FINISHED)
            if self._ended is not None and not self._ended.done():
                self._ended.set_result(None)
            self.run_ended.emit(failure)

    def _real_config(self) -> EngineConfig:
        """The settings' configuration for a real run, checked again now (belt and
        braces: Start is disabled otherwise); a fresh campaign takes the settings'
        HELO, DKIM and List-Unsubscribe into its file first."""
        settings = self.settings()
        blocked = real_blocked(settings, self.store.sender)
        if blocked is not None:
            raise RuntimeError(blocked)
        try:
            stored = campaign_route(self.store.settings)
        except ValueError as error:
            raise RuntimeError(str(error)) from None
        if self.fresh_at_start:
            self.store.set_settings(campaign_settings(self.store.settings, settings))
        config = self.config_factory(run_settings(settings, stored))
        route = CampaignRoute.of(config.relay)
        # Remembered before anything is sent: a crash must not lose the route.
        self.store.set_settings(with_route(self.store.settings, route))
        how = route.describe() if route.direct else f"through {route.describe()}"
        self.note.emit(
            f"real delivery: {self.unfinished} recipient(s) from {self.store.sender}, "
            f"HELO {config.helo}, {how}"
        )
        override = route_override(settings, stored, str(self.path))
        if override is not None:
            self.note.emit(override)
        return config

    async def _start_lab(self, lab: SandboxLab) -> str:
        """Start the lab if it is not running; why it could not, or ""."""
        if lab.running:
            return ""
        try:
            await lab.start()
        except OSError as error:
            return f"The sandbox lab could not start: {error}"
        world = lab.world
        self.note.emit(
            f"sandbox lab running: DNS on {world.nameserver}, {len(world.hosts)} MX hosts "
            f"on 127.0.0.x port {world.port}"
        )
        return ""

    def _track(self, batch: list[Event]) -> None:
        """Keep the latest counters (the strip and the actions read them)."""
        for event in reversed(batch):
            if isinstance(event, Counters):
                self.counts = {**dict.fromkeys(Status, 0), **event.counts}
                self.waiting = event.waiting
                self.next_retry_at = event.next_retry_at
                self.per_second = event.sent_per_second
                self.providers = event.providers
                self.changed.emit()
                return

    def _set_state(self, state: RunState) -> None:
        if state is not self.run_state:
            self.run_state = state
            self.changed.emit()
