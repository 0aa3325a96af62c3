"""Importing a CSV into a new sandbox campaign: gui.importing without Qt, the Import
dialog offscreen, and the window's menu action and drag-and-drop."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

import gui.import_dialog
import gui.importing
from core.store import CampaignStore, Status
from gui.import_dialog import ImportDialog
from gui.importing import DryRun, ImportChoices, dry_run, import_campaign, summary_lines
from gui.main_window import MainWindow, dropped_csv
from gui.sandbox import SAMPLE_RECIPIENTS, is_sandbox

SAMPLES = Path(os.environ.get("MXMAILER_RECIPIENT_SAMPLES", "/work/shared/data/recipients"))
needs_samples = pytest.mark.skipif(
    not (SAMPLES / "messy.csv").exists(), reason="the shared recipients samples are absent"
)
WAIT_MS = 10_000
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06" + bytes(64)


@pytest.fixture
def png_csv(tmp_path: Path) -> Path:
    path = tmp_path / "picture.csv"
    path.write_bytes(PNG)
    return path


# ---- without Qt ----------------------------------------------------------------------------


def test_choices_become_reader_arguments(tmp_path: Path) -> None:
    assert ImportChoices(tmp_path / "a.csv").reader_arguments() == {
        "encoding": None,
        "delimiter": None,
        "address_column": None,
    }
    chosen = ImportChoices(tmp_path / "a.csv", encoding="cp1252", delimiter=";", address_column=2)
    assert chosen.reader_arguments() == {
        "encoding": "cp1252",
        "delimiter": ";",
        "address_column": 2,
    }


@needs_samples
@pytest.mark.parametrize(
    ("name", "encoding", "delimiter", "valid", "invalid", "duplicates"),
    [
        ("simple.csv", "utf-8", "comma", 30, 0, 0),
        ("messy.csv", "utf-8", "comma", 11, 6, 1),
        ("windows-1252.csv", "cp1252", "comma", 3, 0, 0),
        ("excel-semicolon-bom.csv", "utf-8", "semicolon", 3, 0, 0),
    ],
)
def test_the_dry_run_on_the_shared_samples(
    name: str, encoding: str, delimiter: str, valid: int, invalid: int, duplicates: int
) -> None:
    run = dry_run(ImportChoices(SAMPLES / name))
    assert run.error == "" and run.importable
    assert run.preview is not None and run.summary is not None
    assert (run.preview.encoding, run.preview.delimiter_name) == (encoding, delimiter)
    summary = run.summary
    assert (summary.valid, summary.invalid, summary.duplicates) == (valid, invalid, duplicates)
    assert sum(summary.invalid_reasons.values()) == invalid
    assert summary_lines(run)[0].startswith(f"{summary.rows} rows: {valid} to send")


@needs_samples
def test_the_dry_run_writes_nothing_and_follows_the_address_column(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    path.write_bytes((SAMPLES / "messy.csv").read_bytes())
    before = sorted(tmp_path.iterdir())
    by_name = dry_run(ImportChoices(path))
    by_first = dry_run(ImportChoices(path, address_column=0))
    assert sorted(tmp_path.iterdir()) == before
    assert by_name.address_column == 1 and by_first.address_column == 0
    assert by_first.summary is not None and by_first.summary.valid == 0
    assert not by_first.importable and "choose the column" in by_first.error
    assert "the address has no @" in by_first.summary.invalid_reasons


def test_a_binary_file_is_an_error_in_plain_words(png_csv: Path) -> None:
    run = dry_run(ImportChoices(png_csv))
    assert not run.importable
    assert "PNG" in run.error and str(png_csv.parent) not in run.error
    assert "Traceback" not in run.error


def test_the_sample_imports_into_a_sandbox_campaign(tmp_path: Path) -> None:
    made = import_campaign(ImportChoices(SAMPLE_RECIPIENTS), tmp_path / "data", now=0)
    assert made.path.name.startswith("sandbox-recipients-") and made.summary.valid == 23
    assert not list((tmp_path / "data").glob("*.importing"))
    with CampaignStore.open(made.path)[0] as store:
        assert is_sandbox(store)
        assert store.counts()[Status.QUEUED] == 23


# ---- the dialog ----------------------------------------------------------------------------


def open_dialog(qtbot: QtBot, path: Path, folder: Path) -> ImportDialog:
    dialog = ImportDialog(path, folder)
    qtbot.addWidget(dialog)
    dialog.show()
    settle(qtbot, dialog)
    return dialog


def settle(qtbot: QtBot, dialog: ImportDialog) -> None:
    qtbot.waitUntil(lambda: not dialog.working, timeout=WAIT_MS)


@needs_samples
def test_the_dialog_shows_what_each_sample_becomes(qtbot: QtBot, tmp_path: Path) -> None:
    simple = open_dialog(qtbot, SAMPLES / "simple.csv", tmp_path)
    assert simple.summary.text().startswith("30 rows: 30 to send, 0 invalid")
    assert simple.table.rowCount() == 20 and simple.table.columnCount() == 4
    assert simple.import_button.isEnabled() and simple.error.isHidden()

    messy = open_dialog(qtbot, SAMPLES / "messy.csv", tmp_path)
    assert "11 to send, 6 invalid, 1 duplicate(s) dropped" in messy.summary.text()
    assert "the address has no @" in messy.summary.text()
    assert messy.address.currentText() == "E-mail (column 2)"

    legacy = open_dialog(qtbot, SAMPLES / "windows-1252.csv", tmp_path)
    assert legacy.encoding.currentText() == "Detected: cp1252"
    assert "names look right" in legacy.summary.text()

    excel = open_dialog(qtbot, SAMPLES / "excel-semicolon-bom.csv", tmp_path)
    assert excel.delimiter.currentText() == "Detected: semicolon"
    assert excel.table.columnCount() == 4
    assert not list(tmp_path.iterdir())  # nothing written before Import


@needs_samples
def test_changing_the_choices_refreshes_preview_and_summary(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = open_dialog(qtbot, SAMPLES / "messy.csv", tmp_path)
    dialog.choose(address_column=0)
    settle(qtbot, dialog)
    assert dialog.choices.address_column == 0
    assert dialog.summary.text().startswith("18 rows: 0 to send, 18 invalid")
    assert "column “Name”" in dialog.error.text and not dialog.import_button.isEnabled()

    dialog.choose(delimiter=";")  # one column only: no address column found
    settle(qtbot, dialog)
    assert dialog.table.columnCount() == 1
    assert not dialog.error.isHidden() and not dialog.import_button.isEnabled()

    dialog.choose(delimiter=None)
    settle(qtbot, dialog)
    assert dialog.address.currentData() == 1 and dialog.import_button.isEnabled()
    dialog.choose(encoding="cp1252")
    settle(qtbot, dialog)
    assert dialog.run is not None and dialog.run.preview is not None
    assert dialog.run.preview.encoding == "cp1252"


def test_a_png_renamed_csv_is_refused_inline(qtbot: QtBot, tmp_path: Path, png_csv: Path) -> None:
    dialog = open_dialog(qtbot, png_csv, tmp_path / "data")
    assert not dialog.error.isHidden()
    assert "PNG image, not CSV" in dialog.error.text
    assert not dialog.import_button.isEnabled()
    assert dialog.table.rowCount() == 0


def test_an_unclosed_quote_is_refused_inline(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_text('email,name\nann@plain.test,"Ann\nbob@plain.test,Bob\ncy@plain.test,Cy\n')
    dialog = open_dialog(qtbot, path, tmp_path / "data")
    assert "quote opened on line 2 is not closed" in dialog.error.text
    assert not dialog.import_button.isEnabled()


def test_the_file_is_read_on_a_worker_thread(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []

    def recording(choices: ImportChoices) -> DryRun:
        threads.append(threading.current_thread())
        return dry_run(choices)

    monkeypatch.setattr(gui.import_dialog, "dry_run", recording)
    dialog = open_dialog(qtbot, SAMPLE_RECIPIENTS, tmp_path / "data")
    assert threads and threading.main_thread() not in threads
    assert dialog.summary.text().startswith("24 rows: 23 to send")


# ---- the window ----------------------------------------------------------------------------




def drop(window: MainWindow, path: Path) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    where = QPoint(200, 200)
    actions = Qt.DropAction.CopyAction
    buttons, keys = Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(where, actions, mime, buttons, keys)
    QApplication.sendEvent(window, enter)
    if not enter.isAccepted():
        return False
    dropped = QDropEvent(where, actions, mime, buttons, keys)
    QApplication.sendEvent(window, dropped)
    return dropped.isAccepted()


def test_only_local_csv_files_are_taken_from_a_drop(tmp_path: Path) -> None:
    csv_file = tmp_path / "list.CSV"
    csv_file.write_text("email\nann@plain.test\n")
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.test/list.csv"), QUrl.fromLocalFile(str(csv_file))])
    assert dropped_csv(mime) == csv_file
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt"))])
    assert dropped_csv(mime) is None


def test_dropping_a_csv_imports_it_into_a_new_sandbox_campaign(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    assert not drop(window, tmp_path / "missing.csv")
    assert window.import_dialog is None

    assert drop(window, SAMPLE_RECIPIENTS)
    dialog = window.import_dialog
    assert dialog is not None and dialog.isVisible()
    settle(qtbot, dialog)
    assert dialog.import_button.isEnabled()
    dialog.import_button.click()
    qtbot.waitUntil(lambda: window.session is not None, timeout=WAIT_MS)
    assert window.import_dialog is None
    session = window.session
    assert session is not None and session.sandboxed and session.sendable
    assert window.model.rowCount() == 24
    emails = {row.email for row in window.model.book.rows}
    assert "ada@plain.test" in emails and "not-an-address" in emails
    assert not window.sandbox_banner.isHidden()
    assert "[sandbox]" in window.windowTitle()


def test_while_importing_another_file_cannot_be_chosen(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_import = gui.import_dialog.import_campaign

    def held(choices: ImportChoices, folder: Path, **options: object) -> object:
        assert release.wait(10)
        return real_import(choices, folder, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(gui.import_dialog, "import_campaign", held)
    dialog = ImportDialog(SAMPLE_RECIPIENTS, tmp_path / "data")
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: not dialog.working, timeout=10_000)
    dialog._import()
    assert dialog._importing and not dialog.choose_button.isEnabled()
    dialog._choose_file()  # as a click would (the button is disabled): nothing happens
    assert dialog.choices.path == SAMPLE_RECIPIENTS
    release.set()
    qtbot.waitUntil(lambda: dialog.campaign is not None, timeout=10_000)
    assert sorted(p.suffix for p in (tmp_path / "data").iterdir()) == [".mxm"]


def test_closing_drops_the_dry_runs_still_queued(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    calls: list[ImportChoices] = []
    real_dry_run = gui.import_dialog.dry_run

    def held(choices: ImportChoices) -> DryRun:
        calls.append(choices)
        assert release.wait(10)
        return real_dry_run(choices)

    monkeypatch.setattr(gui.import_dialog, "dry_run", held)
    dialog = ImportDialog(SAMPLE_RECIPIENTS, tmp_path)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=10_000)  # the first one is running
    for encoding in ("utf-8", "cp1252", "cp1250"):
        dialog.choose(encoding=encoding)  # each queued behind it
    dialog.reject()
    release.set()
    dialog._pool.waitForDone(10_000)
    assert len(calls) == 1  # none of the queued ones ran after the dialog closed


def test_cancel_while_importing_stops_the_import_and_leaves_nothing(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.csv"
    big.write_text("email\n" + "".join(f"u{n}@plain.test\n" for n in range(5000)))
    started, release = threading.Event(), threading.Event()
    real_read = gui.importing.read_recipients
    read: list[object] = []

    def held(*args: object, **kwargs: object) -> Iterator[object]:
        for number, row in enumerate(real_read(*args, **kwargs)):  # type: ignore[arg-type]
            if number == 1:
                started.set()
                assert release.wait(10)  # the import is under way: its first batch is read
            read.append(row)
            yield row

    folder = tmp_path / "data"
    dialog = ImportDialog(big, folder)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: not dialog.working, timeout=10_000)  # the dry run, not held
    monkeypatch.setattr(gui.importing, "read_recipients", held)
    closed: list[int] = []
    dialog.finished.connect(closed.append)
    dialog.import_button.click()
    assert started.wait(10)
    dialog.reject()  # Cancel, as the button does
    assert closed == [] and dialog.busy_label.text() == "Cancelling…"  # not before it stops
    assert not dialog.cancel_button.isEnabled()
    with qtbot.waitSignal(dialog.rejected, timeout=10_000):
        release.set()
    assert dialog.campaign is None
    assert not folder.exists() or list(folder.iterdir()) == []  # no file, half-made or not
    assert len(read) <= gui.importing.CANCEL_CHECK_ROWS  # stopped reading, not at the end
