"""The recipients table model against engine event batches: which rows it signals,
what the cells say (countdowns included), and sorting and filtering through the proxy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from core.events import (
    AttemptFinished,
    CampaignLog,
    Counters,
    DestinationPaused,
    PhaseChanged,
    RecipientFinal,
    RecipientWaiting,
)
from core.store import RecipientState, Status
from gui.recipients_filter import RecipientsFilter
from gui.recipients_model import GROUP_ROLE, ID_ROLE, Column, RecipientsModel
from gui.rows import Group, RecipientBook, RecipientRow, contiguous

NOW = 1_800_000_000.0
DISPLAY = Qt.ItemDataRole.DisplayRole


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Signals:
    """Every dataChanged (first row, last row, first column, last column, roles)."""

    changes: list[tuple[int, int, int, int, list[int]]] = field(default_factory=list)
    resets: int = 0
    layouts: int = 0

    def changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int]) -> None:
        self.changes.append((top.row(), bottom.row(), top.column(), bottom.column(), list(roles)))


def rows(count: int) -> list[RecipientRow]:
    return [
        RecipientRow(n, f"user{n}@plain.test", f"User {n}", "plain.test", Status.QUEUED, "queued")
        for n in range(1, count + 1)
    ]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def model(clock: Clock, qtbot: QtBot) -> RecipientsModel:
    model = RecipientsModel(now=clock)
    model.set_book(RecipientBook(rows(10)))
    return model


@pytest.fixture
def signals(model: RecipientsModel) -> Iterator[Signals]:
    seen = Signals()
    model.dataChanged.connect(seen.changed)
    model.modelReset.connect(lambda: setattr(seen, "resets", seen.resets + 1))
    model.layoutChanged.connect(lambda: setattr(seen, "layouts", seen.layouts + 1))
    yield seen


def text(model: RecipientsModel, recipient_id: int, column: Column) -> str:
    value = model.data(model.index(recipient_id - 1, column), DISPLAY)
    assert isinstance(value, str)
    return value


def test_the_model_passes_qts_own_consistency_checks(
    model: RecipientsModel, qtmodeltester: ModelTester
) -> None:
    qtmodeltester.check(model, force_py=True)  # type: ignore[no-untyped-call]


def test_a_batch_signals_runs_of_changed_rows_and_never_resets(
    model: RecipientsModel, signals: Signals
) -> None:
    last = len(Column) - 1
    model.apply(
        [PhaseChanged(2, "resolving"), PhaseChanged(3, "sending"), PhaseChanged(7, "queued")]
    )
    assert signals.changes == [(1, 2, 0, last, []), (6, 6, 0, last, [])]
    assert signals.resets == 0 and signals.layouts == 0


def test_events_for_unknown_recipients_and_campaign_news_change_no_row(
    model: RecipientsModel, signals: Signals
) -> None:
    counters = Counters({Status.QUEUED: 10}, 0, None, 0.0)
    result = model.apply([PhaseChanged(99, "sending"), CampaignLog("hello"), counters])
    assert signals.changes == []
    assert result.counters is counters
    assert result.notices == [CampaignLog("hello")]


def test_a_greylisted_recipient_counts_down_then_is_delivered(
    model: RecipientsModel, signals: Signals, clock: Clock
) -> None:
    model.apply([PhaseChanged(4, "sending")])
    model.apply(
        [
            AttemptFinished(
                4,
                "greylisted",
                451,
                "4.7.1",
                "Greylisted, try again in 75 s",
                "mx.grey.test [127.0.0.3]",
            ),
            RecipientWaiting(4, "greylisted", NOW + 75),
        ]
    )
    assert text(model, 4, Column.PHASE) == "waiting"
    assert text(model, 4, Column.NEXT_TRY) == "01:15 · greylisted"
    assert text(model, 4, Column.ATTEMPTS) == "1"
    assert text(model, 4, Column.RESULT) == "451 4.7.1 Greylisted, try again in 75 s"
    assert model.data(model.index(3, Column.PHASE), GROUP_ROLE) == Group.WAITING.value

    signals.changes.clear()
    clock.now += 1.0
    model.tick()
    column = Column.NEXT_TRY
    assert signals.changes == [(3, 3, column, column, [DISPLAY])]  # that cell only
    assert text(model, 4, Column.NEXT_TRY) == "01:14 · greylisted"

    clock.now += 75
    assert text(model, 4, Column.NEXT_TRY) == "due · greylisted"
    model.apply([PhaseChanged(4, "sending")])
    model.apply(
        [
            AttemptFinished(4, "accepted", 250, "2.0.0", "Ok", "mx.grey.test [127.0.0.3]"),
            RecipientFinal(4, Status.DELIVERED, 250, "2.0.0", "Ok", "mx.grey.test [127.0.0.3]"),
        ]
    )
    assert text(model, 4, Column.PHASE) == "delivered"
    assert text(model, 4, Column.NEXT_TRY) == ""
    assert text(model, 4, Column.ATTEMPTS) == "2"
    signals.changes.clear()
    model.tick()
    assert signals.changes == []  # nobody waits: the clock repaints nothing


def test_a_final_row_is_reread_from_the_campaign_file(clock: Clock, qtbot: QtBot) -> None:
    def reload(recipient_id: int) -> RecipientState:
        return RecipientState(
            recipient_id,
            "x@nullmx.test",
            "nullmx.test",
            {},
            Status.BOUNCED,
            "",
            None,
            1,
            NOW,
            NOW,
            None,
            "",
            "DNS: null MX",
            "",
            "recipient",
            "",
            "",
            "",
            None,
        )

    model = RecipientsModel(now=clock)
    model.set_book(RecipientBook(rows(3), reload=reload))
    model.apply([RecipientFinal(2, Status.BOUNCED, None, "", "DNS: null MX", "")])
    assert text(model, 2, Column.PHASE) == "bounced"
    assert text(model, 2, Column.ATTEMPTS) == "1"
    assert text(model, 2, Column.RESULT) == "DNS: null MX"


def test_a_wait_without_a_reply_of_its_own_still_counts_as_an_attempt(
    model: RecipientsModel,
) -> None:
    model.apply([RecipientWaiting(1, "deferred", NOW + 300)])  # every MX failed
    model.apply([RecipientWaiting(2, "destination paused", NOW + 300)])  # not tried at all
    assert text(model, 1, Column.ATTEMPTS) == "1"
    assert text(model, 2, Column.ATTEMPTS) == "0"
    assert text(model, 2, Column.NEXT_TRY) == "05:00 · destination paused"


def test_a_wait_already_over_gives_way_to_the_phase_reported_in_the_same_batch(
    model: RecipientsModel,
) -> None:
    # The bus delivers coalesced phase changes first: this recipient waited briefly and
    # was queued again within one batch.
    model.apply([PhaseChanged(5, "queued"), RecipientWaiting(5, "destination paused", NOW - 1)])
    assert text(model, 5, Column.PHASE) == "queued"
    assert text(model, 5, Column.NEXT_TRY) == ""
    # ...but a wait still ahead stands, whatever phase preceded it.
    model.apply([PhaseChanged(6, "sending"), RecipientWaiting(6, "greylisted", NOW + 10)])
    assert text(model, 6, Column.PHASE) == "waiting"


def test_contiguous_runs() -> None:
    assert contiguous([]) == []
    assert contiguous([0, 1, 2, 5, 7, 8]) == [(0, 2), (5, 5), (7, 8)]


def sorted_ids(proxy: RecipientsFilter) -> list[int]:
    return [proxy.index(row, 0).data(ID_ROLE) for row in range(proxy.rowCount())]


@pytest.fixture
def proxy(model: RecipientsModel) -> RecipientsFilter:
    model.apply(
        [
            AttemptFinished(3, "transient", 421, "", "busy", "mx"),
            RecipientWaiting(3, "deferred", NOW + 30),
            RecipientWaiting(8, "greylisted", NOW + 10),
            RecipientFinal(9, Status.BOUNCED, 550, "5.1.1", "User unknown", "mx"),
            RecipientFinal(10, Status.DELIVERED, 250, "2.0.0", "Ok", "mx"),
        ]
    )
    for _ in range(10):  # recipient 1 took ten attempts: 10 must sort after 9
        model.apply([AttemptFinished(1, "transient", 451, "", "later", "mx")])
    for _ in range(9):
        model.apply([AttemptFinished(2, "transient", 451, "", "later", "mx")])
    return RecipientsFilter(model)


def test_sorting_uses_numbers_and_times_not_text(proxy: RecipientsFilter) -> None:
    proxy.sort(Column.ATTEMPTS, Qt.SortOrder.DescendingOrder)
    assert sorted_ids(proxy)[:2] == [1, 2]  # "10" > "9" as numbers
    proxy.sort(Column.NEXT_TRY, Qt.SortOrder.AscendingOrder)
    assert sorted_ids(proxy)[:2] == [8, 3]  # soonest retry first, the rest after
    proxy.sort(Column.PHASE, Qt.SortOrder.AscendingOrder)
    ids = sorted_ids(proxy)
    assert ids.index(8) < ids.index(9) < ids.index(10)  # waiting, bounced, delivered
    proxy.sort(Column.NUMBER, Qt.SortOrder.DescendingOrder)
    assert sorted_ids(proxy) == list(range(10, 0, -1))


def test_after_a_sort_changes_and_the_selection_follow_their_recipients(
    proxy: RecipientsFilter, model: RecipientsModel
) -> None:
    selection = QItemSelectionModel(proxy)
    row_of_7 = sorted_ids(proxy).index(7)
    selection.setCurrentIndex(
        proxy.index(row_of_7, 0),
        QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
    )
    proxy.sort(Column.EMAIL, Qt.SortOrder.DescendingOrder)
    assert selection.currentIndex().data(ID_ROLE) == 7
    assert [index.data(ID_ROLE) for index in selection.selectedRows()] == [7]
    assert model.rowCount() == 10 and proxy.rowCount() == 10

    changed: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda top, bottom, _roles: changed.append((top.row(), bottom.row())))
    model.apply([AttemptFinished(4, "transient", 451, "", "later", "mx")])
    (first, last), = changed
    assert first == last and model.index(first, 0).data(ID_ROLE) == 4
    shown = [proxy.index(row, Column.ATTEMPTS).data() for row in range(10)]
    assert shown[sorted_ids(proxy).index(4)] == "1"  # the cell shown for recipient 4


def test_filter_by_status_group_and_by_text(proxy: RecipientsFilter) -> None:
    proxy.set_groups({Group.WAITING})
    assert sorted(sorted_ids(proxy)) == [3, 8]
    proxy.set_groups({Group.BOUNCED, Group.DELIVERED})
    assert sorted(sorted_ids(proxy)) == [9, 10]
    proxy.set_groups(None)
    proxy.set_search("USER1")  # case-insensitive, any part of the address or name
    assert sorted(sorted_ids(proxy)) == [1, 10]
    proxy.set_search("unknown")  # the reply text too
    assert sorted_ids(proxy) == [9]


def test_a_row_leaves_a_filter_when_its_status_changes(
    model: RecipientsModel, proxy: RecipientsFilter
) -> None:
    proxy.set_groups({Group.WAITING})
    assert 8 in sorted_ids(proxy)
    model.apply([PhaseChanged(8, "sending")])
    assert 8 not in sorted_ids(proxy)
    model.apply([RecipientWaiting(4, "greylisted", NOW + 60)])
    assert 4 in sorted_ids(proxy)


def test_destination_paused_is_news_for_the_log(model: RecipientsModel) -> None:
    paused = DestinationPaused("mx.grey.test", "grey.test", "421 busy", NOW + 300)
    assert model.apply([paused]).notices == [paused]
