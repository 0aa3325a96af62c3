"""The window sending the sandbox campaign to the real lab, on the app's own loop.

Every wait is ``qtbot.waitUntil`` on the window's state, bounded; nothing sleeps.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QModelIndex
from PySide6.QtGui import QGuiApplication, QKeySequence
from pytestqt.qtbot import QtBot

from core.events import SenderProblemReported
from core.store import CampaignStore, NewRecipient, Status
from gui.main_window import MainWindow
from gui.recipients_model import Column
from gui.rows import RecipientRow
from gui.sandbox import BANNER, create_sample_campaign, expected_outcome
from gui.state import Action, RunState

RUN_TIMEOUT_MS = 30_000
COUNTDOWN = re.compile(r"^\d\d:\d\d · greylisted$")




def run_state(window: MainWindow) -> RunState:
    return window.context().run


def enabled(window: MainWindow) -> set[Action]:
    return {kind for kind, action in window.action_for.items() if action.isEnabled()}


def by_email(window: MainWindow) -> dict[str, RecipientRow]:
    return {row.email: row for row in window.model.book.rows}


def test_the_sandbox_campaign_runs_to_the_end_in_the_window(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    assert window.pages.currentWidget() is window.welcome
    assert enabled(window) == {Action.NEW_SANDBOX, Action.IMPORT_CSV, Action.OPEN}

    window.open_sandbox()
    assert not window.sandbox_banner.isHidden()
    assert window.sandbox_banner.text == BANNER
    assert "[sandbox]" in window.windowTitle()
    assert Action.START in enabled(window)
    model = window.model
    assert model.rowCount() == 24

    countdowns: dict[str, list[str]] = {}

    def watch(top: QModelIndex, bottom: QModelIndex, _roles: list[int]) -> None:
        for position in range(top.row(), bottom.row() + 1):
            shown = model.index(position, Column.NEXT_TRY).data()
            if shown:
                countdowns.setdefault(model.row_at(position).email, []).append(shown)

    model.dataChanged.connect(watch)
    window.start()
    qtbot.waitUntil(lambda: run_state(window) is RunState.RUNNING, timeout=RUN_TIMEOUT_MS)
    assert enabled(window) >= {Action.PAUSE, Action.STOP}
    assert Action.START not in enabled(window) and Action.NEW_SANDBOX not in enabled(window)
    qtbot.waitUntil(lambda: run_state(window) is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)

    rows = by_email(window)
    for email, row in rows.items():
        assert row.status.value == expected_outcome(email), (email, row)
    ada = rows["ada@plain.test"]
    assert (ada.code, ada.enhanced, ada.mx) == (250, "2.0.0", "mx.plain.test [127.0.0.2]")
    nobody = rows["nobody@bounce.test"]
    assert (nobody.code, nobody.enhanced) == (550, "5.1.1")
    assert (
        model.index(list(rows).index("nobody@bounce.test"), Column.RESULT)
        .data()
        .startswith("550 5.1.1 ")
    )
    null_mx = rows["claude@nullmx.test"]
    assert null_mx.code is None and "null MX" in null_mx.text and null_mx.attempts == 1
    assert rows["katherine@failover.test"].mx.startswith("mx2.failover.test")
    assert rows["tim@tarpit.test"].mx.startswith("mx2.tarpit.test")

    grace = rows["grace@grey.test"]
    assert grace.status is Status.DELIVERED and grace.attempts == 2
    assert any(COUNTDOWN.match(shown) for shown in countdowns["grace@grey.test"])
    assert model.index(list(rows).index("grace@grey.test"), Column.NEXT_TRY).data() == ""

    strip = window.summary.tally
    assert (strip.total, strip.final, strip.waiting) == (24, 24, 0)
    assert strip.by_key["delivered"] == 18 and strip.by_key["bounced"] == 5
    assert enabled(window) == {
        Action.NEW_SANDBOX,
        Action.IMPORT_CSV,
        Action.OPEN,
        Action.SAVE_AS,
        Action.EXPORT_REPORT,
        Action.EXPORT_BOUNCES,
        Action.EXPORT_DOMAINS,
    }

    # The table filters and the transcript of a bounce.
    panel = window.recipients
    panel.select_status("Bounced")
    assert panel.proxy.rowCount() == 5
    assert panel.select_recipient(nobody.id)
    qtbot.waitUntil(lambda: "550 5.1.1" in window.transcript.toPlainText(), timeout=5000)
    assert "C: RCPT TO:<nobody@bounce.test>" in window.transcript.toPlainText()
    panel.copy_address()
    assert QGuiApplication.clipboard().text() == "nobody@bounce.test"
    panel.select_status("All recipients")
    panel.search.setText("grey.test")
    assert panel.proxy.rowCount() == 4

    # Exports: the report and the recipients' own bounces.
    report = tmp_path / "report.csv"
    assert window.export_report(report) == 24
    with report.open(encoding="utf-8") as handle:
        statuses = {row["email"]: row["status"] for row in csv.DictReader(handle)}
    assert statuses["grace@grey.test"] == "delivered"
    bounces = tmp_path / "bounces.txt"
    assert window.export_bounces(bounces) == 5
    listed = [line for line in bounces.read_text().splitlines() if not line.startswith("#")]
    assert "nobody@bounce.test" in listed and "ada@plain.test" not in listed
    domains = tmp_path / "domains.csv"
    sent_to = {row.domain for row in window.model.book.rows if row.status is not Status.INVALID}
    assert window.export_domains(domains) == len(sent_to)
    with domains.open(encoding="utf-8") as handle:
        by_domain = {row["domain"]: row for row in csv.DictReader(handle)}
    assert by_domain["grey.test"]["greylisted"] == by_domain["grey.test"]["recipients"]


def test_pause_and_resume_follow_the_run(window: MainWindow, qtbot: QtBot) -> None:
    window.open_sandbox()
    window.start()
    qtbot.waitUntil(lambda: run_state(window) is RunState.RUNNING, timeout=RUN_TIMEOUT_MS)
    window.action_for[Action.PAUSE].trigger()
    assert run_state(window) is RunState.PAUSED
    assert enabled(window) >= {Action.RESUME, Action.STOP}
    assert not enabled(window) & {Action.PAUSE, Action.START, Action.OPEN}
    qtbot.waitUntil(lambda: "campaign paused" in window.log.toPlainText(), timeout=5000)
    window.action_for[Action.RESUME].trigger()
    assert run_state(window) is RunState.RUNNING
    qtbot.waitUntil(lambda: run_state(window) is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)


def test_stop_keeps_the_rest_queued_and_start_goes_on(window: MainWindow, qtbot: QtBot) -> None:
    window.open_sandbox()
    window.start()
    qtbot.waitUntil(lambda: run_state(window) is RunState.RUNNING, timeout=RUN_TIMEOUT_MS)
    window.action_for[Action.STOP].trigger()
    qtbot.waitUntil(lambda: run_state(window) is not RunState.STOPPING, timeout=RUN_TIMEOUT_MS)
    session = window.session
    assert session is not None
    # Stopped long before the greylisted recipients' retry was due: they stay queued.
    assert run_state(window) is RunState.READY
    assert session.unfinished > 0
    assert by_email(window)["grace@grey.test"].status is not Status.DELIVERED
    assert Action.START in enabled(window)
    window.start()
    qtbot.waitUntil(lambda: run_state(window) is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)
    assert by_email(window)["grace@grey.test"].status is Status.DELIVERED


def test_closing_during_a_run_stops_it_and_closes_the_file(
    window: MainWindow, qtbot: QtBot
) -> None:
    window.open_sandbox()
    session = window.session
    assert session is not None
    window.start()
    qtbot.waitUntil(lambda: run_state(window) is RunState.RUNNING, timeout=RUN_TIMEOUT_MS)
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    answers = Answers()
    window.confirm = answers
    answers.answer = False
    window.close()  # asked, and the user said no: it goes on sending
    assert answers.asked[0].startswith("Close while sending: The campaign is sending.")
    assert run_state(window) is RunState.RUNNING and "Closing" not in window.error_banner.text
    answers.answer = True
    window.close()
    assert len(answers.asked) == 2
    assert window.isVisible()  # not yet: messages in flight finish first
    assert "Closing" in window.error_banner.text
    qtbot.waitUntil(lambda: bool(closed), timeout=RUN_TIMEOUT_MS)
    assert not window.isVisible()
    assert session.lab is not None and not session.lab.running
    with CampaignStore.open(session.path)[0] as store:  # the lock is released
        assert sum(store.counts().values()) == 24


def test_a_campaign_not_made_in_the_sandbox_is_only_viewed(
    window: MainWindow, tmp_path: Path
) -> None:
    path = tmp_path / "real.mxm"
    with CampaignStore.create(
        path, sender="news@example.test", message=b"Subject: x\n\nhi\n", settings={}
    ) as store:
        store.add_recipients([NewRecipient("someone@example.test", "example.test", {})])
    assert window.open_file(path)
    assert window.sandbox_banner.text.startswith("Real delivery")  # never the sandbox's
    assert "Not sendable now" in window.sandbox_banner.text
    assert Action.START not in enabled(window)
    assert "not made in the sandbox" in window.action_for[Action.START].toolTip()
    window.start()  # even when asked directly
    assert run_state(window) is RunState.READY
    assert "view only" in window.log.toPlainText()


def test_a_file_that_is_not_a_campaign_is_refused_with_a_reason(
    window: MainWindow, tmp_path: Path
) -> None:
    path = tmp_path / "notes.mxm"
    path.write_text("not a campaign")
    assert not window.open_file(path)
    assert window.session is None
    assert "could not be opened" in window.error_banner.text


def test_a_sender_problem_is_shown_as_the_senders_not_the_recipients(
    window: MainWindow,
) -> None:
    window.open_sandbox()
    problem = SenderProblemReported(
        "example.test",
        "blocklisted",
        "The sending IP address is on a blocklist.",
        "Ask the blocklist to delist it.",
        "554 5.7.1 Service unavailable; blocked",
    )
    window._on_batch([problem])
    banner = window.problem_banner
    assert not banner.isHidden()
    assert "because of the sender, not the recipients" in banner.text
    assert "Ask the blocklist to delist it." in banner.text
    assert "example.test" in window.log.toPlainText()
    assert all(row.status is not Status.BOUNCED for row in window.model.book.rows)


def test_every_action_has_a_shortcut(window: MainWindow) -> None:
    shortcuts = {kind: action.shortcut() for kind, action in window.action_for.items()}
    assert shortcuts[Action.START] == QKeySequence("F5")
    assert shortcuts[Action.STOP] == QKeySequence("Shift+F5")
    assert shortcuts[Action.OPEN] == QKeySequence(QKeySequence.StandardKey.Open)
    assert all(not sequence.isEmpty() for sequence in shortcuts.values())
    assert len(set(map(QKeySequence.toString, shortcuts.values()))) == len(shortcuts)


def test_opening_another_campaign_closes_the_previous_one(window: MainWindow, qtbot: QtBot) -> None:
    window.open_sandbox()
    first = window.session
    assert first is not None
    window.open_sandbox()
    assert window.session is not first
    qtbot.waitUntil(lambda: "closed" in repr(first.store), timeout=5000)
    with CampaignStore.open(first.path)[0]:  # its lock is released
        pass


class Answers:
    """The window's confirm function: records each question, gives a set answer."""

    def __init__(self) -> None:
        self.answer = True
        self.asked: list[str] = []

    def __call__(self, title: str, text: str) -> bool:
        self.asked.append(f"{title}: {text}")
        return self.answer


def crafted_campaign(folder: Path) -> tuple[Path, dict[str, int]]:
    """The sample campaign in which three recipients already failed before the window
    opens it: a bounce the server blamed on the sender, an expiry, and a possibly
    delivered message (what a run cut short leaves)."""
    path = create_sample_campaign(folder).path
    with CampaignStore.open(path)[0] as store:
        ids = {state.email: state.id for state in store.states()}
        for email, change in {
            "ada@plain.test": dict(
                status=Status.BOUNCED,
                code=554,
                enhanced="5.7.1",
                text="sending IP blocklisted",
                fault="sender",
                attempts=1,
            ),
            "alan@plain.test": dict(
                status=Status.EXPIRED, code=451, enhanced="4.4.1", text="try later", attempts=3
            ),
            "zoe@plain.test": dict(
                status=Status.AMBIGUOUS, reason="possibly delivered", attempts=1
            ),
        }.items():
            store.record(store.get(ids[email]).to_update(**change))
        store.flush()
    return path, ids


def select(window: MainWindow, *ids: int) -> None:
    panel = window.recipients
    panel.table.clearSelection()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for recipient_id in ids:
        position = window.model.book.position(recipient_id)
        assert position is not None
        index = panel.proxy.mapFromSource(window.model.index(position, Column.EMAIL))
        panel.table.selectionModel().select(index, flags)
    assert sorted(panel.selected_ids()) == sorted(ids)


def test_retry_what_may_work_now_requeues_the_fixable_rows_and_start_sends_them(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    path, ids = crafted_campaign(tmp_path / "data")
    answers = Answers()
    window.confirm = answers
    assert window.open_file(path)
    retry = window.action_for[Action.RETRY_FIXABLE]
    panel = window.recipients
    assert retry.isEnabled()
    assert "blamed on the sender" in retry.toolTip() and "not retried" in retry.toolTip()

    window.start()
    qtbot.waitUntil(lambda: run_state(window) is RunState.RUNNING, timeout=RUN_TIMEOUT_MS)
    # Nothing changes the rows while the engine holds them.
    assert not retry.isEnabled() and "stop it first" in retry.toolTip()
    select(window, ids["ada@plain.test"], ids["nobody@bounce.test"])
    assert not panel.retry_action.isEnabled() and not panel.remove_action.isEnabled()
    assert window.retry_fixable() is None and window.remove_selected() is None
    assert answers.asked == []
    qtbot.waitUntil(lambda: run_state(window) is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)

    session = window.session
    assert session is not None
    rows = by_email(window)
    assert rows["ada@plain.test"].status is Status.BOUNCED
    assert rows["nobody@bounce.test"].status is Status.BOUNCED  # 550 5.1.1: its own fault
    fixable = [ids["ada@plain.test"], ids["alan@plain.test"]]
    assert session.store.fixable_ids() == fixable
    assert retry.isEnabled() and Action.START not in enabled(window)

    answers.answer = False
    assert window.retry_fixable() is None
    assert "2 recipient(s)" in answers.asked[-1]
    assert by_email(window)["ada@plain.test"].status is Status.BOUNCED

    answers.answer = True
    retry.trigger()
    rows = by_email(window)
    assert rows["ada@plain.test"].status is Status.QUEUED
    assert rows["alan@plain.test"].status is Status.QUEUED
    assert rows["nobody@bounce.test"].status is Status.BOUNCED
    assert rows["zoe@plain.test"].status is Status.AMBIGUOUS  # never retried unasked
    assert session.store.fixable_ids() == []
    assert not retry.isEnabled() and Action.START in enabled(window)
    assert run_state(window) is RunState.READY
    strip = window.summary.tally
    assert (strip.total, strip.final) == (24, 22)
    assert "2 recipient(s) queued" in window.log.toPlainText()

    window.start()
    qtbot.waitUntil(lambda: run_state(window) is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)
    rows = by_email(window)
    assert rows["ada@plain.test"].status is Status.DELIVERED
    assert rows["alan@plain.test"].status is Status.DELIVERED
    assert window.summary.tally.final == 24
    assert window.summary.tally.by_key["delivered"] == 18 - 1  # zoe is still possibly delivered


def test_retry_and_remove_from_the_context_menu(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    path, ids = crafted_campaign(tmp_path / "data")
    answers = Answers()
    window.confirm = answers
    assert window.open_file(path)
    panel = window.recipients

    # A row that was never tried cannot be retried, but can be removed.
    select(window, ids["grace@grey.test"])
    assert not panel.retry_action.isEnabled() and panel.remove_action.isEnabled()

    # A possibly delivered row: the user is told a second copy may arrive.
    select(window, ids["zoe@plain.test"], ids["grace@grey.test"])
    # Right-clicking one of the selected rows keeps the whole selection for the menu.
    zoe = window.model.book.position(ids["zoe@plain.test"])
    assert zoe is not None
    index = panel.proxy.mapFromSource(window.model.index(zoe, Column.EMAIL))
    panel._context_menu(panel.table.visualRect(index).center())
    assert len(panel.selected_ids()) == 2
    assert panel.retry_action.isEnabled()
    answers.answer = False
    panel.retry_action.trigger()
    assert "second copy may arrive" in answers.asked[-1]
    assert by_email(window)["zoe@plain.test"].status is Status.AMBIGUOUS
    answers.answer = True
    panel.retry_action.trigger()
    assert by_email(window)["zoe@plain.test"].status is Status.QUEUED
    assert by_email(window)["grace@grey.test"].status is Status.QUEUED

    # A plain bounce is retried without a question.
    asked = len(answers.asked)
    select(window, ids["ada@plain.test"])
    assert window.retry_selected() == 1
    assert len(answers.asked) == asked
    assert by_email(window)["ada@plain.test"].status is Status.QUEUED

    # Remove: confirmed with the count; gone from the table and the file.
    select(window, ids["alan@plain.test"], ids["not-an-address"])
    answers.answer = False
    panel.remove_action.trigger()
    assert "Remove 2 recipient(s)" in answers.asked[-1]
    assert window.model.rowCount() == 24
    answers.answer = True
    panel.remove_action.trigger()
    assert window.model.rowCount() == 22
    assert {"alan@plain.test", "not-an-address"}.isdisjoint(by_email(window))
    assert window.summary.tally.total == 22
    session = window.session
    assert session is not None
    assert sum(session.store.counts().values()) == 22
    assert session.store.fixable_ids() == []  # alan's expiry went with him
    assert "2 recipient(s) removed" in window.log.toPlainText()
    assert not panel.remove_action.isEnabled()  # nothing selected any more
