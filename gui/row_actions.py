"""The window's actions on recipients outside a run: Retry what may work now (the
Campaign menu), and Retry and Remove on the selected rows (the table's context menu).

Owns asking before the campaign file is changed (a possible second copy, a removal that
cannot be undone), the calls on the open :class:`gui.session.CampaignSession`, and
reloading the table afterwards. Which rows may be retried or removed is
:mod:`gui.state`'s to say; these are plain slots, never run inside a coroutine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Protocol

from PySide6.QtGui import QAction

from core.store import RETRYABLE, Status, StoreError
from gui.log_panel import LogPanel
from gui.recipients_model import RecipientsModel
from gui.recipients_view import RecipientsPanel
from gui.rows import RecipientBook, RecipientRow, load_rows
from gui.session import CampaignSession
from gui.state import Action, ActionContext, RowAction, retry_needs_confirming, row_actions
from gui.transcript_panel import TranscriptPanel


class RowWindow(Protocol):
    """What the row actions need from the window (gui.main_window.MainWindow)."""

    session: CampaignSession | None
    action_for: dict[Action, QAction]
    confirm: Callable[[str, str], bool]
    recipients: RecipientsPanel
    model: RecipientsModel
    transcript: TranscriptPanel
    log: LogPanel

    def context(self) -> ActionContext: ...
    def _refresh(self) -> None: ...
    def _problem(self, text: str) -> None: ...

    # This module's own, which its actions call.
    def _retry(self, session: CampaignSession, ids: list[int]) -> int | None: ...
    def _reload_rows(self, session: CampaignSession) -> None: ...
    def _row_actions(self, rows: Sequence[RecipientRow]) -> frozenset[RowAction]: ...


class RowActions:
    """A mixin of :class:`gui.main_window.MainWindow` (no state of its own)."""

    def retry_fixable(self: RowWindow) -> int | None:
        """Queue again every recipient that failed for a reason that may have been fixed
        since (deferred, expired, sender-fault bounces), once the user agrees; how many
        were queued, or None when nothing was done."""
        session = self.session
        if session is None or not self.action_for[Action.RETRY_FIXABLE].isEnabled():
            return None
        try:
            ids = session.store.fixable_ids()
        except StoreError as error:
            self._problem(f"The recipients to retry could not be read: {error}")
            return None
        if not ids:
            return None
        question = (
            f"Queue {len(ids)} recipient(s) to be tried again?\n\n"
            "They were deferred, expired, or bounced for a reason the servers blamed on "
            "the sender (a blocklisting, a missing DNS record...), which may be fixed by "
            "now. Recipients that bounced for their own reasons (unknown mailbox...) are "
            "not retried.\n\nStart sends them."
        )
        if not self.confirm("Retry what may work now", question):
            return None
        return self._retry(session, ids)

    def retry_selected(self: RowWindow) -> int | None:
        """Queue the selected recipients again (those that may be); a possibly delivered
        one only once the user agrees to a possible second copy."""
        session = self.session
        rows = self.recipients.selected_rows()
        if session is None or RowAction.RETRY not in self._row_actions(rows):
            return None
        retryable = [row for row in rows if row.status in RETRYABLE]
        statuses = [row.status for row in retryable]
        if retry_needs_confirming(statuses):
            ambiguous = statuses.count(Status.AMBIGUOUS)
            question = (
                f"{ambiguous} of the selected recipient(s) may have received the message "
                "already: the server accepted the whole message but its answer never "
                "came.\n\nRetrying sends the same message again, so a second copy may "
                f"arrive. Queue {len(retryable)} recipient(s) again?"
            )
            if not self.confirm("Retry possibly delivered recipients", question):
                return None
        return self._retry(session, [row.id for row in retryable])

    def remove_selected(self: RowWindow) -> int | None:
        """Delete the selected recipients (and their attempts) from the campaign file,
        once the user agrees; how many went, or None when nothing was done."""
        session = self.session
        rows = self.recipients.selected_rows()
        if session is None or RowAction.REMOVE not in self._row_actions(rows):
            return None
        question = (
            f"Remove {len(rows)} recipient(s) from the campaign?\n\n"
            "They and their attempts are deleted from the campaign file: they are not "
            "sent, and the report no longer lists them. This cannot be undone."
        )
        if not self.confirm("Remove from campaign", question):
            return None
        return _change_rows(
            self,
            session,
            lambda: session.remove([row.id for row in rows]),
            "The recipients could not be removed",
            "removed from the campaign",
        )

    def _retry(self: RowWindow, session: CampaignSession, ids: list[int]) -> int | None:
        return _change_rows(
            self,
            session,
            lambda: session.retry(ids),
            "The recipients could not be queued again",
            "queued to be tried again: Start sends them",
        )

    def _reload_rows(self: RowWindow, session: CampaignSession) -> None:
        """The table from the file again (after the rows were changed outside a run)."""
        if session is not self.session:
            return
        with contextlib.suppress(StoreError):
            self.model.set_book(RecipientBook(load_rows(session.store), reload=session.store.get))
        self.transcript.show_recipient(None, None)
        self._refresh()

    def _row_actions(self: RowWindow, rows: Sequence[RecipientRow]) -> frozenset[RowAction]:
        """Which of Retry and Remove the table offers for ``rows`` now (gui.state)."""
        return row_actions(self.context(), [row.status for row in rows])


def _change_rows(
    window: RowWindow,
    session: CampaignSession,
    change: Callable[[], int],
    failure: str,
    done: str,
) -> int | None:
    """``change`` the campaign's rows, then the table from the file again (whether or
    not it worked); how many recipients it changed (logged, "N recipient(s)
    ``done``"), or None and a banner (``failure``: why)."""
    try:
        changed = change()
    except StoreError as error:
        window._problem(f"{failure}: {error}")
        return None
    finally:
        window._reload_rows(session)
    window.log.add(f"{changed} recipient(s) {done}")
    return changed
