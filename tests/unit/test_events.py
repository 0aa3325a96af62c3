"""The event bus: batches, per-recipient coalescing of phases, and the delivery timer."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.events import (
    AttemptFinished,
    CampaignLog,
    Counters,
    DestinationPaused,
    Event,
    EventBus,
    PhaseChanged,
    RecipientFinal,
    RecipientWaiting,
    SenderProblemReported,
)
from core.store import Status


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    def __call__(self, batch: list[Event]) -> None:
        self.batches.append(batch)


def test_publish_does_not_call_subscribers_flush_does() -> None:
    bus = EventBus()
    seen = Recorder()
    bus.subscribe(seen)
    events: list[Event] = [
        CampaignLog("started"),
        AttemptFinished(1, "accepted", 250, "2.0.0", "Ok", "mx.x.test 192.0.2.1"),
        RecipientFinal(1, Status.DELIVERED, 250, "2.0.0", "Ok", "mx.x.test"),
    ]
    for event in events:
        bus.publish(event)
    assert seen.batches == []
    bus.flush()
    assert seen.batches == [events]


def test_flush_with_nothing_pending_calls_nobody() -> None:
    bus = EventBus()
    seen = Recorder()
    bus.subscribe(seen)
    bus.flush()
    bus.publish(CampaignLog("x"))
    bus.flush()
    bus.flush()
    assert seen.batches == [[CampaignLog("x")]]


def test_each_event_is_delivered_once() -> None:
    bus = EventBus()
    seen = Recorder()
    bus.subscribe(seen)
    bus.publish(CampaignLog("a"))
    bus.flush()
    bus.publish(CampaignLog("b"))
    bus.publish(PhaseChanged(1, "sending"))
    bus.flush()
    assert seen.batches == [[CampaignLog("a")], [PhaseChanged(1, "sending"), CampaignLog("b")]]


def test_phase_changes_coalesce_to_the_latest_per_recipient() -> None:
    bus = EventBus()
    seen = Recorder()
    bus.subscribe(seen)
    for phase in ("resolving", "connecting", "sending"):
        bus.publish(PhaseChanged(7, phase))
    bus.publish(PhaseChanged(8, "connecting"))
    bus.publish(PhaseChanged(7, "waiting"))
    bus.flush()
    (batch,) = seen.batches
    phases = [event for event in batch if isinstance(event, PhaseChanged)]
    assert phases == [PhaseChanged(7, "waiting"), PhaseChanged(8, "connecting")]


def test_other_events_keep_their_order_and_are_not_coalesced() -> None:
    bus = EventBus()
    seen = Recorder()
    bus.subscribe(seen)
    others: list[Event] = [
        AttemptFinished(1, "transient", 451, "4.3.0", "try later", "mx.x.test"),
        RecipientWaiting(1, "deferred", 1000.0),
        AttemptFinished(1, "transient", 451, "4.3.0", "try later", "mx.x.test"),
        DestinationPaused("mx.x.test", "x.test", "rate-limit", 500.0),
        SenderProblemReported("x.test", "blocklist", "listed", "delist", "550 listed"),
        Counters({Status.QUEUED: 1}, 1, 1000.0, 0.0),
        CampaignLog("done"),
        RecipientFinal(2, Status.BOUNCED, 550, "5.1.1", "unknown", "mx.x.test"),
    ]
    for i, event in enumerate(others):
        bus.publish(event)
        bus.publish(PhaseChanged(i % 2, f"phase{i}"))
    bus.flush()
    (batch,) = seen.batches
    assert [event for event in batch if not isinstance(event, PhaseChanged)] == others
    # Phases (the latest per recipient) come first, then the rest in publishing order.
    assert batch[:2] == [PhaseChanged(0, "phase6"), PhaseChanged(1, "phase7")]
    assert len(batch) == len(others) + 2


def test_every_subscriber_gets_the_same_batch() -> None:
    bus = EventBus()
    first, second = Recorder(), Recorder()
    bus.subscribe(first)
    bus.subscribe(second)
    bus.publish(CampaignLog("x"))
    bus.flush()
    assert first.batches == second.batches == [[CampaignLog("x")]]


def test_unsubscribe() -> None:
    bus = EventBus()
    kept, dropped = Recorder(), Recorder()
    bus.subscribe(kept)
    unsubscribe = bus.subscribe(dropped)
    bus.publish(CampaignLog("one"))
    bus.flush()
    unsubscribe()
    bus.publish(CampaignLog("two"))
    bus.flush()
    assert kept.batches == [[CampaignLog("one")], [CampaignLog("two")]]
    assert dropped.batches == [[CampaignLog("one")]]


def test_a_subscriber_may_unsubscribe_while_being_called() -> None:
    bus = EventBus()
    later = Recorder()
    calls: list[int] = []

    def once(batch: list[Event]) -> None:
        calls.append(len(batch))
        unsubscribe()

    unsubscribe = bus.subscribe(once)
    bus.subscribe(later)
    bus.publish(CampaignLog("a"))
    bus.flush()
    bus.publish(CampaignLog("b"))
    bus.flush()
    assert calls == [1]
    assert later.batches == [[CampaignLog("a")], [CampaignLog("b")]]


def test_without_a_loop_publish_schedules_nothing() -> None:
    """No running loop: publishing must not fail; the owner flushes by hand."""
    bus = EventBus(interval=0.0)
    seen = Recorder()
    bus.subscribe(seen)
    bus.publish(CampaignLog("x"))
    bus.publish(CampaignLog("y"))
    assert seen.batches == []
    bus.flush()
    assert seen.batches == [[CampaignLog("x"), CampaignLog("y")]]


# ---- the timer -----------------------------------------------------------------------


class Waiter:
    """A subscriber that records batches and wakes the test on each one."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.times: list[float] = []
        self.arrived = asyncio.Event()

    def __call__(self, batch: list[Event]) -> None:
        self.batches.append(batch)
        self.times.append(asyncio.get_running_loop().time())
        self.arrived.set()

    async def next(self) -> None:
        await asyncio.wait_for(self.arrived.wait(), timeout=5.0)
        self.arrived.clear()


async def test_timer_delivers_a_batch_after_the_interval() -> None:
    loop = asyncio.get_running_loop()
    bus = EventBus(interval=0.05)
    seen = Waiter()
    bus.subscribe(seen)
    start = loop.time()
    bus.publish(PhaseChanged(1, "connecting"))
    bus.publish(CampaignLog("x"))
    bus.publish(PhaseChanged(1, "sending"))
    assert seen.batches == []  # never from publish itself
    await seen.next()
    assert seen.batches == [[PhaseChanged(1, "sending"), CampaignLog("x")]]
    # Not before the interval (allowing for the loop clock's resolution).
    resolution = time.get_clock_info("monotonic").resolution
    assert seen.times[0] - start >= 0.05 - resolution


async def test_timer_runs_again_for_later_events() -> None:
    bus = EventBus(interval=0.01)
    seen = Waiter()
    bus.subscribe(seen)
    bus.publish(CampaignLog("first"))
    await seen.next()
    bus.publish(CampaignLog("second"))
    await seen.next()
    assert seen.batches == [[CampaignLog("first")], [CampaignLog("second")]]


async def test_flush_before_the_timer_cancels_it() -> None:
    bus = EventBus(interval=0.02)
    seen = Waiter()
    bus.subscribe(seen)
    bus.publish(CampaignLog("now"))
    bus.flush()
    assert seen.batches == [[CampaignLog("now")]]
    seen.arrived.clear()
    # A new event starts a new timer; the cancelled one must not deliver an empty or
    # duplicate batch in between.
    bus.publish(CampaignLog("later"))
    await seen.next()
    assert seen.batches == [[CampaignLog("now")], [CampaignLog("later")]]


async def test_no_timer_without_subscribers() -> None:
    bus = EventBus(interval=0.01)
    bus.publish(CampaignLog("unheard"))
    seen = Waiter()
    bus.subscribe(seen)
    # Unheard events were dropped, and no timer was started for them: the next publish
    # starts it.
    bus.publish(CampaignLog("heard"))
    await seen.next()
    assert seen.batches == [[CampaignLog("heard")]]


@pytest.mark.parametrize("interval", [0.0, 0.01])
async def test_many_events_one_batch(interval: float) -> None:
    bus = EventBus(interval=interval)
    seen = Waiter()
    bus.subscribe(seen)
    for i in range(1000):
        bus.publish(PhaseChanged(i % 10, f"p{i}"))
        bus.publish(CampaignLog(str(i)))
    await seen.next()
    (batch,) = seen.batches
    assert len(batch) == 10 + 1000
    assert batch[:10] == [PhaseChanged(r, f"p{990 + r}") for r in range(10)]


def test_with_no_subscriber_events_are_dropped_not_kept() -> None:
    bus = EventBus()
    bus.publish(CampaignLog("nobody listens"))
    bus.publish(PhaseChanged(1, "sending"))
    seen = Recorder()
    bus.subscribe(seen)
    bus.flush()
    assert seen.batches == []


def test_per_recipient_is_true_while_some_subscriber_wants_those_events() -> None:
    bus = EventBus()
    assert not bus.per_recipient
    unsubscribe_bar = bus.subscribe(Recorder(), per_recipient=False)
    assert not bus.per_recipient
    unsubscribe_window = bus.subscribe(Recorder())
    assert bus.per_recipient
    unsubscribe_window()
    assert not bus.per_recipient
    unsubscribe_bar()
    assert not bus.per_recipient
