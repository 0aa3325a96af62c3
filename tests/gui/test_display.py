"""Texts the window shows (gui.display): countdowns, results, ETA, the transcript."""

from __future__ import annotations

import time

from core.events import CampaignLog, DestinationPaused, SenderProblemReported
from core.store import AttemptLog, RecipientState, Status
from gui.display import (
    countdown,
    eta_text,
    next_try_text,
    notice_text,
    phase_help,
    phase_text,
    rate_text,
    result_text,
    sender_problem_text,
    transcript_text,
)
from gui.rows import RecipientRow, display_name

NOW = 1_800_000_000.0


def row(**changes: object) -> RecipientRow:
    base = RecipientRow(
        1, "a@grey.test", "A", "grey.test", Status.DEFERRED, "waiting", "greylisted", NOW + 65
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def test_countdown() -> None:
    assert countdown(0) == "due"
    assert countdown(-5) == "due"
    assert countdown(0.2) == "00:01"  # never shows 00:00 while still waiting
    assert countdown(65) == "01:05"
    assert countdown(3599) == "59:59"
    assert countdown(3600 + 61) == "1:01:01"


def test_next_try_only_for_waiting_rows() -> None:
    assert next_try_text(row(), NOW) == "01:05 · greylisted"
    assert next_try_text(row(phase="sending", next_attempt_at=None), NOW) == ""
    assert next_try_text(row(status=Status.DELIVERED, phase=""), NOW) == ""


def test_phase_words_and_help() -> None:
    assert phase_text(row()) == "waiting"
    assert "greylisted" in phase_help(row())
    assert phase_text(row(status=Status.AMBIGUOUS, phase="")) == "possibly delivered"
    assert "not sent again" in phase_help(row(status=Status.AMBIGUOUS, phase=""))
    assert phase_text(row(phase="resolving", next_attempt_at=None)) == "looking up MX"
    # The SMTP step a conversation waits on (the engine's smtp_phases).
    waiting_on_rcpt = row(phase="rcpt", next_attempt_at=None)
    assert phase_text(waiting_on_rcpt) == "sending: RCPT TO"
    assert "RCPT TO" in phase_help(waiting_on_rcpt)
    awaiting_reply = row(phase="end-of-data", next_attempt_at=None)
    assert phase_text(awaiting_reply) == "sent: awaiting reply"
    assert "can take minutes" in phase_help(awaiting_reply)


def test_result_text() -> None:
    bounced = row(code=550, enhanced="5.1.1", text="User unknown")
    assert result_text(bounced) == "550 5.1.1 User unknown"
    assert result_text(row(code=None, enhanced="", text="DNS: null MX")) == "DNS: null MX"
    assert result_text(row(code=None, text="")) == ""


def test_rate_and_eta() -> None:
    assert rate_text(0) == "0 msg/s"
    assert rate_text(2.345) == "2.3 msg/s"
    assert rate_text(120.4) == "120 msg/s"
    assert eta_text(0, 0, 5.0) == "done"
    assert eta_text(50, 0, 10.0) == "00:05"
    assert eta_text(50, 3, 10.0) == "00:05 + retries"
    assert eta_text(50, 0, 0.0) == "—"
    assert eta_text(0, 3, 0.0) == "after retries"


def test_names_from_merge_fields() -> None:
    assert display_name({"name": " Ada "}) == "Ada"
    assert display_name({"first_name": "Ada", "last_name": "Lovelace"}) == "Ada Lovelace"
    assert display_name({"first_name": "Ada"}) == "Ada"
    assert display_name({"city": "London"}) == ""


def test_campaign_notices_and_the_sender_problem_never_blame_recipients() -> None:
    assert notice_text(CampaignLog("campaign paused")) == "campaign paused"
    paused = DestinationPaused("mx.example.test", "example.test", "421 too busy", NOW)
    assert notice_text(paused).startswith("paused mx.example.test (example.test) until ")
    problem = SenderProblemReported(
        "example.test",
        "blocklisted",
        "Your IP is on a blocklist.",
        "Ask for delisting.",
        "554 5.7.1 blocked",
    )
    text = sender_problem_text(problem)
    assert "because of the sender, not the recipients" in text
    assert "Your IP is on a blocklist." in text and "Fix: Ask for delisting." in text
    assert "554 5.7.1 blocked" in text and "stay queued" in text
    assert notice_text(problem) == text


def test_transcript_text() -> None:
    state = RecipientState(
        4,
        "g@grey.test",
        "grey.test",
        {},
        Status.DEFERRED,
        "greylisted",
        NOW + 12,
        1,
        NOW,
        NOW,
        451,
        "4.7.1",
        "Greylisted",
        "mx",
        "",
        "",
        "",
        "",
        None,
    )
    attempt = AttemptLog(
        NOW - 1,
        NOW,
        "mx.grey.test [127.0.0.3]",
        "127.0.0.3",
        "greylisted",
        451,
        "4.7.1",
        "Greylisted",
        "rcpt",
        "S: 220 hi\nC: EHLO x",
    )
    text = transcript_text(state, [attempt], NOW)
    lines = text.splitlines()
    assert lines[0].startswith("g@grey.test — waiting (greylisted): next try at ")
    assert lines[0].endswith("in 00:12")
    assert "Attempt 1: " + time.strftime("%Y-%m-%d", time.localtime(NOW - 1)) in text
    assert "via mx.grey.test [127.0.0.3]" in text
    assert "outcome: greylisted, at rcpt: 451 4.7.1 Greylisted" in text
    assert "    S: 220 hi" in lines and "    C: EHLO x" in lines
    delivered = AttemptLog(NOW, NOW, "mx", "127.0.0.2", "accepted", 250, "2.0.0", "Ok", "", "")
    assert "transcripts are kept for failed attempts" in transcript_text(state, [delivered], NOW)
    assert "No attempt recorded yet." in transcript_text(state, [], NOW)
