"""Qt tests run offscreen, on the app's own loop (gui.loop.EngineEventLoop).

pytest-qt's ``qtbot.waitUntil`` pumps Qt's event loop, and the qasync loop's callbacks
are Qt timers and socket notifiers, so the engine and the lab run while a test waits.
The ``qloop`` fixture makes that loop current (and "running", so that
``asyncio.get_running_loop()`` finds it) for the test, and puts everything back after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from core.lab.service import AsyncService
from gui.loop import EngineEventLoop, ErrorReporter, make_loop
from gui.main_window import Confirm, MainWindow, WindowOptions

#: How long closing a window may take: it lets messages in flight finish first.
CLOSE_TIMEOUT_MS = 30_000


Service = TypeVar("Service", bound=AsyncService)


@contextlib.contextmanager
def running(service: Service, loop: EngineEventLoop, qtbot: QtBot) -> Iterator[Service]:
    """``service`` (a lab world, a relay) started on the app's loop for the block, then
    stopped (bounded waits)."""
    started = loop.create_task(service.start())
    qtbot.waitUntil(started.done, timeout=CLOSE_TIMEOUT_MS)
    started.result()
    try:
        yield service
    finally:
        stopped = loop.create_task(service.stop())
        qtbot.waitUntil(stopped.done, timeout=CLOSE_TIMEOUT_MS)


@pytest.fixture
def questions() -> list[tuple[str, str]]:
    """The questions a window's confirm function was asked (title, text)."""
    return []


@pytest.fixture
def answers() -> list[bool]:
    """The answers it gives, in order (none left: no)."""
    return []


@pytest.fixture
def confirm(questions: list[tuple[str, str]], answers: list[bool]) -> Confirm:
    """A window's confirm function: records each question, gives the next answer."""

    def ask(title: str, text: str) -> bool:
        questions.append((title, text))
        return answers.pop(0) if answers else False

    return ask


@pytest.fixture
def reporter() -> ErrorReporter:
    return ErrorReporter()


@contextlib.contextmanager
def shown(window: MainWindow, qtbot: QtBot, reporter: ErrorReporter) -> Iterator[MainWindow]:
    """``window`` shown for the block, then closed as a user would (a second close cuts
    connections still open); no error may have reached it."""
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    window.show()
    yield window
    window.shut_down()  # stops a run, closes the campaign file, stops the lab
    if window.session is not None or not closed:
        window.shut_down()
    qtbot.waitUntil(lambda: bool(closed), timeout=CLOSE_TIMEOUT_MS)
    assert reporter.errors == []


@pytest.fixture
def qloop(qapp: QApplication, reporter: ErrorReporter) -> Iterator[EngineEventLoop]:
    loop = make_loop(qapp, reporter)
    asyncio.events._set_running_loop(loop)
    try:
        yield loop
    finally:
        asyncio.events._set_running_loop(None)
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        loop.close()
        asyncio.set_event_loop(None)
        assert not pending, f"tasks left running by the test: {pending}"


@pytest.fixture
def window(
    qloop: EngineEventLoop, reporter: ErrorReporter, tmp_path: Path, qtbot: QtBot
) -> Iterator[MainWindow]:
    """The main window on a fresh data folder (a 2 s lab greylisting), closed after the
    test as a user would; no error may have reached the window."""
    window = MainWindow(WindowOptions(tmp_path / "data", greylist_seconds=2), reporter)
    with shown(window, qtbot, reporter):
        yield window
