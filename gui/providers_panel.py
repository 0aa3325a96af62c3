"""The providers panel: each mailbox provider's shared budget, live.

Domains whose MX hosts belong to one provider (all Google-hosted domains, say) share one
connection budget and one pause (core.destinations). This panel shows, per provider,
the connections open out of its limit and whether it sends, idles or is paused (with
the countdown and the servers' reason), so that a user sees *where* sending is held
back. It is fed the engine's latest :class:`core.events.Counters` (about ten times a
second at most) and the clock's tick; a batch changes cells in place (one
``dataChanged``), and rows are added or dropped only when the set of providers changes.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from typing import Final

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtWidgets import QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from core.events import ProviderLoad
from gui.display import countdown

AnyIndex = QModelIndex | QPersistentModelIndex
#: Sorting puts these first: a paused provider is the news, then the busiest.
_ORDER_ROLE: Final = Qt.ItemDataRole.UserRole + 1


class Column(enum.IntEnum):
    PROVIDER = 0
    CONNECTIONS = 1
    STATE = 2


_HEADERS: Final = {
    Column.PROVIDER: "Provider",
    Column.CONNECTIONS: "Connections",
    Column.STATE: "State",
}


class ProvidersModel(QAbstractTableModel):
    """One row per provider the engine knows, in the order it first appeared."""

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._now = now
        self.names: list[str] = []
        self.loads: dict[str, ProviderLoad] = {}
        #: The kind of sender problem that paused a provider (from the engine's report).
        self.reasons: dict[str, str] = {}

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008 (Qt's API)
        return 0 if parent.isValid() else len(self.names)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[Column(section)]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        name = self.names[index.row()]
        load = self.loads[name]
        column = Column(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(name, load, column)
        if role == _ORDER_ROLE:
            if column is Column.PROVIDER:
                return name
            if column is Column.CONNECTIONS:
                return load.connections
            rank = 0 if self._paused(load) else 1 if load.connections else 2
            return f"{rank} {name}"
        if role == Qt.ItemDataRole.ToolTipRole and column is Column.STATE and self._paused(load):
            return (
                f"Servers at {name} refused mail because of the sender; its recipients stay "
                "queued and sending there resumes by itself at the time shown. The banner "
                "above the table says what usually fixes it."
            )
        return None

    def _paused(self, load: ProviderLoad) -> bool:
        return load.paused_until is not None and load.paused_until > self._now()

    def _text(self, name: str, load: ProviderLoad, column: Column) -> str:
        if column is Column.PROVIDER:
            return name
        if column is Column.CONNECTIONS:
            return f"{load.connections} of {load.limit}"
        if load.paused_until is not None and self._paused(load):
            why = self.reasons.get(name, "")
            reason = f" ({why})" if why else ""
            return f"paused{reason} · resumes in {countdown(load.paused_until - self._now())}"
        return "sending" if load.connections else "idle"

    def show(self, providers: Mapping[str, ProviderLoad]) -> None:
        """The engine's latest figures: cells change in place; rows come and go only
        when the set of providers does."""
        if set(providers) == set(self.names):
            self.loads = dict(providers)
            self._changed()
            return
        self.beginResetModel()
        kept = [name for name in self.names if name in providers]
        known = set(kept)
        self.names = kept + [name for name in providers if name not in known]
        self.loads = dict(providers)
        self.endResetModel()

    def forget(self) -> None:
        """Another campaign: no providers and no reasons until its engine reports."""
        self.reasons.clear()
        self.show({})

    def note_pause(self, provider: str, kind: str) -> None:
        """The engine reported a sender problem that paused ``provider``."""
        self.reasons[provider] = kind
        self._changed()

    def tick(self) -> None:
        """The clock moved: countdowns of paused providers go on."""
        if any(load.paused_until is not None for load in self.loads.values()):
            self._changed()

    def _changed(self) -> None:
        if self.names:
            last = self.index(len(self.names) - 1, len(Column) - 1)
            self.dataChanged.emit(self.index(0, 0), last, [Qt.ItemDataRole.DisplayRole])


class ProvidersPanel(QWidget):
    """The table of providers, sortable; paused ones first, then the busiest."""

    def __init__(self, model: ProvidersModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(model)
        self.proxy.setSortRole(_ORDER_ROLE)
        self.proxy.setDynamicSortFilter(True)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Column.STATE, Qt.SortOrder.AscendingOrder)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setAccessibleName("Mailbox providers")
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(Column.PROVIDER, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(Column.CONNECTIONS, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(Column.STATE, QHeaderView.ResizeMode.Stretch)
        intro = QLabel(
            "Domains hosted by one provider share its connection limit and its pauses."
        )
        intro.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
