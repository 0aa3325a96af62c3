"""Sorting and filtering of the recipients table: by status group and by text.

Owns the filter rules only. Sorting is passed on to the model
(:meth:`gui.recipients_model.RecipientsModel.sort`), which sorts in one Python call; this
proxy never sorts, so it keeps the model's order. Re-filtering on change is Qt's, for the
changed rows only (``dynamicSortFilter``).
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from gui.recipients_model import GROUP_ROLE, RecipientsModel
from gui.rows import Group


class RecipientsFilter(QSortFilterProxyModel):
    """Shows the rows whose group is selected and whose text contains the search."""

    def __init__(self, source: RecipientsModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._source = source
        self._groups: frozenset[Group] | None = None  # None: every group
        self._needle = ""
        self.setSourceModel(source)
        self.setFilterRole(GROUP_ROLE)
        self.setDynamicSortFilter(True)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """The header asked for a sort: the model does it (see the module's docstring)."""
        self._source.sort(column, order)

    @property
    def groups(self) -> frozenset[Group] | None:
        return self._groups

    def set_groups(self, groups: Iterable[Group] | None) -> None:
        """Show only these groups (None: all of them)."""
        self._begin_change()
        self._groups = None if groups is None else frozenset(groups)
        self._end_change()

    def set_search(self, text: str) -> None:
        """Show only rows whose email, name, domain, result or MX contains ``text``
        (case-insensitive)."""
        self._begin_change()
        self._needle = text.strip().casefold()
        self._end_change()

    # Qt 6.10 replaced invalidateRowsFilter() by begin/endFilterChange(); 6.8 and 6.9
    # have only the former (pyproject.toml allows them).
    _NEW_API = hasattr(QSortFilterProxyModel, "endFilterChange")

    def _begin_change(self) -> None:
        if self._NEW_API:
            self.beginFilterChange()

    def _end_change(self) -> None:
        if self._NEW_API:
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateRowsFilter()

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        row = self._source.row_at(source_row)
        if self._groups is not None and row.group not in self._groups:
            return False
        if not self._needle:
            return True
        haystack = " ".join((row.email, row.name, row.domain, row.text, row.mx, str(row.code)))
        return self._needle in haystack.casefold()
