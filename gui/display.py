"""Words and numbers as the window shows them; no Qt, so every text is unit-tested.

Owns the labels of statuses and phases, countdowns, rates, ETAs and the transcript
panel's text. A status is always shown in words (and an icon) beside its colour, so a
colour-blind user, a screen reader or a screenshot in grey loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from core.events import CampaignLog, DestinationPaused, SenderProblemReported
from core.store import AttemptLog, RecipientState, Status
from gui.rows import WAITING, Notice, RecipientRow

STATUS_LABEL: Final = {
    Status.QUEUED: "queued",
    Status.DEFERRED: "deferred",
    Status.DELIVERED: "delivered",
    Status.BOUNCED: "bounced",
    Status.EXPIRED: "expired",
    Status.INVALID: "invalid",
    Status.SUPPRESSED: "suppressed",
    Status.AMBIGUOUS: "possibly delivered",
}
PHASE_LABEL: Final = {
    "queued": "queued",
    "resolving": "looking up MX",
    "connecting": "connecting",
    "sending": "sending",
    "mail": "sending: MAIL FROM",
    "rcpt": "sending: RCPT TO",
    "data": "sending: DATA",
    "end-of-data": "sent: awaiting reply",
    WAITING: "waiting",
}
#: Sort order of the Phase column: work in flight first, then waits, then outcomes.
PHASE_ORDER: Final = {
    "end-of-data": 0,
    "data": 0,
    "rcpt": 0,
    "mail": 0,
    "sending": 0,
    "connecting": 1,
    "resolving": 2,
    "queued": 3,
    WAITING: 4,
    Status.AMBIGUOUS.value: 5,
    Status.BOUNCED.value: 6,
    Status.EXPIRED.value: 7,
    Status.INVALID.value: 8,
    Status.SUPPRESSED.value: 9,
    Status.DELIVERED.value: 10,
}
_PHASE_HELP: Final = {
    "queued": "waiting for a connection to its domain's mail server",
    "resolving": "looking up its domain's mail servers (MX records)",
    "connecting": "connecting to its domain's mail server",
    "sending": "in an SMTP conversation with its domain's mail server",
    "mail": "the server is answering the sender (MAIL FROM)",
    "rcpt": "the server is answering whether it takes this recipient (RCPT TO)",
    "data": "the server is answering the request to send the message (DATA)",
    "end-of-data": "the whole message went out; the server has not yet said whether it "
    "takes it (a reply can take minutes)",
}
_WAIT_HELP: Final = {
    "greylisted": "the server greylisted it (asked us to come back later): normal for a "
    "first message; it will be accepted on the next try",
    "deferred": "a temporary failure; it will be tried again",
    "destination paused": "its domain's servers are paused after repeated failures",
    "sender problem": "the servers refused the sender, not this recipient; sending to them "
    "is paused until the problem is fixed",
}
_STATUS_HELP: Final = {
    Status.DELIVERED: "accepted by the recipient's mail server",
    Status.BOUNCED: "refused for good; it will not be tried again",
    Status.EXPIRED: "still failing when its lifetime ran out; the last reply is kept",
    Status.INVALID: "not a valid address; never sent",
    Status.SUPPRESSED: "on the suppression list; never sent",
    Status.AMBIGUOUS: "the end of the message went out but no reply came: it may have "
    "arrived, so it is not sent again",
}


def phase_key(row: RecipientRow) -> str:
    """The status (when final) or the phase: what the Phase column shows."""
    return row.status.value if row.final else row.phase


def phase_text(row: RecipientRow) -> str:
    if row.final:
        return STATUS_LABEL[row.status]
    return PHASE_LABEL.get(row.phase, row.phase)


def phase_help(row: RecipientRow) -> str:
    """A sentence for the tooltip: what the phase or status means."""
    if row.final:
        return _STATUS_HELP.get(row.status, "")
    if row.phase == WAITING:
        return _WAIT_HELP.get(row.wait_reason, row.wait_reason)
    return _PHASE_HELP.get(row.phase, "")


def countdown(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour); "due" once the time has come."""
    if seconds <= 0:
        return "due"
    whole = int(seconds + 0.999)  # 0.2 s left still shows 00:01, never 00:00
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def next_try_text(row: RecipientRow, now: float) -> str:
    """``00:12 · greylisted`` for a waiting recipient, "" for anyone else."""
    if not row.waiting or row.next_attempt_at is None:
        return ""
    return f"{countdown(row.next_attempt_at - now)} · {row.wait_reason}"


def result_text(row: RecipientRow) -> str:
    """``550 5.1.1 <x@y>: User unknown``: the code, enhanced code and text of the last
    reply, or why no server replied (DNS, invalid address)."""
    code = "" if row.code is None else str(row.code)
    return " ".join(part for part in (code, row.enhanced, row.text) if part)


def clock(timestamp: float) -> str:
    """Local wall-clock time, ``14:03:27``."""
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def rate_text(per_second: float) -> str:
    if per_second <= 0:
        return "0 msg/s"
    if per_second < 10:
        return f"{per_second:.1f} msg/s"
    return f"{per_second:.0f} msg/s"


def eta_text(active: int, waiting: int, per_second: float) -> str:
    """When the campaign may be done: the recipients in progress at the current rate,
    then those waiting to retry (whose time is the servers' to decide)."""
    if active <= 0 and waiting <= 0:
        return "done"
    if active > 0:
        now = countdown(active / per_second) if per_second > 0 else "—"
        return now if waiting <= 0 else f"{now} + retries"
    return "after retries"


def notice_text(notice: Notice) -> str:
    """One line for the campaign log."""
    if isinstance(notice, CampaignLog):
        return notice.text
    if isinstance(notice, DestinationPaused):
        return (
            f"paused {notice.destination} ({notice.provider}) until {clock(notice.until)}: "
            f"{notice.reason}"
        )
    return sender_problem_text(notice)


def sender_problem_text(problem: SenderProblemReported) -> str:
    """What the banner says: the servers blamed the sender; why, and what fixes it."""
    reply = f" Their reply: {problem.reply}" if problem.reply else ""
    return (
        f"Servers at {problem.provider} refused mail because of the sender, not the "
        f"recipients ({problem.kind}): {problem.explanation} Fix: {problem.fix}{reply} "
        "Sending there is paused; its recipients stay queued."
    )


def transcript_text(state: RecipientState, attempts: Sequence[AttemptLog], now: float) -> str:
    """The transcript panel: where the recipient stands, then each attempt with its
    times, server, reply and the end of its SMTP conversation."""
    if state.status.final:
        lines = [f"{state.email} — {STATUS_LABEL[state.status]}"]
        if state.reason and not state.text:
            lines.append(state.reason)
    elif state.next_attempt_at is not None:
        lines = [
            f"{state.email} — waiting ({state.wait_reason or 'deferred'}): next try at "
            f"{clock(state.next_attempt_at)}, in {countdown(state.next_attempt_at - now)}"
        ]
    else:
        lines = [f"{state.email} — {STATUS_LABEL[state.status]}"]
    if not attempts:
        lines += ["", "No attempt recorded yet."]
    for number, attempt in enumerate(attempts, 1):
        took = max(0.0, attempt.finished_at - attempt.started_at)
        code = "" if attempt.code is None else str(attempt.code)
        reply = " ".join(part for part in (code, attempt.enhanced, attempt.text) if part)
        stage = f", at {attempt.stage}" if attempt.stage else ""
        lines += [
            "",
            f"Attempt {number}: {_day_clock(attempt.started_at)} → "
            f"{clock(attempt.finished_at)} ({took:.1f} s) via {attempt.mx or '—'}",
            f"  outcome: {attempt.outcome}{stage}: {reply or '—'}",
        ]
        if attempt.transcript:
            lines.append("  conversation (the end of it; the message body is never kept):")
            lines += [f"    {line}" for line in attempt.transcript.splitlines()]
        else:
            lines.append("  (no conversation kept: transcripts are kept for failed attempts)")
    return "\n".join(lines)


def _day_clock(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
