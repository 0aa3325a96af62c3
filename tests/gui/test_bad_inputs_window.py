"""The recipients files a user gets wrong, in the window: the Import dialog says what the
file is and what to do, offers no Import, and no campaign is made. The same files through
``mxmailer send`` are in tests/integration/test_bad_inputs.py (their makers reused)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from gui.main_window import MainWindow
from tests.gui.test_import import drop, open_dialog, settle
from tests.integration.test_bad_inputs import PNG, list_longer_than_a_sample, sparse, xlsx_bytes


def huge_list(path: Path) -> None:
    sparse(path, list_longer_than_a_sample(), 2 << 30)


#: file made → words the dialog must show: what the file is, then what to do.
FILES: dict[str, tuple[Callable[[Path], object], tuple[str, ...]]] = {
    "xlsx": (
        lambda p: p.write_bytes(xlsx_bytes()),
        ("“list.csv” is an Excel workbook, not CSV", "File > Save As > CSV UTF-8"),
    ),
    "png": (
        lambda p: p.write_bytes(PNG),
        ("“list.csv” is a PNG image, not CSV", "export the list as CSV UTF-8"),
    ),
    "empty": (
        lambda p: p.write_bytes(b""),
        ("“list.csv” is empty", "it needs a header row with an email column"),
    ),
    "2 GB": (
        huge_list,
        ("“list.csv” is 2,048 MiB", "split the list into several files"),
    ),
}


def bad_file(tmp_path: Path, kind: str) -> tuple[Path, tuple[str, ...]]:
    make, words = FILES[kind]
    path = tmp_path / "list.csv"
    make(path)
    return path, words


def listing(folder: Path) -> list[str]:
    """Everything in the data folder: a campaign, or half of one, would show here."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("kind", sorted(FILES))
def test_the_import_dialog_names_the_problem_and_offers_no_import(
    qtbot: QtBot, tmp_path: Path, kind: str
) -> None:
    path, words = bad_file(tmp_path, kind)
    data = tmp_path / "data"
    dialog = open_dialog(qtbot, path, data)
    assert not dialog.error.isHidden()
    for word in words:
        assert word in dialog.error.text
    assert str(tmp_path) not in dialog.error.text  # the file by its name, no folders
    assert "Traceback" not in dialog.error.text
    assert not dialog.import_button.isEnabled()
    assert dialog.table.rowCount() == 0
    assert listing(data) == []  # nothing written before Import, and Import is not offered


@pytest.mark.parametrize("kind", ["xlsx", "empty"])
def test_a_bad_file_dropped_on_the_window_makes_no_campaign(
    window: MainWindow, qtbot: QtBot, tmp_path: Path, kind: str
) -> None:
    path, words = bad_file(tmp_path, kind)
    before = listing(tmp_path / "data")
    session = window.session
    assert drop(window, path)
    dialog = window.import_dialog
    assert dialog is not None and dialog.isVisible()
    settle(qtbot, dialog)
    assert words[0] in dialog.error.text and not dialog.import_button.isEnabled()
    dialog.reject()
    qtbot.waitUntil(lambda: window.import_dialog is None, timeout=10_000)
    assert window.session is session  # the campaign shown before, if any, is still shown
    assert listing(tmp_path / "data") == before
