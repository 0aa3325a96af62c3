"""The Import dialog: a CSV becomes a new campaign, seen before it is made.

Owns the widgets only: the file, the encoding, delimiter and address column choices,
the preview of the first rows, the dry-run summary (counts, invalid reasons, duplicates)
and errors in plain words, shown inline. What the choices mean and what the file becomes
is :mod:`gui.importing`'s; it runs on a worker thread (the dry run and the import both
read the whole file) while a busy indicator shows, so the window never freezes. The
import opens its own SQLite connection on that thread and closes it there; the window
opens the finished file on its own thread afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Final

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QCloseEvent, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.recipients import RecipientsError
from core.store import StoreError
from gui.banners import Banner, Kind
from gui.campaign_build import remove_campaign_file
from gui.importing import (
    DELIMITER_NAMES,
    ENCODINGS,
    DryRun,
    ImportChoices,
    dry_run,
    import_campaign,
    plain_error,
    summary_lines,
)
from gui.sandbox import SampleCampaign
from gui.settings_model import AppSettings

LAB_NOTE: Final = (
    "The campaign is sent only to the lab on this computer, with the sandbox sample "
    "message. Only addresses on the lab's .test domains can be reached there; the "
    "others will fail as “no such domain”."
)
REAL_NOTE: Final = (
    "A real campaign from {sender}: write its message next (Campaign ▸ Edit message). "
    "Nothing can be sent before the message is written, and Start asks you to confirm "
    "the count."
)
NOT_REAL: Final = "Choose real delivery in Settings first (File ▸ Settings)."


class _Relay(QObject):
    """Carries a worker's result back to the dialog's thread (a queued signal)."""

    done = Signal(int, object)


class _Job(QRunnable):
    def __init__(self, ticket: int, work: Callable[[], object], relay: _Relay) -> None:
        super().__init__()
        self.ticket = ticket
        self.work = work
        self.relay = relay

    def run(self) -> None:
        try:
            result = self.work()
        except Exception as error:  # shown in the dialog, never lost
            result = error
        self.relay.done.emit(self.ticket, result)


class ImportDialog(QDialog):
    """Choose how to read a CSV, see what it becomes, and import it into a new campaign
    in ``folder``: a sandbox one, or a real one when ``real`` settings allow it and the
    user chooses it; once accepted, :attr:`campaign` is the file made."""

    #: A dry run was shown (or its error): for tests and the screenshot script.
    refreshed = Signal()

    def __init__(
        self,
        path: Path,
        folder: Path,
        parent: QWidget | None = None,
        *,
        real: AppSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New campaign from a CSV")
        self.folder = folder
        #: The settings that allow a real campaign (None: only a sandbox one may be made).
        self.real_settings = real
        self.choices = ImportChoices(path)
        self.run: DryRun | None = None
        self.campaign: SampleCampaign | None = None
        self._ticket = 0
        self._done_ticket = 0
        self._importing = False
        #: Set by Cancel while importing; the worker looks at it every thousand rows.
        self._cancel = threading.Event()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # one job at a time; stale dry runs are dropped
        self._relay = _Relay()
        self._relay.done.connect(self._finished)

        self.file_label = QLabel()
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.choose_button = QPushButton("Choose another file…")
        self.choose_button.clicked.connect(self._choose_file)
        file_row = QHBoxLayout()
        file_row.addWidget(self.file_label, 1)
        file_row.addWidget(self.choose_button)

        self.encoding = QComboBox()
        self.encoding.addItem("Detected", None)
        for name in ENCODINGS:
            self.encoding.addItem(name, name)
        self.delimiter = QComboBox()
        self.delimiter.addItem("Detected", None)
        for character, name in DELIMITER_NAMES.items():
            self.delimiter.addItem(name, character)
        self.address = QComboBox()
        self.address.setMinimumContentsLength(24)
        self.encoding.currentIndexChanged.connect(self._encoding_chosen)
        self.delimiter.currentIndexChanged.connect(self._delimiter_chosen)
        self.address.currentIndexChanged.connect(self._address_chosen)

        form = QFormLayout()
        form.addRow("File:", file_row)
        form.addRow("Encoding:", self.encoding)
        form.addRow("Delimiter:", self.delimiter)
        form.addRow("Address column:", self.address)
        self.sandbox_choice = QRadioButton("The lab on this computer (sandbox)")
        self.real_choice = QRadioButton(
            f"Real recipients, from {real.sender}" if real else "Real recipients"
        )
        self.sandbox_choice.setChecked(True)  # the safe choice, whatever the settings
        self.real_choice.setEnabled(real is not None)
        if real is None:
            self.real_choice.setToolTip(NOT_REAL)
        destination = QButtonGroup(self)
        destination_row = QHBoxLayout()
        for button in (self.sandbox_choice, self.real_choice):
            destination.addButton(button)
            destination_row.addWidget(button)
            button.toggled.connect(self._destination_chosen)
        destination_row.addStretch(1)
        form.addRow("Send to:", destination_row)

        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setAlternatingRowColors(True)
        self.table.setMinimumHeight(200)

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error = Banner(Kind.PROBLEM)
        self.error.hide()
        self.note = note = QLabel(LAB_NOTE)
        note.setWordWrap(True)

        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(12)
        self.busy_label = QLabel()
        busy_row = QHBoxLayout()
        busy_row.addWidget(self.busy_label)
        busy_row.addWidget(self.busy, 1)

        self.buttons = QDialogButtonBox()
        self.import_button = self.buttons.addButton(
            "Import", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.import_button.setDefault(True)
        self.buttons.accepted.connect(self._import)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("<b>First rows</b>"))
        layout.addWidget(self.table, 1)
        layout.addWidget(QLabel("<b>What the import finds</b>"))
        layout.addWidget(self.summary)
        layout.addWidget(self.error)
        layout.addWidget(note)
        layout.addLayout(busy_row)
        layout.addWidget(self.buttons)
        self.resize(820, 640)
        self._set_path(path)

    # ---- state --------------------------------------------------------------------------

    @property
    def working(self) -> bool:
        """A dry run or the import is running on the worker thread."""
        return self._ticket != self._done_ticket or self._importing

    def _update_buttons(self) -> None:
        busy = self.working
        self.busy.setVisible(busy)
        self.busy_label.setVisible(busy)
        run = self.run
        self.import_button.setEnabled(not busy and run is not None and run.importable)
        self.cancel_button.setEnabled(not self._cancel.is_set())
        self.choose_button.setEnabled(not self._importing)
        for combo in (self.encoding, self.delimiter, self.address):
            combo.setEnabled(not self._importing)
        self.sandbox_choice.setEnabled(not self._importing)
        self.real_choice.setEnabled(not self._importing and self.real_settings is not None)

    @property
    def real(self) -> bool:
        """The campaign made will be a real one (sent to the recipients' servers)."""
        return self.real_choice.isChecked() and self.real_settings is not None

    def _destination_chosen(self) -> None:
        settings = self.real_settings
        if self.real and settings is not None:
            self.note.setText(REAL_NOTE.format(sender=settings.sender))
        else:
            self.note.setText(LAB_NOTE)

    # ---- choices ------------------------------------------------------------------------

    def _set_path(self, path: Path) -> None:
        self.choices = ImportChoices(path)
        self.file_label.setText(str(path))
        for combo in (self.encoding, self.delimiter):
            combo.blockSignals(True)
            combo.setCurrentIndex(0)
            combo.blockSignals(False)
        self._refresh()

    def _choose_file(self) -> None:
        if self._importing:
            return
        name, _ = QFileDialog.getOpenFileName(
            self,
            "Choose a recipients file",
            str(self.choices.path.parent),
            "CSV files (*.csv *.txt);;All files (*)",
        )
        if name:
            self._set_path(Path(name))

    def choose(self, **changes: object) -> None:
        """Change the choices (``encoding``, ``delimiter``, ``address_column``) as the
        combo boxes do, and refresh the preview and the summary."""
        combos = {"encoding": self.encoding, "delimiter": self.delimiter}
        for name, value in changes.items():
            combo = combos.get(name, self.address)
            index = combo.findData(value)
            if index < 0:
                raise ValueError(f"no {name} {value!r} to choose")
            combo.setCurrentIndex(index)

    def _encoding_chosen(self, index: int) -> None:
        encoding = self.encoding.itemData(index)
        self.choices = replace(self.choices, encoding=encoding)
        self._refresh()

    def _delimiter_chosen(self, index: int) -> None:
        delimiter = self.delimiter.itemData(index)
        # Other columns: the detected address column is found again among them.
        self.choices = replace(self.choices, delimiter=delimiter, address_column=None)
        self._refresh()

    def _address_chosen(self, index: int) -> None:
        column = self.address.itemData(index)
        if isinstance(column, int) and column != self.choices.address_column:
            self.choices = replace(self.choices, address_column=column)
            self._refresh()

    # ---- the worker ---------------------------------------------------------------------

    def _refresh(self) -> None:
        """Run the dry run for the current choices on the worker thread."""
        if self._importing:  # its result must not be taken for the import's
            return
        choices = self.choices
        self._start(lambda: dry_run(choices), "Reading the file…")

    def _start(self, work: Callable[[], object], what: str) -> None:
        self._ticket += 1
        self.busy_label.setText(what)
        self._pool.clear()  # queued jobs for earlier choices would only be thrown away
        self._pool.start(_Job(self._ticket, work, self._relay))
        self._update_buttons()

    def _finished(self, ticket: int, result: object) -> None:
        if ticket != self._ticket:
            return  # superseded by a later choice
        self._done_ticket = ticket
        if self._importing:
            self._imported(result)
        elif isinstance(result, DryRun):
            self._show(result)
        else:
            self._show(DryRun(self.choices, error=f"The file could not be read: {result}."))
        self._update_buttons()

    def _import(self) -> None:
        run = self.run
        if self.working or run is None or not run.importable:
            return
        self._importing = True
        self._cancel.clear()
        choices, folder, cancel = run.choices, self.folder, self._cancel
        real = self.real_settings if self.real else None
        self._start(
            lambda: import_campaign(choices, folder, real=real, cancelled=cancel.is_set),
            "Importing…",
        )

    def _imported(self, result: object) -> None:
        self._importing = False
        if self._cancel.is_set():  # whatever the worker ended with, the user said cancel
            if isinstance(result, SampleCampaign):  # it finished before it looked
                remove_campaign_file(result.path)
            super().reject()
            return
        if isinstance(result, SampleCampaign):
            self.campaign = result
            self.accept()
            return
        if isinstance(result, (RecipientsError, OSError, StoreError)):
            text = plain_error(result, self.choices.path)
        else:
            text = f"Something went wrong inside MX Mailer ({result!r})."
        self.error.show_text(f"The campaign could not be made: {text}")
        self.import_button.setEnabled(False)

    # ---- showing ------------------------------------------------------------------------

    def _show(self, run: DryRun) -> None:
        self.run = run
        preview = run.preview
        self._fill_table(run)
        self._fill_address(run)
        if preview is not None:
            self.encoding.setItemText(0, f"Detected: {preview.encoding}")
            self.delimiter.setItemText(0, f"Detected: {preview.delimiter_name}")
        else:
            self.encoding.setItemText(0, "Detected")
            self.delimiter.setItemText(0, "Detected")
        self.summary.setText("\n".join(summary_lines(run)) or "Nothing to import.")
        if run.error:
            self.error.show_text(run.error)
        else:
            self.error.hide()
        self.refreshed.emit()

    def _fill_table(self, run: DryRun) -> None:
        preview = run.preview
        self.table.clear()
        if preview is None:
            self.table.setRowCount(0)
            self.table.setColumnCount(0)
            return
        width = max([len(preview.columns), *(len(row) for row in preview.rows)])
        self.table.setColumnCount(width)
        self.table.setRowCount(len(preview.rows))
        headers = [*preview.columns, *(f"(extra {n})" for n in range(len(preview.columns), width))]
        self.table.setHorizontalHeaderLabels(headers)
        address = run.address_column
        bold = QFont(self.table.font())
        bold.setBold(True)
        for row, cells in enumerate(preview.rows):
            for column, cell in enumerate(cells):
                item = QTableWidgetItem(cell.replace("\r\n", "⏎").replace("\n", "⏎"))
                if column == address:
                    item.setFont(bold)
                self.table.setItem(row, column, item)
        if address is not None and address < width:
            header = self.table.horizontalHeaderItem(address)
            if header is not None:
                header.setText(f"{headers[address]} (addresses)")
                header.setFont(bold)
        self.table.resizeColumnsToContents()
        for column in range(width):
            self.table.setColumnWidth(column, min(self.table.columnWidth(column), 260))

    def _fill_address(self, run: DryRun) -> None:
        combo = self.address
        combo.blockSignals(True)
        combo.clear()
        if run.preview is not None:
            for index, name in enumerate(run.preview.columns):
                combo.addItem(f"{name} (column {index + 1})", index)
            chosen = run.address_column
            if chosen is None:
                combo.insertItem(0, "Choose the column with the addresses", None)
                combo.setCurrentIndex(0)
            else:
                combo.setCurrentIndex(combo.findData(chosen))
        combo.blockSignals(False)

    # ---- closing ------------------------------------------------------------------------

    def reject(self) -> None:
        """Cancel, or close: while importing, the import is cancelled first (the file
        being made is removed) and the dialog closes once the worker has stopped."""
        if self._importing:
            self._cancel.set()
            self.busy_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._importing:
            event.ignore()
            self.reject()
            return
        super().closeEvent(event)

    def done(self, result: int) -> None:
        self._ticket += 1  # a dry run still running is no longer wanted
        self._done_ticket = self._ticket
        self._pool.clear()  # and none still queued may start (closing waits for them)
        super().done(result)
