"""The command line's view of a running campaign: a progress bar or JSON lines.

Both are event-bus subscribers; neither decides anything.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from core.events import (
    CampaignLog,
    Counters,
    DestinationPaused,
    Event,
    RecipientFinal,
    SenderProblemReported,
)
from core.store import Status

_ORDER = (
    Status.DELIVERED,
    Status.BOUNCED,
    Status.DEFERRED,
    Status.QUEUED,
    Status.EXPIRED,
    Status.AMBIGUOUS,
    Status.INVALID,
    Status.SUPPRESSED,
)


class ProgressBar:
    """One line on a terminal, rewritten in place: counts, rate, ETA, next retry."""

    #: It draws the counters and log lines only (see :meth:`core.events.EventBus.subscribe`).
    per_recipient = False

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.started = time.monotonic()

    def __call__(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Counters):
                self._draw(event)
            elif isinstance(event, (CampaignLog, DestinationPaused, SenderProblemReported)):
                self.stream.write("\r\033[K" + _describe(event) + "\n")
        self.stream.flush()

    def _draw(self, counters: Counters) -> None:
        counts = counters.counts
        final = sum(n for status, n in counts.items() if status.final)
        width = 24
        filled = int(width * final / self.total) if self.total else width
        parts = [f"{status.value} {counts[status]}" for status in _ORDER if counts.get(status)]
        rate = counters.sent_per_second
        left = self.total - final
        eta = f" ETA {_duration(left / rate)}" if rate > 0 and left else ""
        retry = ""
        if counters.waiting and counters.next_retry_at is not None:
            wait = max(0.0, counters.next_retry_at - time.time())
            retry = f" | {counters.waiting} waiting, next retry in {_duration(wait)}"
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {final}/{self.total} "
            f"{', '.join(parts)} | {rate:.0f} msg/s{eta}{retry}"
        )
        self.stream.write("\r\033[K" + line)

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class JSONLines:
    """One JSON object per line on stdout: counters, finals, pauses and log lines."""

    per_recipient = True  # every final status is a line

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream

    def __call__(self, events: list[Event]) -> None:
        for event in events:
            record = _record(event)
            if record is not None:
                self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


def _record(event: Event) -> dict[str, object] | None:
    if isinstance(event, Counters):
        return {
            "event": "counters",
            "counts": {status.value: n for status, n in event.counts.items()},
            "waiting": event.waiting,
            "next_retry_at": event.next_retry_at,
            "rate": round(event.sent_per_second, 1),
            "providers": {
                name: {
                    "connections": load.connections,
                    "limit": load.limit,
                    "paused_until": load.paused_until,
                }
                for name, load in event.providers.items()
            },
        }
    if isinstance(event, RecipientFinal):
        return {
            "event": "final",
            "id": event.recipient_id,
            "status": event.status.value,
            "code": event.code,
            "enhanced": event.enhanced,
            "text": event.text,
            "mx": event.mx,
        }
    if isinstance(event, (CampaignLog, DestinationPaused, SenderProblemReported)):
        return {"event": "log", "text": _describe(event)}
    return None


def _describe(event: CampaignLog | DestinationPaused | SenderProblemReported) -> str:
    if isinstance(event, DestinationPaused):
        return f"paused {event.destination} ({event.provider}): {event.reason}"
    if isinstance(event, SenderProblemReported):
        return (
            f"sender problem at {event.provider}: {event.explanation}. Fix: {event.fix}. "
            f"The server said: {event.reply}"
        )
    return event.text


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}:{seconds % 60:02d}"
