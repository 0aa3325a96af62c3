"""What the engine tells the world: typed events, and a bus that batches them.

Subscribers (the window's table model, the command line's progress bar) get lists of
events at a bounded rate rather than one call per event: a busy campaign makes tens of
thousands of changes a second, and nobody can watch them one at a time. Phase changes of
one recipient within a batch are coalesced to the latest. Never imports Qt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from core.store import Status

#: A recipient's current step while it is being worked on (the architecture's phases).
RecipientPhase = str  # "queued", "resolving", "connecting", "sending", "waiting"


@dataclass(frozen=True, slots=True)
class PhaseChanged:
    recipient_id: int
    phase: RecipientPhase


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """One attempt ended (however); what the server said, and which MX said it."""

    recipient_id: int
    outcome: str
    code: int | None
    enhanced: str
    text: str
    mx: str


@dataclass(frozen=True, slots=True)
class RecipientWaiting:
    recipient_id: int
    reason: str  # "greylisted", "deferred", "destination paused", "sender problem"
    next_attempt_at: float


@dataclass(frozen=True, slots=True)
class RecipientFinal:
    """Announced only after the status is durable in the campaign file."""

    recipient_id: int
    status: Status
    code: int | None
    enhanced: str
    text: str
    mx: str


@dataclass(frozen=True, slots=True)
class DestinationPaused:
    destination: str
    provider: str
    reason: str
    until: float


@dataclass(frozen=True, slots=True)
class SenderProblemReported:
    """Servers refused mail for a reason that is the sender's, not the recipients'."""

    provider: str
    kind: str
    explanation: str
    fix: str
    reply: str


@dataclass(frozen=True, slots=True)
class CampaignLog:
    text: str


@dataclass(frozen=True, slots=True)
class ProviderLoad:
    """One mailbox provider's shared budget, as it stands."""

    connections: int
    limit: int
    paused_until: float | None


@dataclass(frozen=True, slots=True)
class Counters:
    counts: dict[Status, int]
    waiting: int
    next_retry_at: float | None
    sent_per_second: float
    #: Per provider (registered domain of the MX hosts): connections open, the limit,
    #: and until when it is paused (None when it is not).
    providers: dict[str, ProviderLoad] = field(default_factory=dict)


Event = (
    PhaseChanged
    | AttemptFinished
    | RecipientWaiting
    | RecipientFinal
    | DestinationPaused
    | SenderProblemReported
    | CampaignLog
    | Counters
)
Subscriber = Callable[[list[Event]], None]

#: Events about one recipient: made only while :attr:`EventBus.per_recipient` is true.
PER_RECIPIENT: Final = (PhaseChanged, AttemptFinished, RecipientWaiting, RecipientFinal)


class EventBus:
    """Collects events and hands them to subscribers in batches, every ``interval`` s.

    ``publish`` is cheap and never calls a subscriber itself; ``flush`` delivers now
    (the engine flushes at the end of a run so that nothing is left unsaid). With no
    subscriber, events are dropped: nobody could ever be handed them.

    Per-recipient events (:data:`PER_RECIPIENT`) cost the engine several objects a
    message; a subscriber that ignores them (a progress bar) says so when it subscribes,
    and while :attr:`per_recipient` is false the engine does not build them at all.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._subscribers: list[Subscriber] = []
        self._wanting_recipients: list[Subscriber] = []
        #: Whether some subscriber wants per-recipient events (publishers may skip them).
        self.per_recipient = False
        self._pending: list[Event] = []
        self._phases: dict[int, PhaseChanged] = {}
        self._timer: asyncio.TimerHandle | None = None

    def subscribe(
        self, subscriber: Subscriber, *, per_recipient: bool = True
    ) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it.

        ``per_recipient=False``: it ignores :data:`PER_RECIPIENT` events, so they need
        not be made for it (it is still handed those that others asked for).
        """
        self._subscribers.append(subscriber)
        if per_recipient:
            self._wanting_recipients.append(subscriber)
        self.per_recipient = bool(self._wanting_recipients)

        def unsubscribe() -> None:
            self._subscribers.remove(subscriber)
            if per_recipient:
                self._wanting_recipients.remove(subscriber)
            self.per_recipient = bool(self._wanting_recipients)

        return unsubscribe

    def publish(self, event: Event) -> None:
        if not self._subscribers:
            return
        if isinstance(event, PhaseChanged):
            self._phases[event.recipient_id] = event
        else:
            self._pending.append(event)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: the owner flushes by hand
            self._timer = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending and not self._phases:
            return
        batch: list[Event] = [*self._phases.values(), *self._pending]
        self._phases = {}
        self._pending = []
        for subscriber in list(self._subscribers):
            subscriber(batch)
