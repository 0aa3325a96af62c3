"""The app's event loop (gui.loop): qasync's, with real timer handles, and the check
that refuses a PySide6 known to crash."""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from gui.loop import EngineEventLoop, ErrorReporter, binding_problem, spawn


def test_timers_are_timer_handles_with_when(qloop: EngineEventLoop, qtbot: QtBot) -> None:
    fired: list[str] = []
    later = qloop.call_later(0.05, fired.append, "later")
    at = qloop.call_at(qloop.time() + 0.01, fired.append, "at")
    soon = qloop.call_soon(fired.append, "soon")
    assert isinstance(later, asyncio.TimerHandle) and isinstance(at, asyncio.TimerHandle)
    assert later.when() > at.when()  # core.connection compares deadlines this way
    assert isinstance(soon, asyncio.Handle)
    cancelled = qloop.call_later(0.01, fired.append, "cancelled")
    cancelled.cancel()
    qtbot.waitUntil(lambda: len(fired) == 3, timeout=2000)
    assert fired == ["soon", "at", "later"]


def test_a_failed_task_is_reported_not_lost(
    qloop: EngineEventLoop, reporter: ErrorReporter, qtbot: QtBot
) -> None:
    shown: list[str] = []
    reporter.sinks.append(shown.append)

    async def broken() -> None:
        raise ValueError("boom")

    spawn(broken(), reporter)
    qtbot.waitUntil(lambda: bool(shown), timeout=2000)
    assert "ValueError('boom')" in shown[0]


def test_the_broken_pyside_release_is_refused() -> None:
    assert binding_problem((6, 11, 3)) is None
    assert binding_problem((6, 8, 0)) is None
    problem = binding_problem((6, 12, 0))
    assert problem is not None and "none_dealloc" in problem and "<6.12" in problem
    assert binding_problem((6, 12, 1)) is not None  # until a fix is proven


def test_the_installed_pyside_is_accepted(qapp: QApplication) -> None:
    assert binding_problem() is None
