"""Window behaviours a review found wrong: closing as a run ends, Save As onto an existing
file, exports aimed at the campaign file, an edited real campaign's old file, a cancelled
small import."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core.outgoing import MESSAGE_DRAFT
from core.store import CampaignStore
from gui.importing import ImportCancelled, ImportChoices, import_campaign
from gui.main_window import MainWindow
from gui.state import RunState
from tests.gui.test_settings import REAL, real_campaign
from tests.gui.test_window import RUN_TIMEOUT_MS, run_state


def test_yes_to_closing_after_the_run_ended_meanwhile_closes(
    window: MainWindow, qtbot: QtBot
) -> None:
    window.open_sandbox()
    window.start()
    qtbot.waitUntil(lambda: run_state(window) is RunState.RUNNING, timeout=RUN_TIMEOUT_MS)
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))

    def yes_once_finished(_title: str, _text: str) -> bool:
        # A real question runs a nested event loop: the run may end before the answer.
        qtbot.waitUntil(lambda: run_state(window) is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)
        return True

    window.confirm = yes_once_finished
    window.close()
    qtbot.waitUntil(lambda: bool(closed), timeout=RUN_TIMEOUT_MS)


def test_save_as_without_a_suffix_never_replaces_an_existing_campaign(
    window: MainWindow, tmp_path: Path
) -> None:
    window.open_sandbox()
    existing = tmp_path / "spring.mxm"
    existing.write_bytes(b"an earlier campaign")
    assert not window.save_as(tmp_path / "spring")
    assert "already exists" in window.error_banner.text
    assert existing.read_bytes() == b"an earlier campaign"


def test_an_export_aimed_at_the_open_campaign_file_is_refused(window: MainWindow) -> None:
    window.open_sandbox()
    session = window.session
    assert session is not None
    before = session.path.read_bytes()
    for export in (window.export_report, window.export_bounces, window.export_domains):
        assert export(session.path) is None
        assert "is the campaign file itself" in window.error_banner.text
    assert session.path.read_bytes() == before


def test_editing_a_real_campaign_turns_the_old_file_into_a_draft(
    window: MainWindow, tmp_path: Path, qtbot: QtBot
) -> None:
    window.apply_settings(dataclasses.replace(REAL))
    old = real_campaign(tmp_path / "real.mxm", ["ada@plain.test", "alan@plain.test"])
    assert window.open_file(old)
    first = window.session
    editor = window.edit_message()
    assert editor is not None and first is not None
    editor.subject_edit.setText("Edited")
    editor.refresh()
    editor.save_button.click()
    qtbot.waitUntil(lambda: window.session is not first, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: "closed" in repr(first.store), timeout=RUN_TIMEOUT_MS)
    with CampaignStore.open(old)[0] as store:
        assert store.settings.get(MESSAGE_DRAFT) is True  # nothing will send the old one
    assert window.session is not None and MESSAGE_DRAFT not in window.session.store.settings
    assert any("is now a draft that cannot be sent" in line for line in window.log.lines)


def test_a_cancelled_import_of_a_short_file_makes_nothing(tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("email\n" + "".join(f"u{n}@plain.test\n" for n in range(10)))
    with pytest.raises(ImportCancelled):
        import_campaign(ImportChoices(short), tmp_path / "out", cancelled=lambda: True)
    assert list((tmp_path / "out").iterdir()) == []
