"""Campaigns are files: Save As and File ▸ Open recent, in the window, on real files."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from core.store import CampaignStore, Status
from gui.main_window import MainWindow
from gui.recent import LIMIT, RecentCampaigns
from gui.sandbox import create_sample_campaign
from gui.state import Action, RunState
from tests.gui.test_window import RUN_TIMEOUT_MS, run_state


def recent_labels(window: MainWindow) -> list[tuple[str, bool]]:
    window.recent_menu.aboutToShow.emit()
    return [
        (action.statusTip() or action.text(), action.isEnabled())
        for action in window.recent_menu.actions()
        if not action.isSeparator()
    ]


def test_save_as_goes_on_in_a_copy_with_every_status_and_leaves_the_old_file(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    window.open_sandbox()
    session = window.session
    assert session is not None
    old = session.path
    window.start()
    qtbot.waitUntil(lambda: run_state(window) is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)
    with_statuses = {row.email: (row.status, row.code, row.mx) for row in window.model.book.rows}
    assert Status.DELIVERED in {status for status, _, _ in with_statuses.values()}

    assert window.save_as(tmp_path / "kept")  # no suffix given: .mxm is added
    copy = tmp_path / "kept.mxm"
    assert window.session is not None and window.session.path == copy
    assert window.session.sandboxed  # a sandbox campaign's copy is still one
    shown = {row.email: (row.status, row.code, row.mx) for row in window.model.book.rows}
    assert shown == with_statuses
    assert any(f"{old} is left as it was" in line for line in window.log.lines)
    qtbot.waitUntil(lambda: "closed" in repr(session.store), timeout=5000)
    with CampaignStore.open(old)[0] as store:  # the old file is whole and unlocked
        assert {s.email: s.status for s in store.states()} == {
            email: status for email, (status, _, _) in with_statuses.items()
        }


def test_save_as_onto_the_open_file_is_refused_with_a_reason(window: MainWindow) -> None:
    window.open_sandbox()
    assert window.session is not None
    path = window.session.path
    assert not window.save_as(path)
    assert "is the campaign file itself" in window.error_banner.text
    assert window.session is not None and window.session.path == path


def test_save_as_is_not_offered_while_sending(window: MainWindow, qtbot: QtBot) -> None:
    window.open_sandbox()
    assert window.action_for[Action.SAVE_AS].isEnabled()
    window.start()
    assert not window.action_for[Action.SAVE_AS].isEnabled()
    listed = [entry for entry in recent_labels(window) if entry[0] != "&Clear the list"]
    assert listed and not any(enabled for _, enabled in listed)  # no switching mid-run
    window.stop()
    qtbot.waitUntil(lambda: run_state(window) is RunState.READY, timeout=RUN_TIMEOUT_MS)
    assert window.action_for[Action.SAVE_AS].isEnabled()


def test_open_recent_lists_newest_first_and_opens_the_chosen_one(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    assert recent_labels(window) == [("No recent campaigns", False)]
    first = create_sample_campaign(tmp_path / "a").path
    second = create_sample_campaign(tmp_path / "b").path
    assert window.open_file(first)
    first_session = window.session
    assert window.open_file(second)
    qtbot.waitUntil(lambda: "closed" in repr(first_session.store), timeout=5000)
    labels = recent_labels(window)
    assert labels[:2] == [(str(second.resolve()), True), (str(first.resolve()), True)]

    opens = [a for a in window.recent_menu.actions() if a.statusTip() == str(first.resolve())]
    opens[0].trigger()
    assert window.session is not None and window.session.path == first
    current = window.session
    assert window.open_file(first) and window.session is current  # already open: kept

    # kept for the next launch, newest first; a missing file stays listed, disabled
    again = RecentCampaigns(window.options.recent_path).paths
    assert again == [first.resolve(), second.resolve()]
    window.open_sandbox()  # the first is closed (and its lock released) before deleting it
    first.unlink()
    assert (f"{first.resolve()} (not found)", False) in recent_labels(window)

    clear = [a for a in window.recent_menu.actions() if a.text() == "&Clear the list"]
    clear[0].trigger()
    assert recent_labels(window) == [("No recent campaigns", False)]
    assert RecentCampaigns(window.options.recent_path).paths == []


def test_the_recent_list_is_bounded_and_a_damaged_one_is_an_empty_one(tmp_path: Path) -> None:
    path = tmp_path / "recent.json"
    recent = RecentCampaigns(path)
    for number in range(LIMIT + 3):
        recent.add(tmp_path / f"c{number}.mxm")
    recent.add(tmp_path / "c5.mxm")  # opened again: moves to the top, not repeated
    paths = RecentCampaigns(path).paths
    assert len(paths) == LIMIT and paths[0] == (tmp_path / "c5.mxm").resolve()
    assert len(set(paths)) == LIMIT

    for damaged in ("{not json", '{"a": 1}', '["relative.mxm", 3]'):
        path.write_text(damaged, encoding="utf-8")
        assert RecentCampaigns(path).paths == []
