"""Qt's own messages (qWarning and friends) routed into Python's logging.

Owns one filter: messages Qt's headless platforms print on every window they show
("This plugin does not support propagateSizeHints()") say nothing to a user or a CI
log, so they are dropped; everything else is logged under the "qt" logger.
"""

from __future__ import annotations

import logging
from typing import Final

from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

log = logging.getLogger("qt")

#: Messages that are noise on the offscreen platform (CI, screenshots, --smoke).
NOISE: Final = frozenset({"This plugin does not support propagateSizeHints()"})
_LEVELS: Final = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def _handle(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    if message in NOISE:
        return
    category = context.category or "default"
    log.log(_LEVELS.get(kind, logging.WARNING), "%s: %s", category, message)


def route_qt_messages() -> None:
    """Install the handler (once per process is enough; installing again is harmless)."""
    qInstallMessageHandler(_handle)
