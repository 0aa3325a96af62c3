"""The providers panel: each mailbox provider's shared budget, from the engine's counters."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from core.events import Counters, ProviderLoad, SenderProblemReported
from gui.main_window import MainWindow
from gui.providers_panel import Column, ProvidersModel, ProvidersPanel
from gui.state import RunState
from tests.gui.test_window import RUN_TIMEOUT_MS, run_state

NOW = 1_800_000_000.0


def texts(model: ProvidersModel) -> dict[str, tuple[str, str]]:
    return {
        model.index(row, Column.PROVIDER).data(): (
            model.index(row, Column.CONNECTIONS).data(),
            model.index(row, Column.STATE).data(),
        )
        for row in range(model.rowCount())
    }


def test_cells_change_in_place_and_rows_only_when_providers_come_or_go(qtbot: QtBot) -> None:
    clock = [NOW]
    model = ProvidersModel(now=lambda: clock[0])
    resets: list[bool] = []
    changes: list[tuple[int, int]] = []
    model.modelReset.connect(lambda: resets.append(True))
    model.dataChanged.connect(lambda top, bottom, _roles: changes.append((top.row(), bottom.row())))

    model.show({"google.test": ProviderLoad(2, 5, None), "plain.test": ProviderLoad(0, 5, None)})
    assert texts(model) == {
        "google.test": ("2 of 5", "sending"),
        "plain.test": ("0 of 5", "idle"),
    }
    assert len(resets) == 1

    model.show({"google.test": ProviderLoad(5, 5, None), "plain.test": ProviderLoad(1, 5, None)})
    assert len(resets) == 1 and changes == [(0, 1)]  # one range, no reset
    assert texts(model)["google.test"] == ("5 of 5", "sending")

    model.note_pause("google.test", "blocklisted")
    paused = ProviderLoad(0, 5, NOW + 125)
    model.show({"google.test": paused, "plain.test": ProviderLoad(1, 5, None)})
    assert texts(model)["google.test"][1] == "paused (blocklisted) · resumes in 02:05"
    clock[0] += 65
    model.tick()
    assert texts(model)["google.test"][1] == "paused (blocklisted) · resumes in 01:00"
    clock[0] += 61  # the pause is over (the engine's next counters say so too)
    assert texts(model)["google.test"][1] == "idle"

    model.show({"plain.test": ProviderLoad(0, 5, None)})
    assert list(texts(model)) == ["plain.test"] and len(resets) == 2
    model.forget()
    assert model.rowCount() == 0 and model.reasons == {}


def test_paused_providers_sort_first_then_the_busy_ones(qtbot: QtBot) -> None:
    model = ProvidersModel(now=lambda: NOW)
    panel = ProvidersPanel(model)
    qtbot.addWidget(panel)
    model.show(
        {
            "a-idle.test": ProviderLoad(0, 5, None),
            "b-busy.test": ProviderLoad(3, 5, None),
            "c-paused.test": ProviderLoad(0, 5, NOW + 60),
        }
    )
    proxy = panel.proxy
    shown = [proxy.index(row, Column.PROVIDER).data() for row in range(proxy.rowCount())]
    assert shown == ["c-paused.test", "b-busy.test", "a-idle.test"]
    tip = proxy.index(0, Column.STATE).data(Qt.ItemDataRole.ToolTipRole)
    assert "because of the sender" in tip
    assert model.index(0, 0, model.index(0, 0)) == QModelIndex()  # a flat table


def test_the_window_shows_each_lab_provider_while_the_sandbox_sends(
    window: MainWindow, qtbot: QtBot
) -> None:
    window.open_sandbox()
    assert not window.providers_dock.isHidden()
    model = window.providers
    assert model.rowCount() == 0  # nothing known before the engine reports
    seen: dict[str, set[str]] = {}

    def watch(*_: object) -> None:
        for name, (_, state) in texts(model).items():
            seen.setdefault(name, set()).add(state)

    model.dataChanged.connect(watch)
    model.modelReset.connect(watch)
    window.start()
    qtbot.waitUntil(lambda: run_state(window) is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)

    domains = {row.email.rpartition("@")[2] for row in window.model.book.rows}
    assert {"plain.test", "grey.test", "bounce.test"} <= set(seen) <= domains
    assert "sending" in set().union(*seen.values())
    assert all(state == "idle" for _, state in texts(model).values())  # all closed at the end

    session = window.session
    assert session is not None
    session.bus.publish(
        SenderProblemReported("plain.test", "blocklisted", "On a list.", "Delist.", "554")
    )
    session.bus.publish(Counters({}, 0, None, 0.0, {"plain.test": ProviderLoad(0, 5, 4e9)}))
    session.bus.flush()
    assert texts(model)["plain.test"][1].startswith("paused (blocklisted) · resumes in ")
