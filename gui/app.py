"""``mxmailer-gui`` (and ``mxmailer gui``): one QApplication, one qasync loop, the window.

Owns start-up and shut-down: the binding check, the choice between showing the window
and the headless smoke run, where sandbox campaigns are made, the loop's life, Ctrl-C,
and the exit code. The engine and the lab run on the same loop as the window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QStandardPaths
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication

from core import __version__
from gui.loop import EngineEventLoop, ErrorReporter, binding_problem, make_loop
from gui.main_window import MainWindow, WindowOptions
from gui.qt_log import route_qt_messages
from gui.resources_path import icon_files
from gui.sandbox import DEMO_GREYLIST_SECONDS
from gui.settings_model import SETTINGS_FILE
from gui.smoke import run_smoke

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Greylisting in the smoke run: long enough to be a real wait, short enough for CI.
SMOKE_GREYLIST_SECONDS = 2
#: Qt platforms on which nobody can see a window.
HEADLESS_PLATFORMS = frozenset({"offscreen", "minimal"})

log = logging.getLogger(__name__)


def build_parser(prog: str = "mxmailer-gui") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="The MX Mailer window: open a campaign, send it and watch every "
        "recipient live. Sandbox campaigns go to a lab on this computer; a campaign "
        "file made with `mxmailer send --state` is sent for real only once Settings "
        "choose real delivery, and Start asks first.",
    )
    parser.add_argument("--version", action="version", version=f"mxmailer-gui {__version__}")
    parser.add_argument("campaign", nargs="?", type=Path, help="a campaign file (.mxm) to open")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="open the window on a new sandbox campaign, send it to the lab with short "
        "greylisting, check every result and exit (0: as expected); for CI",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where sandbox campaign files are made (default: the user's data folder; "
        "with --smoke a temporary folder, removed at exit)",
    )
    parser.add_argument(
        "--greylist-seconds",
        type=int,
        help=f"how long the lab's grey.test greylists (default {DEMO_GREYLIST_SECONDS}; "
        f"{SMOKE_GREYLIST_SECONDS} with --smoke)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="--smoke fails if the run has not ended by then (default 60)",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "mxmailer-gui") -> int:
    args = build_parser(prog).parse_args(argv)
    problem = binding_problem()
    if problem is not None:
        print(f"{prog}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.greylist_seconds is not None and args.greylist_seconds < 0:
        print(f"{prog}: --greylist-seconds cannot be negative", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    route_qt_messages()
    _no_display_fallback(prog)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else prog])
    assert isinstance(app, QApplication)
    app.setApplicationName("mxmailer")
    app.setApplicationDisplayName("MX Mailer")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(_app_icon())
    # Wayland shows the icon of the .desktop file named here (packaging/linux/).
    app.setDesktopFileName("mxmailer")
    app.setQuitOnLastWindowClosed(False)  # the window closes once its campaign is closed
    smoke = args.smoke
    if not smoke and QGuiApplication.platformName() in HEADLESS_PLATFORMS:
        print(
            f"{prog}: the Qt platform is {QGuiApplication.platformName()!r}, so nobody can "
            "see the window: running the sandbox smoke test instead (--smoke)",
            file=sys.stderr,
        )
        smoke = True
    greylist = args.greylist_seconds
    if greylist is None:
        greylist = SMOKE_GREYLIST_SECONDS if smoke else DEMO_GREYLIST_SECONDS
    reporter = ErrorReporter()
    with _data_dir(args.data_dir, smoke) as data_dir, _excepthook(reporter):
        loop = make_loop(app, reporter)
        settings_file = None if smoke or args.data_dir else _settings_file()
        window = MainWindow(WindowOptions(data_dir, greylist, settings_file), reporter)
        with loop:
            code: int = loop.run_until_complete(
                _run(window, loop, args.campaign, smoke, args.timeout)
            )
        asyncio.set_event_loop(None)
    return code


async def _run(
    window: MainWindow,
    loop: EngineEventLoop,
    campaign: Path | None,
    smoke: bool,
    timeout: float,
) -> int:
    closed: asyncio.Future[None] = loop.create_future()

    def on_closed() -> None:
        if not closed.done():
            closed.set_result(None)

    window.closed.connect(on_closed)
    for number in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            # Ctrl-C stops a run as the close box does, without asking: it was asked for.
            loop.add_signal_handler(number, window.shut_down)
    window.show()
    code = EXIT_OK
    if smoke:
        code = await run_smoke(window, timeout=timeout)
        window.shut_down()
    elif campaign is not None:
        window.open_file(campaign)
    try:
        await asyncio.wait_for(closed, None if not smoke else timeout)
    except TimeoutError:
        print("smoke: FAILED: the window did not close", file=sys.stderr)
        code = EXIT_FAILED
    for number in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(number)
    return code


def _app_icon() -> QIcon:
    """Every window's icon (title bar, task switcher): all the rendered sizes, so Qt
    picks a sharp one wherever it is drawn."""
    icon = QIcon()
    for png in icon_files():
        icon.addFile(str(png))
    return icon


def _no_display_fallback(prog: str) -> None:
    """On Linux with no display and no platform chosen, Qt would abort ("could not
    connect to display"); choose the offscreen platform, and so the smoke run."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    print(f"{prog}: no display (neither DISPLAY nor WAYLAND_DISPLAY is set)", file=sys.stderr)
    os.environ["QT_QPA_PLATFORM"] = "offscreen"


@contextlib.contextmanager
def _data_dir(chosen: Path | None, smoke: bool) -> Iterator[Path]:
    if chosen is not None:
        yield chosen
    elif smoke:
        with tempfile.TemporaryDirectory(prefix="mxmailer-smoke-") as folder:
            yield Path(folder)
    else:
        location = QStandardPaths.StandardLocation.AppLocalDataLocation
        yield Path(QStandardPaths.writableLocation(location)) / "sandbox"


def _settings_file() -> Path:
    """The app's settings, in the user's data folder (next to the sandbox folder)."""
    location = QStandardPaths.StandardLocation.AppLocalDataLocation
    return Path(QStandardPaths.writableLocation(location)) / SETTINGS_FILE


@contextlib.contextmanager
def _excepthook(reporter: ErrorReporter) -> Iterator[None]:
    """An exception escaping a Qt slot is logged and shown, not printed and forgotten."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        log.error("unhandled exception", exc_info=(kind, error, trace))
        reporter.report(f"{kind.__name__}: {error}")

    sys.excepthook = hook
    try:
        yield
    finally:
        sys.excepthook = previous


if __name__ == "__main__":
    sys.exit(main())
