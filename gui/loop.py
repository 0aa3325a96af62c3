"""The one asyncio loop of the app: qasync's, on Qt's event loop, with its traps closed.

Owns the loop the engine, the lab and the window share, and what happens to an
exception nobody awaited. Two traps, both seen here:

* qasync's ``call_later``/``call_at`` return a plain :class:`asyncio.Handle`, not the
  :class:`asyncio.TimerHandle` asyncio promises; ``core.connection`` asks its phase timer
  for ``when()``, so every SMTP reply crashed the connection ("'Handle' object has no
  attribute 'when'"). :class:`EngineEventLoop` returns real timer handles.
* PySide6 6.12.0 drops a reference to ``None`` on every void Qt call, and qasync makes
  two per callback (startTimer/killTimer): the process aborts within seconds.
  :func:`binding_problem` refuses such a binding before a window opens (pyproject.toml
  pins the version; tests/gui/test_pyside_refleak.py proves the installed one).

Never run a modal dialog (``QDialog.exec``, ``QMessageBox``, ``QFileDialog``) inside a
coroutine: its nested Qt loop would run other tasks while one is executing ("Cannot
enter into task ... while another task is being executed"). Dialogs belong in plain
slots; coroutines are started from them with :func:`spawn`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any, Final

import qasync  # type: ignore[import-untyped]  # no stubs, no py.typed
from PySide6 import __version_info__ as PYSIDE_VERSION
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

#: First PySide6 release known to abort under qasync (none_dealloc), and the release that
#: fixes it, once one is proven (tests/gui/test_pyside_refleak.py).
BROKEN_PYSIDE: Final = (6, 12)
FIXED_PYSIDE: Final[tuple[int, int] | None] = None

#: Where exceptions no one awaited are shown (the window's log panel); logged always.
ErrorSink = Callable[[str], None]

#: Tasks started by :func:`spawn`: asyncio keeps only weak references to running tasks.
_running: set[asyncio.Task[Any]] = set()


def binding_problem(version: tuple[int | str, ...] = tuple(PYSIDE_VERSION)) -> str | None:
    """Why this PySide6 must not run the app, or None when it may."""
    major_minor = (int(version[0]), int(version[1]))
    if major_minor < BROKEN_PYSIDE or (FIXED_PYSIDE is not None and major_minor >= FIXED_PYSIDE):
        return None
    shown = ".".join(str(part) for part in version[:3])
    return (
        f"PySide6 {shown} is installed, but PySide6 6.12 loses a reference to None on every "
        "void Qt call and the app aborts within seconds (Fatal Python error: none_dealloc). "
        "Install the supported release: pip install 'PySide6-Essentials>=6.8,<6.12'"
    )


class EngineEventLoop(qasync.QEventLoop):  # type: ignore[misc]  # qasync has no types
    """qasync's loop whose timers are real :class:`asyncio.TimerHandle` objects."""

    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: object,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(self.time() + delay, callback, args, self, context=context)
        self._add_callback(handle, delay)
        return handle

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: object,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_later(when - self.time(), callback, *args, context=context)

    def call_soon(
        self, callback: Callable[..., object], *args: object, context: Context | None = None
    ) -> asyncio.Handle:
        # The hot path: a plain handle is enough (nobody asks call_soon's handle when).
        handle = asyncio.Handle(callback, args, self, context=context)
        self._add_callback(handle, 0)
        return handle


class ErrorReporter:
    """Turns exceptions no one awaited into a log record and a line for the user."""

    def __init__(self) -> None:
        self.sinks: list[ErrorSink] = []
        self.errors: list[str] = []

    def report(self, text: str) -> None:
        self.errors.append(text)
        for sink in list(self.sinks):
            sink(text)

    def handle_loop_exception(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
    ) -> None:
        error = context.get("exception")
        message = str(context.get("message", "error in the event loop"))
        log.error("%s", message, exc_info=error)
        self.report(f"{message}: {error!r}" if error is not None else message)


def make_loop(app: QApplication, reporter: ErrorReporter) -> EngineEventLoop:
    """The app's loop, made current for this thread."""
    loop = EngineEventLoop(app)
    loop.set_exception_handler(reporter.handle_loop_exception)
    asyncio.set_event_loop(loop)
    return loop


def spawn(coroutine: Coroutine[Any, Any, object], reporter: ErrorReporter) -> asyncio.Task[Any]:
    """Start ``coroutine`` on the running loop; its failure is reported, never lost."""
    task = asyncio.ensure_future(coroutine)

    _running.add(task)

    def done(finished: asyncio.Task[Any]) -> None:
        _running.discard(finished)
        if finished.cancelled():
            return
        error = finished.exception()
        if error is not None:
            log.error("task failed", exc_info=error)
            reporter.report(f"internal error: {error!r}")

    task.add_done_callback(done)
    return task
