"""The window's exports: the CSV report, the bounces as a suppression list, and the
per-domain summary, each from its File menu action (a save dialog) or called directly.

Owns choosing where an export goes, refusing to write over the open campaign file, and
telling the user what was written. The writing itself is core's (the store,
core.suppression, core.domain_summary); this module never changes the campaign.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtWidgets import QFileDialog, QStatusBar, QWidget

from core.domain_summary import export_domain_summary
from core.store import CampaignStore, StoreError
from core.suppression import write_suppression
from gui.log_panel import LogPanel
from gui.session import CampaignSession


class ExportWindow(Protocol):
    """What the exports need from the window (gui.main_window.MainWindow)."""

    session: CampaignSession | None
    log: LogPanel

    def window(self) -> QWidget: ...  # the window itself: its dialogs' parent
    def statusBar(self) -> QStatusBar: ...
    def _problem(self, text: str) -> None: ...

    # This module's own, which its save dialogs call.
    def export_report(self, path: Path) -> int | None: ...
    def export_bounces(self, path: Path) -> int | None: ...
    def export_domains(self, path: Path) -> int | None: ...


class ExportActions:
    """A mixin of :class:`gui.main_window.MainWindow` (no state of its own)."""

    def export_report(self: ExportWindow, path: Path) -> int | None:
        """Write the CSV report; the number of rows, or None (and a banner) on failure."""
        rows = _export(self, path, lambda store: store.export_report(path))
        if rows is not None:
            self.log.add(f"report: {rows} rows written to {path}")
            self.statusBar().showMessage(f"Report written to {path}", 10_000)
        return rows

    def export_bounces(self: ExportWindow, path: Path) -> int | None:
        """Write the recipients' own bounces as a suppression list (see mxmailer
        export-bounces); the number of addresses, or None on failure."""
        if self.session is None or _refuse_campaign_file(self, path):
            return None
        store = self.session.store
        try:
            written = write_suppression(path, store.bounced_addresses())
            others = len(store.bounced_addresses("")) + len(store.bounced_addresses("sender"))
        except (OSError, StoreError, ValueError) as error:
            self._problem(f"The suppression list could not be written: {error}")
            return None
        self.log.add(f"suppression list: {written} bounced address(es) written to {path}")
        if others:
            self.log.add(
                f"{others} other bounce(s) left out: the servers blamed the sender or gave no "
                "clear reason, so those addresses may be fine"
            )
        self.statusBar().showMessage(f"Suppression list written to {path}", 10_000)
        return written

    def export_domains(self: ExportWindow, path: Path) -> int | None:
        """Write the per-domain summary (see mxmailer export-domains); the number of
        domains, or None (and a banner) on failure."""
        domains = _export(self, path, lambda store: export_domain_summary(store, path))
        if domains is not None:
            self.log.add(f"per-domain summary: {domains} domain(s) written to {path}")
            self.statusBar().showMessage(f"Per-domain summary written to {path}", 10_000)
        return domains

    # ---- save dialogs (plain slots only: never inside a coroutine) ----------------------

    def _choose_report(self: ExportWindow) -> None:
        _choose(self, "Export report", "-report.csv", "CSV files (*.csv)", self.export_report)

    def _choose_domains(self: ExportWindow) -> None:
        _choose(
            self,
            "Export per-domain summary",
            "-domains.csv",
            "CSV files (*.csv)",
            self.export_domains,
        )

    def _choose_bounces(self: ExportWindow) -> None:
        _choose(
            self,
            "Export bounces as suppression list",
            "-bounces.txt",
            "Text files (*.txt);;All files (*)",
            self.export_bounces,
        )


def _choose(
    window: ExportWindow,
    title: str,
    suffix: str,
    filters: str,
    export: Callable[[Path], int | None],
) -> None:
    """Ask where to save (next to the campaign file, its name + ``suffix``), then
    ``export`` there; nothing when no campaign is open or the user cancels."""
    if window.session is not None:
        suggested = window.session.path.with_name(window.session.path.stem + suffix)
        name, _ = QFileDialog.getSaveFileName(window.window(), title, str(suggested), filters)
        if name:
            export(Path(name))


def _export(window: ExportWindow, path: Path, write: Callable[[CampaignStore], int]) -> int | None:
    """``write`` the open campaign's export to ``path``; what it counted, or None (and
    a banner) when no campaign is open, ``path`` is the campaign file, or the store
    fails."""
    session = window.session
    if session is None or _refuse_campaign_file(window, path):
        return None
    try:
        return write(session.store)
    except StoreError as error:
        window._problem(str(error))
        return None


def _refuse_campaign_file(window: ExportWindow, path: Path) -> bool:
    """An export aimed at the open campaign file would replace the campaign with a
    CSV (a file dialog asks "replace?" and a hurried user says yes): refused."""
    session = window.session
    if session is not None and path.resolve() == session.path.resolve():
        window._problem(f"{path.name} is the campaign file itself: choose another name")
        return True
    return False
