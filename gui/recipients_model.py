"""The recipients table's Qt model: a thin adapter over :class:`gui.rows.RecipientBook`.

Owns the mapping of rows to columns and roles, the order of the rows, and the signals:
a batch of engine events becomes one ``dataChanged`` per run of consecutive changed rows
(never a reset, which would lose the selection and the scroll position and cost
O(rows)); the once-a-second clock repaints only the "Next try" cells of waiting rows. It
holds no widgets.

Sorting is done here, as one Python sort of the column's keys (about 0.1 s for 100,000
rows), not by the proxy: a QSortFilterProxyModel compares through ``data()``, some two
million calls into Python for 100,000 rows, which froze the window for seconds. A sort
holds until the user sorts again: rows do not jump around under the pointer while the
engine changes their phase (sorting by #, Email, Name or Domain never goes stale).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QFontDatabase, QGuiApplication

from core.events import Event
from gui.display import (
    PHASE_ORDER,
    clock,
    next_try_text,
    phase_help,
    phase_key,
    phase_text,
    result_text,
)
from gui.rows import BatchResult, RecipientBook, RecipientRow, contiguous
from gui.status_style import status_color, status_icon


class Column(enum.IntEnum):
    NUMBER = 0
    EMAIL = 1
    NAME = 2
    DOMAIN = 3
    PHASE = 4
    NEXT_TRY = 5
    ATTEMPTS = 6
    RESULT = 7
    MX = 8


HEADERS: Final = {
    Column.NUMBER: "#",
    Column.EMAIL: "Email",
    Column.NAME: "Name",
    Column.DOMAIN: "Domain",
    Column.PHASE: "Phase",
    Column.NEXT_TRY: "Next try",
    Column.ATTEMPTS: "Attempts",
    Column.RESULT: "Result",
    Column.MX: "MX",
}
#: The row's :class:`gui.rows.Group` value, which the status filter matches.
GROUP_ROLE: Final = Qt.ItemDataRole.UserRole + 2
#: The recipient's id in the campaign file.
ID_ROLE: Final = Qt.ItemDataRole.UserRole + 3

_DISPLAY: Final = Qt.ItemDataRole.DisplayRole
_NUMERIC: Final = frozenset({Column.NUMBER, Column.ATTEMPTS})
_COLOURED: Final = frozenset({Column.PHASE, Column.NEXT_TRY})
Index = QModelIndex | QPersistentModelIndex
_ROOT: Final = QModelIndex()


class RecipientsModel(QAbstractTableModel):
    """Rows of a :class:`RecipientBook`; call :meth:`apply` with each event batch."""

    def __init__(
        self, parent: QObject | None = None, *, now: Callable[[], float] = time.time
    ) -> None:
        super().__init__(parent)
        self.book = RecipientBook()
        self._now = now
        self._fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.sort_column = Column.NUMBER
        self.sort_order = Qt.SortOrder.AscendingOrder
        #: Model row -> position in the book, and back; None while they are the same
        #: (sorted by # ascending: the book's own order, by id).
        self._order: list[int] | None = None
        self._row_of: list[int] | None = None

    # ---- feeding ------------------------------------------------------------------------

    def set_book(self, book: RecipientBook) -> None:
        """Show another campaign (the one reset: a new campaign is a new table)."""
        self.beginResetModel()
        self.book = book
        self._arrange()
        self.endResetModel()

    def apply(self, batch: Iterable[Event]) -> BatchResult:
        """Apply one batch from the engine's bus; signal the rows it changed."""
        result = self.book.apply(batch, self._now())
        last = len(Column) - 1
        for first, final in contiguous(self._model_rows(result.changed)):
            self.dataChanged.emit(self.index(first, 0), self.index(final, last))
        return result

    def tick(self) -> None:
        """The clock moved: repaint the countdowns (display only: sort keys are times)."""
        column = Column.NEXT_TRY
        for first, last in contiguous(self._model_rows(self.book.waiting_positions())):
            self.dataChanged.emit(self.index(first, column), self.index(last, column), [_DISPLAY])

    def restyle(self) -> None:
        """The palette changed (e.g. dark mode): colours and icons are drawn again."""
        if self.book.rows:
            self.dataChanged.emit(
                self.index(0, Column.PHASE), self.index(len(self.book) - 1, Column.NEXT_TRY)
            )

    def row_at(self, row: int) -> RecipientRow:
        """The recipient shown at model row ``row``."""
        return self.book.rows[self._position(row)]

    def _position(self, row: int) -> int:
        return row if self._order is None else self._order[row]

    def model_row(self, position: int) -> int:
        """The model row of the book's row at ``position``."""
        return position if self._row_of is None else self._row_of[position]

    def _model_rows(self, positions: Iterable[int]) -> list[int]:
        """Book positions as ascending model rows."""
        if self._row_of is None:
            return sorted(positions)
        row_of = self._row_of
        return sorted(row_of[position] for position in positions)

    # ---- sorting ------------------------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Order the rows by ``column`` (the view's header asks, through the proxy);
        persistent indexes (the selection, the current row) follow their recipients."""
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        positions = [self._position(index.row()) for index in persistent]
        self.sort_column, self.sort_order = Column(column), order
        self._arrange()
        moved = [
            self.index(self.model_row(position), index.column())
            for index, position in zip(persistent, positions, strict=True)
        ]
        self.changePersistentIndexList(persistent, moved)
        self.layoutChanged.emit()

    def _arrange(self) -> None:
        """Compute the row order for the sort column and order, from the book."""
        column, descending = self.sort_column, self.sort_order is Qt.SortOrder.DescendingOrder
        if column is Column.NUMBER and not descending:
            self._order = self._row_of = None
            return
        rows = self.book.rows
        keys = [_sort_key(row, column) for row in rows]
        order = sorted(range(len(rows)), key=keys.__getitem__, reverse=descending)
        row_of = [0] * len(order)
        for model_row, position in enumerate(order):
            row_of[position] = model_row
        self._order, self._row_of = order, row_of

    # ---- QAbstractTableModel ------------------------------------------------------------

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.book)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(Column)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> object:
        if orientation is Qt.Orientation.Horizontal and role == _DISPLAY:
            return HEADERS[Column(section)]
        return None

    def data(self, index: Index, role: int = _DISPLAY) -> object:
        if not index.isValid():
            return None
        row = self.row_at(index.row())
        column = Column(index.column())
        if role == _DISPLAY:
            return self._text(row, column)
        if role == GROUP_ROLE:
            return row.group.value
        if role == ID_ROLE:
            return row.id
        if role == Qt.ItemDataRole.DecorationRole and column is Column.PHASE:
            return status_icon(phase_key(row), QGuiApplication.palette())
        if role == Qt.ItemDataRole.ForegroundRole and column in _COLOURED:
            return status_color(phase_key(row), QGuiApplication.palette())
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        if role == Qt.ItemDataRole.FontRole and column is Column.NEXT_TRY:
            return self._fixed
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _NUMERIC:
            return (Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value
        return None

    def _text(self, row: RecipientRow, column: Column) -> str:
        if column is Column.NUMBER:
            return str(row.id)
        if column is Column.EMAIL:
            return row.email
        if column is Column.NAME:
            return row.name
        if column is Column.DOMAIN:
            return row.domain
        if column is Column.PHASE:
            return phase_text(row)
        if column is Column.NEXT_TRY:
            return next_try_text(row, self._now())
        if column is Column.ATTEMPTS:
            return str(row.attempts)
        if column is Column.RESULT:
            return result_text(row)
        return row.mx

    def _tooltip(self, row: RecipientRow, column: Column) -> str | None:
        if column is Column.PHASE:
            return f"{phase_text(row)}: {phase_help(row)}"
        if column is Column.NEXT_TRY and row.waiting and row.next_attempt_at is not None:
            return f"next try at {clock(row.next_attempt_at)}: {phase_help(row)}"
        if column is Column.RESULT:
            return result_text(row) or None
        return None


def _sort_key(row: RecipientRow, column: Column) -> Any:
    """A value to sort by (numbers for numeric columns, so 10 sorts after 9)."""
    if column is Column.NUMBER:
        return row.id
    if column is Column.EMAIL:
        return row.email.casefold()
    if column is Column.NAME:
        return row.name.casefold()
    if column is Column.DOMAIN:
        return row.domain
    if column is Column.PHASE:
        return PHASE_ORDER.get(phase_key(row), 99)
    if column is Column.NEXT_TRY:
        return row.next_attempt_at if row.waiting and row.next_attempt_at else float("inf")
    if column is Column.ATTEMPTS:
        return row.attempts
    if column is Column.RESULT:
        return result_text(row)
    return row.mx
