"""The window's actions: their names, shortcuts, icons and help, and enabling them.

Owns the QActions of :class:`gui.state.Action` (menus and toolbar share them) and
applying :func:`gui.state.enabled_actions` to them. What an action *does* is the
window's business; whether it may be done is :mod:`gui.state`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QStyle, QWidget

from gui.state import (
    Action,
    ActionContext,
    edit_blocked,
    enabled_actions,
    retry_fixable_blocked,
    start_blocked,
)

Shortcut = QKeySequence.StandardKey | str


@dataclass(frozen=True, slots=True)
class Spec:
    text: str
    shortcut: Shortcut
    icon: QStyle.StandardPixmap
    help: str


SPECS: Final = {
    Action.NEW_SANDBOX: Spec(
        "&New sandbox campaign",
        QKeySequence.StandardKey.New,
        QStyle.StandardPixmap.SP_FileIcon,
        "Make a new campaign from the sandbox sample; it is sent to a lab on this computer",
    ),
    Action.IMPORT_CSV: Spec(
        "New campaign from a &CSV…",
        "Ctrl+I",
        QStyle.StandardPixmap.SP_FileDialogNewFolder,
        "Import a recipients CSV into a new campaign: sent to the lab on this computer, "
        "or to real recipients when Settings choose real delivery (you can also drop a "
        ".csv file on the window)",
    ),
    Action.OPEN: Spec(
        "&Open campaign…",
        QKeySequence.StandardKey.Open,
        QStyle.StandardPixmap.SP_DialogOpenButton,
        "Open a campaign file (.mxm)",
    ),
    Action.SAVE_AS: Spec(
        "Save campaign &as…",
        QKeySequence.StandardKey.SaveAs,
        QStyle.StandardPixmap.SP_DialogSaveButton,
        "Copy the campaign file, every recipient's status and attempts included, and go on "
        "in the copy; the old file stays as it was",
    ),
    Action.START: Spec(
        "&Start",
        "F5",
        QStyle.StandardPixmap.SP_MediaPlay,
        "Start sending (or go on after a stop)",
    ),
    Action.PAUSE: Spec(
        "&Pause",
        "F6",
        QStyle.StandardPixmap.SP_MediaPause,
        "Open no new connections; those open finish what they hold",
    ),
    Action.RESUME: Spec(
        "&Resume",
        "F7",
        QStyle.StandardPixmap.SP_MediaSeekForward,
        "Go on sending after a pause",
    ),
    Action.STOP: Spec(
        "S&top",
        "Shift+F5",
        QStyle.StandardPixmap.SP_MediaStop,
        "Finish the messages in flight and stop; everyone else stays queued",
    ),
    Action.EXPORT_REPORT: Spec(
        "Export &report…",
        "Ctrl+E",
        QStyle.StandardPixmap.SP_DialogSaveButton,
        "Write every recipient's result as a CSV file",
    ),
    Action.EXPORT_BOUNCES: Spec(
        "Export &bounces as suppression list…",
        "Ctrl+Shift+E",
        QStyle.StandardPixmap.SP_DialogDiscardButton,
        "Write the addresses that bounced for their own reasons (unknown mailbox...), "
        "to skip them in the next campaign",
    ),
    Action.EXPORT_DOMAINS: Spec(
        "Export per-&domain summary…",
        "Ctrl+Alt+E",
        QStyle.StandardPixmap.SP_FileDialogListView,
        "Write one CSV row per recipient domain: delivered, bounced, greylisted, the "
        "median delivery delay and the most common bounce replies",
    ),
    Action.EDIT_MESSAGE: Spec(
        "&Edit message…",
        "Ctrl+M",
        QStyle.StandardPixmap.SP_FileDialogDetailedView,
        "Write the message (From, Subject, text, HTML, attachments) and preview it per "
        "recipient; saved as a new campaign with the same recipients",
    ),
    Action.RETRY_FIXABLE: Spec(
        "Retry &what may work now…",
        "Ctrl+R",
        QStyle.StandardPixmap.SP_BrowserReload,
        "Queue again the recipients that failed for a reason that may have been fixed "
        "since: deferred, expired, and bounces the servers blamed on the sender (a "
        "blocklisting, a missing DNS record...). The recipients' own bounces (unknown "
        "mailbox...) are not retried; Start sends the queued ones",
    ),
}


def build_actions(
    parent: QWidget, handlers: Mapping[Action, Callable[[], object]]
) -> dict[Action, QAction]:
    """One QAction per :class:`Action`, connected to its handler."""
    style = parent.style()
    actions: dict[Action, QAction] = {}
    for kind, spec in SPECS.items():
        action = QAction(style.standardIcon(spec.icon), spec.text, parent)
        action.setShortcut(QKeySequence(spec.shortcut))
        action.setStatusTip(spec.help)
        action.setToolTip(f"{spec.help} ({action.shortcut().toString()})")
        action.triggered.connect(handlers[kind])
        actions[kind] = action
    return actions


def apply_context(actions: Mapping[Action, QAction], context: ActionContext) -> None:
    """Enable what makes sense now; Start's tooltip says why it cannot start."""
    enabled = enabled_actions(context)
    for kind, action in actions.items():
        action.setEnabled(kind in enabled)
    start = actions[Action.START]
    blocked = start_blocked(context)
    spec = SPECS[Action.START]
    shortcut = start.shortcut().toString()
    start.setToolTip(f"{spec.help} ({shortcut})" if blocked is None else blocked)
    edit = actions[Action.EDIT_MESSAGE]
    why_not = edit_blocked(context)
    edit_help = f"{SPECS[Action.EDIT_MESSAGE].help} ({edit.shortcut().toString()})"
    edit.setToolTip(edit_help if why_not is None else why_not)
    retry = actions[Action.RETRY_FIXABLE]
    retry_help = f"{SPECS[Action.RETRY_FIXABLE].help} ({retry.shortcut().toString()})"
    why_not = retry_fixable_blocked(context)
    retry.setToolTip(retry_help if why_not is None else f"{why_not}\n\n{retry_help}")
