"""The campaign log: what happened to the campaign as a whole, one timed line each.

Owns campaign-level news (the engine's CampaignLog, paused destinations, sender
problems, errors no one awaited). Recipients' own results live in the table, not here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from PySide6.QtWidgets import QPlainTextEdit, QWidget

from gui.display import clock

#: Lines kept; older ones scroll away (a week-long campaign must not grow the window).
MAX_LINES = 5000


class LogPanel(QPlainTextEdit):
    """Read-only, selectable lines: ``14:03:27  paused mx.example.test …``."""

    def __init__(
        self, parent: QWidget | None = None, *, now: Callable[[], float] = time.time
    ) -> None:
        super().__init__(parent)
        self._now = now
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setPlaceholderText(
            "Campaign events (pauses, DNS failures, sender problems) appear here."
        )
        self.setAccessibleName("Campaign log")
        self.lines: deque[str] = deque(maxlen=MAX_LINES)

    def add(self, text: str) -> None:
        line = f"{clock(self._now())}  {text}"
        self.lines.append(line)
        self.appendPlainText(line)
