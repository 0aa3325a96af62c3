"""The window's campaign files: File ▸ Open, Open recent and Save as, the file dialogs
behind them and behind Import CSV, and a .csv dropped on the window.

Owns choosing a file and the checks before one is opened or copied (not while a run is
busy, never over an existing file unasked). Opening a file as the window's campaign is
the window's (``_open_session``, ``_attach``), reading and copying it the store's; the
dialogs open only from plain slots, never from a coroutine (see gui.loop).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from core.store import StoreError
from gui.import_dialog import ImportDialog
from gui.log_panel import LogPanel
from gui.recent import RecentCampaigns
from gui.session import CampaignSession
from gui.state import Action

if TYPE_CHECKING:
    from gui.main_window import WindowOptions


class CampaignFileWindow(Protocol):
    """What the campaign files need from the window (gui.main_window.MainWindow)."""

    session: CampaignSession | None
    action_for: dict[Action, QAction]
    recent: RecentCampaigns
    recent_menu: QMenu
    log: LogPanel
    options: WindowOptions

    def window(self) -> QWidget: ...  # the window itself: its dialogs' parent
    def import_csv(self, path: Path) -> ImportDialog | None: ...
    def _busy(self) -> bool: ...
    def _problem(self, text: str) -> None: ...
    def _open_session(self, path: Path) -> CampaignSession: ...
    def _attach(self, session: CampaignSession) -> None: ...

    # This module's own, which its dialogs and menu call.
    def open_file(self, path: Path) -> bool: ...
    def save_as(self, path: Path) -> bool: ...


class CampaignFiles:
    """A mixin of :class:`gui.main_window.MainWindow` (no state of its own)."""

    def open_file(self: CampaignFileWindow, path: Path) -> bool:
        """Open a campaign file; False (and a banner saying why) when it cannot be."""
        if self._busy():
            return False
        if self.session is not None and path.resolve() == self.session.path.resolve():
            return True  # already open (and locked by this window)
        try:
            session = self._open_session(path)
        except (OSError, StoreError) as error:
            self._problem(f"{path} could not be opened: {error}")
            return False
        self._attach(session)
        return True

    def save_as(self: CampaignFileWindow, path: Path) -> bool:
        """Copy the open campaign to ``path`` and go on in the copy; the old file stays as
        it was. False (and a banner saying why) when it could not be done."""
        session = self.session
        if session is None or not self.action_for[Action.SAVE_AS].isEnabled():
            return False
        if not path.suffix:
            path = path.with_name(path.name + ".mxm")
            if path.exists():  # the name asked about had no suffix: never replace unasked
                self._problem(f"{path} already exists: choose another name")
                return False
        old, queued_in_both = session.path, session.unfinished if session.real else 0
        try:
            session.store.save_copy(path)
        except StoreError as error:
            self._problem(f"The campaign could not be saved as {path}: {error}")
            return False
        if not self.open_file(path):
            return False
        self.log.add(f"saved as {path.name}: {old} is left as it was")
        if queued_in_both:
            self.log.add(
                f"send from one of the two files only: the {queued_in_both:,} "
                "recipient(s) still queued in both would get the message twice"
            )
        return True

    def _fill_recent_menu(self: CampaignFileWindow) -> None:
        """File ▸ Open recent, as it is now (a missing file is listed, disabled)."""
        menu = self.recent_menu
        menu.clear()
        busy = self._busy()
        for number, path in enumerate(self.recent.paths, start=1):
            label = f"&{number} {path.name}" if number < 10 else path.name
            action = menu.addAction(label)
            action.setToolTip(str(path))
            action.setStatusTip(str(path) if path.exists() else f"{path} (not found)")
            action.setEnabled(not busy and path.exists())
            action.triggered.connect(lambda _=False, chosen=path: self.open_file(chosen))
        if not self.recent.paths:
            menu.addAction("No recent campaigns").setEnabled(False)
            return
        menu.addSeparator()
        menu.addAction("&Clear the list", self.recent.clear)

    # ---- dialogs (plain slots only: never inside a coroutine) ---------------------------

    def _choose_campaign(self: CampaignFileWindow) -> None:
        folder = str(self.options.data_dir if self.options.data_dir.exists() else Path.home())
        name, _ = QFileDialog.getOpenFileName(
            self.window(), "Open campaign", folder, "MX Mailer campaigns (*.mxm);;All files (*)"
        )
        if name:
            self.open_file(Path(name))

    def _choose_save_as(self: CampaignFileWindow) -> None:
        if self.session is not None:
            suggested = self.session.path.with_name(self.session.path.stem + " copy.mxm")
            dialog = QFileDialog(
                self.window(), "Save campaign as", str(suggested), "MX Mailer campaigns (*.mxm)"
            )
            dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
            dialog.setDefaultSuffix("mxm")  # so "replace?" is asked about the real name
            if dialog.exec() and dialog.selectedFiles():
                self.save_as(Path(dialog.selectedFiles()[0]))

    def _choose_csv(self: CampaignFileWindow) -> None:
        folder = str(Path.home())
        name, _ = QFileDialog.getOpenFileName(
            self.window(),
            "New campaign from a CSV",
            folder,
            "CSV files (*.csv *.txt);;All files (*)",
        )
        if name:
            self.import_csv(Path(name))

    # ---- a .csv dropped on the window is imported ---------------------------------------

    def dragEnterEvent(self: CampaignFileWindow, event: QDragEnterEvent) -> None:
        if dropped_csv(event.mimeData()) is not None and not self._busy():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self: CampaignFileWindow, event: QDropEvent) -> None:
        path = dropped_csv(event.mimeData())
        if path is None or self.import_csv(path) is None:
            event.ignore()
            return
        event.acceptProposedAction()


def dropped_csv(mime: QMimeData) -> Path | None:
    """The first local .csv file among dropped URLs, if any."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.suffix.lower() == ".csv" and path.is_file():
                return path
    return None
