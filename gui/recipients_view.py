"""The recipients panel: status filter, search box, the table, and its context menu.

Owns the widgets around the table and what the user does to a row (copy its address,
open its transcript; retry or remove the selected rows, which it offers as
:func:`gui.state.row_actions` says and the window carries out). It reads rows through the
model; it never touches the engine or the campaign file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from PySide6.QtCore import QEvent, QModelIndex, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QFontDatabase, QFontMetrics, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from gui.recipients_filter import RecipientsFilter
from gui.recipients_model import HEADERS, ID_ROLE, Column, RecipientsModel
from gui.rows import Group, RecipientRow
from gui.state import RowAction

#: Decides which row actions the selected rows allow (the window's, from gui.state).
RowRule = Callable[[Sequence[RecipientRow]], frozenset[RowAction]]

#: The status filter's choices, in the order the combo lists them.
FILTERS: Final[tuple[tuple[str, frozenset[Group] | None], ...]] = (
    ("All recipients", None),
    ("In progress", frozenset({Group.ACTIVE})),
    ("Waiting to retry", frozenset({Group.WAITING})),
    ("Delivered", frozenset({Group.DELIVERED})),
    (
        "Not delivered",
        frozenset({Group.BOUNCED, Group.EXPIRED, Group.AMBIGUOUS, Group.SKIPPED}),
    ),
    ("Bounced", frozenset({Group.BOUNCED})),
    ("Expired", frozenset({Group.EXPIRED})),
    ("Possibly delivered", frozenset({Group.AMBIGUOUS})),
    ("Invalid or suppressed", frozenset({Group.SKIPPED})),
)
#: Starting widths in average characters (the Result column takes what is left).
_WIDTHS: Final = {
    Column.NUMBER: 5,
    Column.EMAIL: 25,
    Column.NAME: 19,
    Column.DOMAIN: 14,
    Column.PHASE: 20,
    Column.ATTEMPTS: 9,
    Column.MX: 30,
}
#: "00:12 · destination paused", in the fixed-pitch font the countdown uses.
_NEXT_TRY_SAMPLE: Final = "00:00 · destination paused "


class RecipientsPanel(QWidget):
    """Filter bar over a sortable table of recipients."""

    #: The current recipient's id (-1: none).
    current_changed = Signal(int)
    #: The user asked to see a recipient's transcript.
    transcript_requested = Signal(int)

    def __init__(self, model: RecipientsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = RecipientsFilter(model, self)

        self.status_filter = QComboBox()
        self.status_filter.setAccessibleName("Show recipients")
        for label, groups in FILTERS:
            self.status_filter.addItem(label, groups)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search email, name, domain, reply, MX…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search recipients")
        self.shown = QLabel()
        self.shown.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        bar = QHBoxLayout()
        show_label = QLabel("&Show:")
        show_label.setBuddy(self.status_filter)
        bar.addWidget(show_label)
        bar.addWidget(self.status_filter)
        bar.addWidget(self.search, 1)
        bar.addWidget(self.shown)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.NUMBER, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.setAccessibleName("Recipients")
        self._size_columns()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)

        self.copy_action = QAction("&Copy address", self)
        self.copy_action.setShortcut(QKeySequence.StandardKey.Copy)
        self.copy_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.copy_action.triggered.connect(self.copy_address)
        self.table.addAction(self.copy_action)
        self.transcript_action = QAction("Show &transcript", self)
        self.transcript_action.triggered.connect(self._request_transcript)
        # Carried out by the window (it asks before changing the file).
        self.retry_action = QAction("&Retry", self)
        self.retry_action.setStatusTip(
            "Queue the selected recipients again (deferred, expired, bounced or possibly "
            "delivered ones); Start sends them"
        )
        self.remove_action = QAction("Re&move from campaign…", self)
        self.remove_action.setStatusTip(
            "Delete the selected recipients and their attempts from the campaign file"
        )
        self._row_rule: RowRule = lambda _rows: frozenset()

        self.status_filter.currentIndexChanged.connect(self._filter_changed)
        self.search.textChanged.connect(self.proxy.set_search)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.doubleClicked.connect(lambda _: self._request_transcript())
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.table.selectionModel().selectionChanged.connect(self.update_row_actions)
        for signal in (
            self.proxy.rowsInserted,
            self.proxy.rowsRemoved,
            self.proxy.modelReset,
            self.proxy.layoutChanged,
        ):
            signal.connect(self._count_shown)
        self._count_shown()

    # ---- what the user sees -------------------------------------------------------------

    def current_id(self) -> int | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        value = index.data(ID_ROLE)
        return value if isinstance(value, int) else None

    def select_recipient(self, recipient_id: int) -> bool:
        """Make ``recipient_id`` the current row (if the filter shows it)."""
        position = self.model.book.position(recipient_id)
        if position is None:
            return False
        row = self.model.model_row(position)
        index = self.proxy.mapFromSource(self.model.index(row, Column.EMAIL))
        if not index.isValid():
            return False
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)
        return True

    def select_status(self, label: str) -> None:
        """Choose a status filter by its label (for tests and menus)."""
        position = self.status_filter.findText(label)
        if position < 0:
            raise KeyError(label)
        self.status_filter.setCurrentIndex(position)

    def selected_rows(self) -> list[RecipientRow]:
        """The selected recipients, in the table's order."""
        rows: list[RecipientRow] = []
        for index in sorted(self.table.selectionModel().selectedRows(), key=QModelIndex.row):
            value = index.data(ID_ROLE)
            position = self.model.book.position(value) if isinstance(value, int) else None
            if position is not None:
                rows.append(self.model.book.rows[position])
        return rows

    def selected_ids(self) -> list[int]:
        return [row.id for row in self.selected_rows()]

    def set_row_rule(self, rule: RowRule) -> None:
        """Who decides whether Retry and Remove are offered for the selected rows."""
        self._row_rule = rule
        self.update_row_actions()

    def update_row_actions(self, *_: object) -> None:
        allowed = self._row_rule(self.selected_rows())
        self.retry_action.setEnabled(RowAction.RETRY in allowed)
        self.remove_action.setEnabled(RowAction.REMOVE in allowed)

    def copy_address(self) -> None:
        index = self.table.currentIndex()
        if index.isValid():
            email = index.siblingAtColumn(Column.EMAIL).data()
            QGuiApplication.clipboard().setText(str(email))

    # ---- plumbing -----------------------------------------------------------------------

    def _size_columns(self) -> None:
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(Column.RESULT, QHeaderView.ResizeMode.Stretch)
        header.setHighlightSections(False)
        width = self.fontMetrics().averageCharWidth()
        for column, characters in _WIDTHS.items():
            minimum = self.fontMetrics().horizontalAdvance(HEADERS[column]) + 3 * width
            self.table.setColumnWidth(column, max(characters * width, minimum))
        fixed = QFontMetrics(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.table.setColumnWidth(Column.NEXT_TRY, fixed.horizontalAdvance(_NEXT_TRY_SAMPLE))

    def _filter_changed(self, position: int) -> None:
        groups = self.status_filter.itemData(position)
        self.proxy.set_groups(groups)

    def _count_shown(self, *_: object) -> None:
        self.shown.setText(f"{self.proxy.rowCount()} of {self.model.rowCount()} shown")

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        value = current.data(ID_ROLE) if current.isValid() else None
        self.current_changed.emit(value if isinstance(value, int) else -1)

    def _request_transcript(self) -> None:
        recipient = self.current_id()
        if recipient is not None:
            self.transcript_requested.emit(recipient)

    def _context_menu(self, position: QPoint) -> None:
        index = self.table.indexAt(position)
        if not index.isValid():
            return
        if not self.table.selectionModel().isSelected(index):
            self.table.setCurrentIndex(index)  # else the menu is for the whole selection
        self.update_row_actions()
        menu = QMenu(self)  # popup(), never exec(): no nested loop (see gui.loop)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.addAction(self.copy_action)
        menu.addAction(self.transcript_action)
        menu.addSeparator()
        menu.addAction(self.retry_action)
        menu.addAction(self.remove_action)
        menu.popup(self.table.viewport().mapToGlobal(position))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() is QEvent.Type.PaletteChange:
            self.model.restyle()
        super().changeEvent(event)
