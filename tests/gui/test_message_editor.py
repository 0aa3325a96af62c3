"""The Message editor: its logic (gui.message_form) without a window, the dialog offscreen,
and an edited message sent by the window to the lab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core.store import CampaignStore, Status
from core.template import Attachment, describe
from gui.main_window import MainWindow
from gui.message_editor import MessageEditor, OfflineBrowser
from gui.message_form import (
    UNSENT,
    MessageForm,
    campaign_columns,
    campaign_with_message,
    check,
    form_from_eml,
    nothing_sent,
    preview_bytes,
)
from gui.sandbox import create_sample_campaign, is_sandbox
from gui.state import Action, ActionContext, RunState, edit_blocked, enabled_actions

NEWSLETTER = Path("/work/shared/data/messages/newsletter-with-attachment.eml")
COLUMNS = ["email", "first_name", "last_name", "city"]
RUN_TIMEOUT_MS = 30_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CampaignStore]:
    sample = create_sample_campaign(tmp_path / "data", now=0)
    with CampaignStore.open(sample.path)[0] as store:
        yield store


def editor_for(
    store: CampaignStore, qtbot: QtBot, form: MessageForm | None = None
) -> MessageEditor:
    editor = MessageEditor(
        form or form_from_eml(store.message),
        campaign_columns(store),
        store.get,
        sum(store.counts().values()),
    )
    qtbot.addWidget(editor)
    return editor


# ---- the logic, without a window ------------------------------------------------------


def test_form_to_parts_to_preview_keeps_non_ascii(store: CampaignStore) -> None:
    form = MessageForm(
        from_="Club Zoë <news@sender.test>",
        subject="{{first_name}}, 日本語 news",
        text="Hello {{first_name}} from 日本語",
        html="<p>Hello <b>{{first_name}}</b> 日本語</p>",
        reply_to="replies@sender.test",
        attachments=(Attachment("notes-日本語.txt", "Zoë\n".encode(), "text/plain"),),
    )
    checked = check(form, campaign_columns(store))
    assert checked.saveable and checked.template is not None
    zoe = store.get(3)
    assert zoe.fields["first_name"] == "Zoë"
    preview = describe(preview_bytes(checked.template, zoe))
    assert preview.header("Subject") == "Zoë, 日本語 news"
    assert preview.header("From") == "Club Zoë <news@sender.test>"
    assert preview.header("Reply-To") == "replies@sender.test"
    assert preview.text is not None and "Hello Zoë from 日本語" in preview.text
    assert preview.html is not None and "<b>Zoë</b> 日本語" in preview.html
    assert [(a.filename, a.size) for a in preview.attachments] == [("notes-日本語.txt", 5)]
    # The stored bytes load back into the same form.
    again = form_from_eml(checked.template.source)
    assert again.subject == form.subject and again.from_ == form.from_
    assert again.text.rstrip("\n") == form.text and again.html.rstrip("\n") == form.html
    assert again.attachments == form.attachments


@pytest.mark.parametrize(
    ("from_", "expected"),
    [
        ("", "From is missing"),
        ("news", "has no domain"),
        ("Club <news@localhost>", "has no domain"),
        ("a@x.test, b@x.test", "one address"),
    ],
)
def test_a_bad_from_is_said_once(from_: str, expected: str) -> None:
    problems = check(MessageForm(from_, "Hi", "text"), COLUMNS).problems
    assert len(problems) == 1 and expected in problems[0]


def test_unknown_fields_are_listed_against_the_columns() -> None:
    form = MessageForm("news@sender.test", "Hi {{frist_name}}", "{{town}} {{email}}")
    checked = check(form, COLUMNS)
    assert not checked.saveable
    assert checked.problems == (
        "Unknown field {{frist_name}}: the campaign's columns are email, first_name, "
        "last_name, city.",
        "Unknown field {{town}}: the campaign's columns are email, first_name, last_name, "
        "city.",
    )


def test_the_newsletter_eml_fills_the_form() -> None:
    form = form_from_eml(NEWSLETTER.read_bytes())
    assert form.from_ == "Example Club <news@sender.test>"
    assert form.subject == "{{first_name}}, the November newsletter"
    assert form.text.startswith("Hi {{first_name}},")
    assert "<h1>Hi {{first_name}}</h1>" in form.html
    assert [(a.filename, a.content_type) for a in form.attachments] == [
        ("programme-novembre.pdf", "application/pdf")
    ]
    assert form.attachments[0].data.startswith(b"%PDF")


def test_the_edited_message_becomes_a_new_campaign_with_the_same_recipients(
    store: CampaignStore, tmp_path: Path
) -> None:
    checked = check(MessageForm("news@sender.test", "New {{city}}", "Hi"), COLUMNS)
    assert checked.template is not None and nothing_sent(store)
    made = campaign_with_message(store, checked.template.source, tmp_path / "out", now=0)
    with CampaignStore.open(made.path)[0] as copy:
        assert is_sandbox(copy)
        assert copy.message == checked.template.source
        assert copy.counts() == store.counts()
        assert [(s.email, s.fields, s.status) for s in copy.states()] == [
            (s.email, s.fields, s.status) for s in store.states()
        ]
    assert made.summary.valid == 23 and made.summary.invalid == 1


def test_edit_is_offered_only_before_sending() -> None:
    fresh = ActionContext(RunState.READY, sendable=True, unfinished=5, fresh=True)
    assert Action.EDIT_MESSAGE in enabled_actions(fresh)
    started = ActionContext(RunState.READY, sendable=True, unfinished=5, fresh=False)
    assert Action.EDIT_MESSAGE not in enabled_actions(started)
    assert "same bytes" in (edit_blocked(started) or "")
    running = ActionContext(RunState.RUNNING, sendable=True, unfinished=5, fresh=True)
    assert Action.EDIT_MESSAGE not in enabled_actions(running)
    viewed = ActionContext(
        RunState.READY, sendable=False, unfinished=5, fresh=True, send_blocked="read-only"
    )
    assert edit_blocked(viewed) == "read-only"  # the reason it cannot be sent is the reason
    real = ActionContext(RunState.READY, sendable=True, unfinished=5, fresh=True, real=True)
    assert Action.EDIT_MESSAGE in enabled_actions(real)  # a real one, before it is sent


# ---- the dialog ---------------------------------------------------------------------------


def test_an_unknown_field_is_shown_inline_and_save_is_disabled(
    store: CampaignStore, qtbot: QtBot
) -> None:
    editor = editor_for(store, qtbot)
    assert editor.save_button.isEnabled() and editor.problems.isHidden()
    editor.subject_edit.setText("Hi {{nickname}}")
    assert not editor.save_button.isEnabled()  # at once, before the check
    with qtbot.waitSignal(editor.refreshed, timeout=2000):
        pass
    assert not editor.problems.isHidden()
    assert "Unknown field {{nickname}}" in editor.problems.text
    assert "first_name" in editor.problems.text
    assert not editor.save_button.isEnabled()
    editor.subject_edit.setText("Hi {{first_name}}")
    editor.refresh()
    assert editor.save_button.isEnabled() and editor.problems.isHidden()


def test_insert_merge_field_inserts_at_the_cursor(store: CampaignStore, qtbot: QtBot) -> None:
    editor = editor_for(store, qtbot, MessageForm("news@sender.test", "Hi", "Dear ,\nbye"))
    names = [action.text() for action in editor.merge_menu.actions()]
    assert names == ["{{first_name}}", "{{last_name}}", "{{city}}", "{{email}}"]
    editor.show()
    editor.text_edit.setFocus()
    qtbot.waitUntil(lambda: editor.target is editor.text_edit)
    cursor = editor.text_edit.textCursor()
    cursor.setPosition(len("Dear "))
    editor.text_edit.setTextCursor(cursor)
    first_name = next(a for a in editor.merge_menu.actions() if a.text() == "{{first_name}}")
    first_name.trigger()
    assert editor.text_edit.toPlainText() == "Dear {{first_name}},\nbye"
    editor.subject_edit.setFocus()
    qtbot.waitUntil(lambda: editor.target is editor.subject_edit)
    editor.subject_edit.setCursorPosition(0)
    editor.insert_field("city")
    assert editor.subject_edit.text() == "{{city}}Hi"


def test_preview_as_recipient_3_shows_their_name(store: CampaignStore, qtbot: QtBot) -> None:
    form = MessageForm(
        "news@sender.test", "For {{first_name}}", "Hi {{first_name}}", "<p>Hi {{last_name}}</p>"
    )
    editor = editor_for(store, qtbot, form)
    editor.row_spin.setValue(3)
    assert editor.recipient_label.text() == "zoe@plain.test"
    assert "Subject: For Zoë" in editor.headers_view.text()
    assert "To: zoe@plain.test" in editor.headers_view.text()
    assert editor.preview_text.toPlainText().startswith("Hi Zoë")
    assert "Hi Nguyễn" in editor.preview_html.toPlainText()
    editor.row_spin.setValue(1)
    assert "Subject: For Ada" in editor.headers_view.text()


def test_the_html_preview_loads_nothing(qtbot: QtBot) -> None:
    browser = OfflineBrowser()
    qtbot.addWidget(browser)
    assert not browser.openLinks() and not browser.openExternalLinks()
    assert browser.loadResource(2, "https://tracker.example/pixel.gif") is None


def test_load_from_eml_fills_the_form(store: CampaignStore, qtbot: QtBot) -> None:
    editor = editor_for(store, qtbot)
    assert editor.load_eml(NEWSLETTER)
    assert editor.from_edit.text() == "Example Club <news@sender.test>"
    assert editor.text_edit.toPlainText().startswith("Hi {{first_name}},")
    assert "<h1>Hi {{first_name}}</h1>" in editor.html_edit.toPlainText()
    assert editor.attachment_list.count() == 1
    assert "programme-novembre.pdf" in editor.attachment_list.item(0).text()
    assert editor.save_button.isEnabled()
    assert "Hi Ada" in editor.preview_html.toPlainText()
    assert "programme-novembre.pdf" in editor.attachments_view.text()
    assert not editor.load_eml(store.path.with_name("missing.eml"))
    assert "could not be loaded" in editor.problems.text


# ---- the window ---------------------------------------------------------------------------




def test_a_saved_message_is_what_the_lab_receives(window: MainWindow, qtbot: QtBot) -> None:
    edit = window.action_for[Action.EDIT_MESSAGE]
    assert not edit.isEnabled()
    assert window.edit_message() is None
    window.open_sandbox()
    assert edit.isEnabled() and edit.shortcut().toString() == "Ctrl+M"
    first = window.session
    assert first is not None
    editor = window.edit_message()
    assert editor is not None and window.message_editor is editor
    assert editor.subject_edit.text().startswith("Hello {{first_name}}")
    editor.subject_edit.setText("Edited for {{first_name}} — 日本語")
    editor.refresh()
    editor.save_button.click()
    qtbot.waitUntil(lambda: window.session is not None and window.session is not first)
    session = window.session
    assert session is not None and "sandbox-edited" in session.path.name
    assert window.model.rowCount() == 24
    assert window.message_editor is None

    window.start()
    assert not edit.isEnabled()
    assert "same bytes" in edit.toolTip()

    def subjects() -> dict[str, str]:
        lab = session.lab
        if lab is None or not lab.running:
            return {}
        return {
            rcpt: describe(message.data).header("Subject") or ""
            for message in lab.world.messages()
            for rcpt in message.recipients
        }

    qtbot.waitUntil(lambda: "zoe@plain.test" in subjects(), timeout=RUN_TIMEOUT_MS)
    assert subjects()["zoe@plain.test"] == "Edited for Zoë — 日本語"
    qtbot.waitUntil(lambda: window.context().run is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)
    assert session.store.get(3).status is Status.DELIVERED
    assert not edit.isEnabled()


def test_preview_as_recipient_n_counts_the_rows_left_after_a_removal(
    window: MainWindow,
) -> None:
    window.open_sandbox()
    session = window.session
    assert session is not None
    first_three = [row.id for row in window.model.book.rows[:3]]
    assert session.remove(first_three) == 3
    window._reload_rows(session)
    left = window.model.book.rows
    editor = window.edit_message()
    assert editor is not None
    assert editor.row_spin.maximum() == len(left) == 21
    editor.row_spin.setValue(1)
    editor.refresh()
    assert editor.recipient_label.text() == left[0].email
    editor.row_spin.setValue(21)
    editor.refresh()
    assert editor.recipient_label.text() == left[20].email
    assert "No preview" not in editor.headers_view.text()
    editor.reject()


def test_a_campaign_tried_before_keeps_its_message_even_once_every_row_is_queued_again(
    window: MainWindow, tmp_path: Path
) -> None:
    path = create_sample_campaign(tmp_path / "made").path
    with CampaignStore.open(path)[0] as store:
        ada = next(s for s in store.states() if s.email == "ada@plain.test")
        store.record(ada.to_update(status=Status.EXPIRED, code=451, text="later", attempts=1))
        store.flush()
    assert window.open_file(path)
    session = window.session
    assert session is not None and not session.fresh
    assert session.retry([ada.id]) == 1  # every status is one an import sets again...
    assert all(status in UNSENT for status, n in session.counts.items() if n)
    assert not session.fresh  # ...but its Message-ID and Date are fixed: not fresh
    assert not window.action_for[Action.EDIT_MESSAGE].isEnabled()
    assert "same bytes" in (edit_blocked(window.context()) or "")
