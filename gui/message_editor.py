"""The Message editor: the campaign's message written, checked and previewed before it is
saved as a new campaign (of the same kind: sandbox or real).

Owns the widgets only: From, Reply-To, Subject, plain text, HTML, attachments, the
"Insert merge field" menu (the campaign's columns), "Preview as recipient N", and the
problems shown inline (Save stays disabled while there are any). What the form means,
what is wrong with it and what the preview holds is :mod:`gui.message_form`'s. The HTML
is rendered in a QTextBrowser that loads nothing: no remote image, no link followed.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QFont, QHideEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.store import RecipientState, StoreError
from core.template import Attachment, MessageTemplate, TemplateError
from gui.banners import Banner, Kind
from gui.message_form import (
    Checked,
    MessageForm,
    check,
    form_from_eml,
    headers_text,
    merge_fields,
    placeholder,
    preview_for,
)

#: How long the editor waits after a keystroke before it checks and previews again.
REFRESH_MS: Final = 200
NOTE: Final = (
    "Saving makes a new campaign with the same recipients and this message; "
    "the current campaign file is left as it is."
)


class OfflineBrowser(QTextBrowser):
    """Renders HTML and loads no resource at all (remote images are tracking pixels)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)

    def loadResource(self, kind: int, name: QUrl | str) -> object:
        return None


class MessageEditor(QDialog):
    """Edit a message for a campaign whose columns are ``columns``; ``recipient(n)``
    gives row n (1-based) of ``total``. Once accepted, :attr:`message` is the .eml."""

    #: The checks and the preview were redone: for tests and the screenshot script.
    refreshed = Signal()

    def __init__(
        self,
        form: MessageForm,
        columns: Sequence[str],
        recipient: Callable[[int], RecipientState],
        total: int,
        *,
        settings: Mapping[str, object] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit message")
        self.columns = list(columns)
        self.settings = dict(settings or {})
        self._recipient = recipient
        self.checked = Checked(None)
        self.message: bytes | None = None
        self._attachments: list[Attachment] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)

        self.from_edit = QLineEdit()
        self.from_edit.setPlaceholderText("Club <news@example.com>")
        self.reply_to_edit = QLineEdit()
        self.reply_to_edit.setPlaceholderText("optional")
        self.subject_edit = QLineEdit()
        self.text_edit = QPlainTextEdit()
        self.html_edit = QPlainTextEdit()
        self.html_edit.setPlaceholderText("Optional HTML version, e.g. <p>Hi {{first_name}}</p>")
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.TypeWriter)
        self.html_edit.setFont(mono)
        #: Where "Insert merge field" inserts: the last of these that had the focus.
        self.target: QLineEdit | QPlainTextEdit = self.text_edit

        self.body_tabs = QTabWidget()
        self.body_tabs.addTab(self.text_edit, "Plain text")
        self.body_tabs.addTab(self.html_edit, "HTML")

        self.attachment_list = QListWidget()
        self.attachment_list.setMaximumHeight(70)
        add = QPushButton("Attach…")
        add.clicked.connect(self._choose_attachment)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove_attachment)
        files = QVBoxLayout()
        files.addWidget(add)
        files.addWidget(self.remove_button)
        files.addStretch(1)
        attachments_row = QHBoxLayout()
        attachments_row.addWidget(self.attachment_list, 1)
        attachments_row.addLayout(files)

        self.merge_menu = QMenu(self)
        for name in merge_fields(self.columns):
            action = QAction(placeholder(name), self.merge_menu)
            action.triggered.connect(lambda _=False, n=name: self.insert_field(n))
            self.merge_menu.addAction(action)
        self.merge_button = QToolButton()
        self.merge_button.setText("Insert merge field")
        self.merge_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.merge_button.setMenu(self.merge_menu)
        load = QPushButton("Load from .eml…")
        load.clicked.connect(self._choose_eml)
        tools = QHBoxLayout()
        tools.addWidget(self.merge_button)
        tools.addWidget(load)
        tools.addStretch(1)

        form_layout = QFormLayout()
        form_layout.addRow("From:", self.from_edit)
        form_layout.addRow("Reply-To:", self.reply_to_edit)
        form_layout.addRow("Subject:", self.subject_edit)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(tools)
        left_layout.addLayout(form_layout)
        left_layout.addWidget(self.body_tabs, 1)
        left_layout.addWidget(QLabel("Attachments:"))
        left_layout.addLayout(attachments_row)

        self.row_spin = QSpinBox()
        self.row_spin.setRange(1, max(1, total))
        self.row_spin.setSuffix(f" of {total}")
        self.row_spin.valueChanged.connect(self.refresh)
        self.recipient_label = QLabel()
        row_line = QHBoxLayout()
        row_line.addWidget(QLabel("Preview as recipient"))
        row_line.addWidget(self.row_spin)
        row_line.addWidget(self.recipient_label, 1)
        self.headers_view = QLabel()
        self.headers_view.setWordWrap(True)
        self.headers_view.setTextFormat(Qt.TextFormat.PlainText)
        self.headers_view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.headers_view.setFrameShape(QFrame.Shape.StyledPanel)
        self.headers_view.setMargin(6)
        self.preview_text = QPlainTextEdit()
        self.preview_text.setReadOnly(True)
        self.preview_html = OfflineBrowser()
        self.preview_tabs = QTabWidget()
        self.preview_tabs.addTab(self.preview_html, "HTML (rendered)")
        self.preview_tabs.addTab(self.preview_text, "Plain text")
        self.attachments_view = QLabel()
        self.attachments_view.setWordWrap(True)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(row_line)
        right_layout.addWidget(self.headers_view)
        right_layout.addWidget(self.preview_tabs, 1)
        right_layout.addWidget(self.attachments_view)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)

        self.problems = Banner(Kind.PROBLEM)
        self.problems.hide()
        note = QLabel(NOTE)
        note.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setText("Save as new campaign")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.problems)
        layout.addWidget(note)
        layout.addWidget(self.buttons)

        self.set_form(form)
        for line in (self.from_edit, self.reply_to_edit, self.subject_edit):
            line.textChanged.connect(self._changed)
        for edit in (self.text_edit, self.html_edit):
            edit.textChanged.connect(self._changed)
        for widget in (self.subject_edit, self.text_edit, self.html_edit):
            widget.installEventFilter(self)
        self.resize(1200, 760)

    # ---- the form -----------------------------------------------------------------------

    def form(self) -> MessageForm:
        return MessageForm(
            from_=self.from_edit.text(),
            subject=self.subject_edit.text(),
            text=self.text_edit.toPlainText(),
            html=self.html_edit.toPlainText(),
            reply_to=self.reply_to_edit.text(),
            attachments=tuple(self._attachments),
        )

    def set_form(self, form: MessageForm) -> None:
        self.from_edit.setText(form.from_)
        self.reply_to_edit.setText(form.reply_to)
        self.subject_edit.setText(form.subject)
        self.text_edit.setPlainText(form.text)
        self.html_edit.setPlainText(form.html)
        self._attachments = list(form.attachments)
        self._show_attachments()
        self.refresh()

    def load_eml(self, path: Path) -> bool:
        """Fill the form from an .eml file; False (and the reason shown) if it cannot."""
        try:
            form = form_from_eml(path.read_bytes())
        except (OSError, TemplateError) as error:
            self.problems.show_text(f"“{path.name}” could not be loaded: {error}")
            return False
        self.set_form(form)
        return True

    def insert_field(self, name: str) -> None:
        """Insert ``{{name}}`` at the cursor of the last edited Subject, text or HTML."""
        target = self.target
        if isinstance(target, QPlainTextEdit):
            target.insertPlainText(placeholder(name))
        else:
            target.insert(placeholder(name))
        target.setFocus()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusIn and isinstance(
            watched, QLineEdit | QPlainTextEdit
        ):
            self.target = watched
        return False

    # ---- checking and previewing ---------------------------------------------------------

    def _changed(self) -> None:
        self.save_button.setEnabled(False)  # until checked again
        self._timer.start()

    def refresh(self) -> None:
        """Check the form, show its problems, and preview it for the chosen recipient."""
        self._timer.stop()
        self.checked = check(self.form(), self.columns, self.settings)
        if self.checked.problems:
            self.problems.show_text("\n".join(self.checked.problems))
        else:
            self.problems.hide()
        self.save_button.setEnabled(self.checked.saveable)
        self._preview(self.checked.template)
        self.refreshed.emit()

    def _preview(self, template: MessageTemplate | None) -> None:
        why = ""
        try:
            recipient: RecipientState | None = self._recipient(self.row_spin.value())
        except LookupError:
            recipient, why = None, "the campaign has no recipient with this number"
        except StoreError as error:
            recipient, why = None, f"the campaign file could not be read ({error})"
        self.recipient_label.setText(recipient.email if recipient is not None else "")
        if template is None or recipient is None:
            self.headers_view.setText(
                "No preview: fix the problems below first."
                if template is None
                else f"No preview: {why}."
            )
            self.preview_text.setPlainText("")
            self.preview_html.setHtml("")
            self.attachments_view.setText("")
            return
        preview = preview_for(template, recipient)
        self.headers_view.setText(headers_text(preview))
        self.preview_text.setPlainText(preview.text or "")
        if preview.html is not None:
            self.preview_html.setHtml(preview.html)
        else:
            self.preview_html.setPlainText("(no HTML part: readers see the plain text)")
        self.attachments_view.setText(
            "Attachments: "
            + ", ".join(f"{a.filename} ({a.size:,} bytes)" for a in preview.attachments)
            if preview.attachments
            else ""
        )

    # ---- attachments ---------------------------------------------------------------------

    def add_attachment(self, path: Path) -> None:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._attachments.append(Attachment(path.name, path.read_bytes(), kind))
        self._show_attachments()
        self._changed()

    def _show_attachments(self) -> None:
        self.attachment_list.clear()
        for attachment in self._attachments:
            self.attachment_list.addItem(
                f"{attachment.filename} ({attachment.content_type}, "
                f"{len(attachment.data):,} bytes)"
            )
        self.remove_button.setEnabled(bool(self._attachments))

    def _remove_attachment(self) -> None:
        row = self.attachment_list.currentRow()
        if 0 <= row < len(self._attachments):
            del self._attachments[row]
            self._show_attachments()
            self._changed()

    # ---- dialogs and closing ---------------------------------------------------------------

    def _choose_eml(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Load message", str(Path.home()), "E-mail messages (*.eml);;All files (*)"
        )
        if name:
            self.load_eml(Path(name))

    def _choose_attachment(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Attach a file", str(Path.home()))
        if name:
            try:
                self.add_attachment(Path(name))
            except OSError as error:
                self.problems.show_text(f"“{Path(name).name}” could not be read: {error}")

    def done(self, result: int) -> None:
        """Closed (saved or not): a check still due would read a campaign that may be
        closed by now."""
        self._timer.stop()
        super().done(result)

    def hideEvent(self, event: QHideEvent) -> None:
        self._timer.stop()
        super().hideEvent(event)

    def accept(self) -> None:
        self.refresh()
        template = self.checked.template
        if not self.checked.saveable or template is None:
            return
        self.message = template.source
        super().accept()

