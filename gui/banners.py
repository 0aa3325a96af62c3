"""Banners across the top of the window: the sandbox notice, and problems the user must
act on (the servers refused the *sender*; a run failed).

Owns their look only: a tinted strip with a text that says what happened, why, and
what fixes it. Banners are never modal: a dialog would block the user and, opened from
an event handler inside a running task, would break the event loop (see gui.loop).
"""

from __future__ import annotations

import enum

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from gui.status_style import is_dark


class Kind(enum.Enum):
    INFO = (0, 114, 178)  # Okabe-Ito blue
    WARNING = (230, 159, 0)  # orange
    PROBLEM = (213, 94, 0)  # vermillion


class Banner(QFrame):
    """A tinted strip with a text; ``closable`` adds a close button."""

    def __init__(
        self,
        kind: Kind,
        text: str = "",
        *,
        closable: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.kind = kind
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        self.close_button: QToolButton | None = None
        if closable:
            self.close_button = QToolButton()
            self.close_button.setText("✕")
            self.close_button.setToolTip("Dismiss")
            self.close_button.setAccessibleName("Dismiss")
            self.close_button.setAutoRaise(True)
            self.close_button.clicked.connect(self.hide)
            layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)

    @property
    def text(self) -> str:
        return self.label.text()

    def show_kind(self, kind: Kind, text: str) -> None:
        """Show ``text`` in ``kind``'s colour (the mode banner changes with the mode)."""
        if kind is not self.kind:
            self.kind = kind
            self.update()
        self.show_text(text)

    def show_text(self, text: str) -> None:
        self.label.setText(text)
        self.show()

    def paintEvent(self, event: QPaintEvent) -> None:
        """Drawn from the current palette at each paint, so a switch to dark mode needs
        no restyling (and no style sheet, whose palette changes would re-enter here)."""
        palette = self.palette()
        dark = is_dark(palette)
        accent = QColor(*self.kind.value)
        border = accent.lighter(120) if dark else accent.darker(110)
        tint = _mix(accent, palette.color(QPalette.ColorRole.Base), 0.22 if dark else 0.14)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        box = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QPen(border, 1))
        painter.setBrush(tint)
        painter.drawRoundedRect(box, 3, 3)
        painter.fillRect(QRectF(box.left(), box.top(), 5, box.height()), border)
        painter.end()


def _mix(accent: QColor, base: QColor, amount: float) -> QColor:
    """``amount`` of ``accent`` over ``base``."""
    return QColor(
        round(accent.red() * amount + base.red() * (1 - amount)),
        round(accent.green() * amount + base.green() * (1 - amount)),
        round(accent.blue() * amount + base.blue() * (1 - amount)),
    )
