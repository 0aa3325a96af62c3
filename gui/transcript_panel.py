"""The transcript panel: one recipient's attempts, read from the campaign file.

Owns showing ``CampaignStore.attempts(id)``: when each attempt ran, which MX answered
what, and the end of the SMTP conversation of failed attempts. Read-only and
selectable, so a user can copy it into a ticket to the receiving site's postmaster.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from core.store import CampaignStore, StoreError
from gui.display import transcript_text

PLACEHOLDER = "Select a recipient to see its attempts and the SMTP conversation."


class TranscriptPanel(QPlainTextEdit):
    def __init__(
        self, parent: QWidget | None = None, *, now: Callable[[], float] = time.time
    ) -> None:
        super().__init__(parent)
        self._now = now
        self.recipient_id: int | None = None
        self.setReadOnly(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setPlaceholderText(PLACEHOLDER)
        self.setAccessibleName("Transcript")

    def show_recipient(self, store: CampaignStore | None, recipient_id: int | None) -> None:
        """Show ``recipient_id``'s attempts (None, or no campaign: clear)."""
        self.recipient_id = recipient_id
        if store is None or recipient_id is None:
            self.clear()
            return
        try:
            state = store.get(recipient_id)
            attempts = store.attempts(recipient_id)
        except (KeyError, StoreError) as error:
            self.setPlainText(f"Cannot read recipient {recipient_id}: {error}")
            return
        text = transcript_text(state, attempts, self._now())
        if text != self.toPlainText():  # keep the user's selection when nothing changed
            self.setPlainText(text)

    def refresh(self, store: CampaignStore | None) -> None:
        self.show_recipient(store, self.recipient_id)
