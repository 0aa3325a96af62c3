"""The summary strip: counts per status, progress, rate, ETA and the next retry.

Owns how the engine's :class:`core.events.Counters` are shown. It is fed the latest
counters (or the campaign file's counts before a run) and a clock tick; it computes
nothing from the table, so it costs the same for ten recipients or a million.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from core.store import Status
from gui.display import countdown, eta_text, rate_text
from gui.status_style import status_icon

#: The counts always shown, then those shown only when not zero.
_ALWAYS: Final = (
    ("delivered", "Delivered"),
    ("bounced", "Bounced"),
    ("waiting", "Waiting"),
    ("sending", "To send"),
)
_WHEN_ANY: Final = (
    ("expired", "Expired"),
    ("ambiguous", "Possibly delivered"),
    ("invalid", "Invalid"),
    ("suppressed", "Suppressed"),
)


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts as the strip shows them: final statuses, and the rest split into
    recipients being worked on (``active``) and those waiting to retry."""

    total: int
    final: int
    waiting: int
    by_key: Mapping[str, int]

    @property
    def active(self) -> int:
        return max(0, self.total - self.final - self.waiting)

    @classmethod
    def of(cls, counts: Mapping[Status, int], waiting: int) -> Tally:
        total = sum(counts.values())
        final = sum(n for status, n in counts.items() if status.final)
        unfinished = total - final
        waiting = min(waiting, unfinished)
        by_key = {status.value: n for status, n in counts.items() if status.final}
        by_key["waiting"] = waiting
        by_key["sending"] = unfinished - waiting
        return cls(total, final, waiting, by_key)


class _Count(QWidget):
    """An icon (its shape says the status) and "Label 12"."""

    def __init__(self, key: str, label: str) -> None:
        super().__init__()
        self.key, self.label = key, label
        self.icon = QLabel()
        self.text = QLabel()
        self.restyle()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 8, 0)
        layout.setSpacing(4)
        layout.addWidget(self.icon)
        layout.addWidget(self.text)

    def restyle(self) -> None:
        self.icon.setPixmap(status_icon(self.key, self.palette()).pixmap(16, 16))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() is QEvent.Type.PaletteChange:
            self.restyle()  # e.g. a switch to dark mode

    def show_count(self, count: int) -> None:
        self.text.setText(f"{self.label} <b>{count}</b>")
        self.setAccessibleName(f"{self.label}: {count}")


class SummaryStrip(QWidget):
    """One line above the table; :meth:`show_counts` after each Counters event."""

    def __init__(
        self, parent: QWidget | None = None, *, now: Callable[[], float] = time.time
    ) -> None:
        super().__init__(parent)
        self._now = now
        self.counts = {key: _Count(key, label) for key, label in (*_ALWAYS, *_WHEN_ANY)}
        self.progress = QProgressBar()
        self.progress.setMinimumWidth(180)
        self.progress.setTextVisible(True)
        self.rate = QLabel()
        self.eta = QLabel()
        self.next_retry = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        for widget in self.counts.values():
            layout.addWidget(widget)
        layout.addStretch(1)
        layout.addWidget(self.progress)
        for label in (self.rate, self.eta, self.next_retry):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            layout.addWidget(label)
        self.tally = Tally(0, 0, 0, {})
        self._per_second = 0.0
        self._next_retry_at: float | None = None
        self.show_counts({}, waiting=0, next_retry_at=None, per_second=0.0)

    def show_counts(
        self,
        counts: Mapping[Status, int],
        *,
        waiting: int,
        next_retry_at: float | None,
        per_second: float,
    ) -> None:
        self.tally = tally = Tally.of(counts, waiting)
        self._per_second = per_second
        self._next_retry_at = next_retry_at if tally.waiting else None
        for key, widget in self.counts.items():
            count = tally.by_key.get(key, 0)
            widget.show_count(count)
            widget.setVisible(count > 0 or key in dict(_ALWAYS))
        self.progress.setMaximum(max(tally.total, 1))
        self.progress.setValue(tally.final)
        self.progress.setFormat(f"{tally.final} of {tally.total} done (%p%)")
        self.rate.setText(f"Rate: {rate_text(per_second)}")
        self.tick()

    def tick(self) -> None:
        """The clock moved: the ETA and the next retry count down."""
        now = self._now()
        retry_in = None if self._next_retry_at is None else self._next_retry_at - now
        tally = self.tally
        self.eta.setText(f"ETA: {eta_text(tally.active, tally.waiting, self._per_second)}")
        if retry_in is None or self._next_retry_at is None:
            self.next_retry.setText("")
        else:
            at = time.strftime("%H:%M:%S", time.localtime(self._next_retry_at))
            self.next_retry.setText(
                f"{tally.waiting} waiting · next retry in {countdown(retry_in)} ({at})"
            )
