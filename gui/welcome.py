"""What the window shows with no campaign open: the way into the sandbox demo, a new
campaign from a CSV, or a campaign file.

Owns the empty state only. Its buttons trigger the window's own actions, so the
keyboard shortcuts, the menus and this page always do the same thing.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

INTRODUCTION = (
    "Try MX Mailer on a rehearsal internet that runs inside this window: a sample "
    "campaign of two dozen recipients is sent to lab mail servers on 127.0.0.x that "
    "accept, greylist, fail over, stall and bounce, so you can watch every case live in "
    "the table. Nothing leaves this computer."
)


class WelcomePage(QWidget):
    def __init__(
        self,
        sandbox: QAction,
        import_csv: QAction,
        open_file: QAction,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        title = QLabel("<h2>No campaign open</h2>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text = QLabel(INTRODUCTION)
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text.setFixedWidth(620)
        # Centred in a box layout, a wrapped label gets its one-line height: ask for its
        # height at its width instead.
        text.setMinimumHeight(text.heightForWidth(620))
        self.sandbox_button = QPushButton("Try the sandbox demo")
        self.sandbox_button.setDefault(True)
        self.sandbox_button.clicked.connect(sandbox.trigger)
        self.import_button = QPushButton("New campaign from a CSV…")
        self.import_button.clicked.connect(import_csv.trigger)
        self.open_button = QPushButton("Open a campaign file…")
        self.open_button.clicked.connect(open_file.trigger)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        buttons = (self.sandbox_button, self.import_button, self.open_button)
        for widget in (title, text, *buttons):
            layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)
