"""``python -m gui.screenshots``: pictures of the window for the docs, made offscreen.

Runs the sandbox demo in the real window (real lab, real engine, the demo's greylisting)
and saves PNGs into docs/screenshots/: the empty window, the Settings dialog, the Import
dialog on the sample list, the run in progress with greylisting countdowns, and the
finished campaign. A script, not a test: it waits on the clock where a test would wait on a signal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from gui.loop import ErrorReporter, make_loop
from gui.main_window import MainWindow, WindowOptions
from gui.qt_log import route_qt_messages
from gui.rows import Group
from gui.sandbox import DEMO_GREYLIST_SECONDS, SAMPLE_RECIPIENTS

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SIZE = (1400, 860)


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        await asyncio.sleep(0.05)


def dark_palette() -> QPalette:
    """A dark palette (as a desktop in dark mode gives): status colours must read on it."""
    role = QPalette.ColorRole
    palette = QPalette()
    for which, rgb in (
        (role.Window, (45, 45, 48)),
        (role.WindowText, (222, 222, 222)),
        (role.Base, (30, 30, 32)),
        (role.AlternateBase, (40, 40, 44)),
        (role.Text, (222, 222, 222)),
        (role.Button, (53, 53, 57)),
        (role.ButtonText, (222, 222, 222)),
        (role.Highlight, (42, 110, 190)),
        (role.HighlightedText, (255, 255, 255)),
        (role.PlaceholderText, (150, 150, 150)),
        (role.ToolTipBase, (60, 60, 64)),
        (role.ToolTipText, (222, 222, 222)),
    ):
        palette.setColor(which, QColor(*rgb))
    for which in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, which, QColor(120, 120, 120))
    return palette


async def capture(
    window: MainWindow,
    output: Path,
    suffix: str = "",
    *,
    import_only: bool = False,
    editor_only: bool = False,
) -> list[Path]:
    """Drive the window through the demo; the paths of the pictures taken."""
    output.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def shot(name: str) -> None:
        QApplication.processEvents()
        path = output / name.replace(".png", f"{suffix}.png")
        if not window.grab().save(str(path)):
            raise OSError(f"could not save {path}")
        saved.append(path)

    window.resize(*SIZE)
    window.show()
    await asyncio.sleep(0.3)
    if editor_only:
        saved.append(await _message_editor(window, output, suffix))
        window.close()
        return saved
    if not import_only:
        shot("welcome.png")
        saved.append(await _settings_dialog(window, output, suffix))

    dialog = window.import_csv(SAMPLE_RECIPIENTS)
    assert dialog is not None
    await _until(lambda: not dialog.working, 30, "import preview")
    await asyncio.sleep(0.3)
    QApplication.processEvents()
    path = output / f"import-dialog{suffix}.png"
    if not dialog.grab().save(str(path)):
        raise OSError(f"could not save {path}")
    saved.append(path)
    dialog.reject()
    if import_only:
        window.close()
        return saved

    saved.append(await _message_editor(window, output, suffix))
    session = window.session
    assert session is not None
    window.start()
    rows = window.model.book.rows

    def settled_but_greylisted() -> bool:
        waiting = [row for row in rows if row.group is Group.WAITING]
        busy = [row for row in rows if row.group is Group.ACTIVE]
        return len(waiting) >= 3 and not busy

    await _until(settled_but_greylisted, 30, "greylisted recipients waiting")
    grey = next(row for row in rows if row.domain == "grey.test")
    window.recipients.select_recipient(grey.id)
    await asyncio.sleep(1.5)  # the attempt is committed; the countdown has ticked
    shot("running-greylisted.png")

    await asyncio.wait_for(session.wait_ended(), DEMO_GREYLIST_SECONDS * 4)
    bounced = next(row for row in rows if row.email == "nobody@bounce.test")
    window.recipients.select_recipient(bounced.id)
    await asyncio.sleep(0.5)
    shot("finished.png")
    window.close()
    return saved


async def _settings_dialog(window: MainWindow, output: Path, suffix: str) -> Path:
    """Picture the Settings dialog with real delivery chosen but not yet acknowledged
    (its inline error shown, OK disabled); the dialog is closed unsaved."""
    dialog = window.open_settings()
    dialog.sender_edit.setText("news@example.com")
    dialog.helo.setText("mail.example.com")
    dialog.real_choice.setChecked(True)
    dialog.adjustSize()
    await asyncio.sleep(0.3)
    QApplication.processEvents()
    path = output / f"settings-dialog{suffix}.png"
    if not dialog.grab().save(str(path)):
        raise OSError(f"could not save {path}")
    dialog.reject()
    return path


async def _message_editor(window: MainWindow, output: Path, suffix: str) -> Path:
    """Open the sandbox campaign and picture its Message editor, previewing recipient 3
    (non-ASCII name and city); the editor is closed unsaved."""
    window.open_sandbox()
    editor = window.edit_message()
    assert editor is not None
    editor.resize(SIZE[0] - 100, SIZE[1] - 60)
    editor.html_edit.setPlainText(
        "<h2>Hello {{first_name}}</h2>\n<p>The <b>{{city}}</b> chapter meets on "
        "<i>Tuesday</i>.</p>\n<p style=\"color:#555\">Sent by the sandbox demo.</p>"
    )
    editor.row_spin.setValue(3)
    editor.refresh()
    editor.preview_tabs.setCurrentWidget(editor.preview_html)
    await asyncio.sleep(0.3)
    QApplication.processEvents()
    path = output / f"message-editor{suffix}.png"
    if not editor.grab().save(str(path)):
        raise OSError(f"could not save {path}")
    editor.reject()
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gui.screenshots", description=__doc__)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the PNGs go")
    parser.add_argument(
        "--dark", action="store_true", help="with a dark palette (files named *-dark.png)"
    )
    parser.add_argument(
        "--import-dialog-only", action="store_true", help="only the Import dialog's picture"
    )
    parser.add_argument(
        "--message-editor-only", action="store_true", help="only the Message editor's picture"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    route_qt_messages()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    if args.dark:
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
    reporter = ErrorReporter()
    with tempfile.TemporaryDirectory(prefix="mxmailer-screenshots-") as folder:
        loop = make_loop(app, reporter)
        window = MainWindow(WindowOptions(Path(folder), DEMO_GREYLIST_SECONDS), reporter)
        closed: asyncio.Future[None] = loop.create_future()

        def on_closed() -> None:
            if not closed.done():
                closed.set_result(None)

        window.closed.connect(on_closed)

        async def run() -> list[Path]:
            saved = await capture(
                window,
                args.output,
                "-dark" if args.dark else "",
                import_only=args.import_dialog_only,
                editor_only=args.message_editor_only,
            )
            await asyncio.wait_for(closed, 30)
            return saved

        with loop:
            saved = loop.run_until_complete(run())
        asyncio.set_event_loop(None)
    for path in saved:
        print(path)
    if reporter.errors:
        print("errors:", *reporter.errors, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
