"""Which actions the window offers in each state (gui.state), without Qt."""

from __future__ import annotations

import pytest

from core.store import Status
from gui.state import (
    BUSY,
    Action,
    ActionContext,
    RowAction,
    RunState,
    enabled_actions,
    retry_fixable_blocked,
    retry_needs_confirming,
    row_actions,
    start_blocked,
)

A = Action
#: Offered whenever a campaign is open: writing reports never changes the file.
EXPORTS = (A.EXPORT_REPORT, A.EXPORT_DOMAINS)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (ActionContext(), {A.NEW_SANDBOX, A.IMPORT_CSV, A.OPEN}),
        (
            ActionContext(RunState.READY, sendable=True, unfinished=5),
            {A.NEW_SANDBOX, A.IMPORT_CSV, A.OPEN, A.SAVE_AS, A.START, *EXPORTS},
        ),
        (ActionContext(RunState.STARTING, True, 5), {A.STOP, *EXPORTS}),
        (
            ActionContext(RunState.RUNNING, True, 5, bounced=1),
            {A.PAUSE, A.STOP, *EXPORTS, A.EXPORT_BOUNCES},
        ),
        (ActionContext(RunState.PAUSED, True, 5), {A.RESUME, A.STOP, *EXPORTS}),
        (ActionContext(RunState.STOPPING, True, 5), {*EXPORTS}),
        (
            ActionContext(RunState.FINISHED, True, 0, bounced=2),
            {A.NEW_SANDBOX, A.IMPORT_CSV, A.OPEN, A.SAVE_AS, *EXPORTS, A.EXPORT_BOUNCES},
        ),
        # A campaign not made in the sandbox is for viewing: it is never started here.
        (
            ActionContext(RunState.READY, sendable=False, unfinished=5),
            {A.NEW_SANDBOX, A.IMPORT_CSV, A.OPEN, A.SAVE_AS, *EXPORTS},
        ),
    ],
)
def test_enabled_actions(context: ActionContext, expected: set[Action]) -> None:
    assert enabled_actions(context) == expected


def test_start_says_why_it_is_disabled() -> None:
    assert start_blocked(ActionContext(RunState.READY, True, 3)) is None
    assert "sandbox" in (start_blocked(ActionContext()) or "")
    assert "already sending" in (start_blocked(ActionContext(RunState.RUNNING, True, 3)) or "")
    not_sandbox = start_blocked(ActionContext(RunState.READY, False, 3)) or ""
    assert "not made in the sandbox" in not_sandbox and "Settings" in not_sandbox
    assert "nothing left" in (start_blocked(ActionContext(RunState.READY, True, 0)) or "")


def test_pause_resume_and_stop_are_never_offered_together_with_start() -> None:
    for run in RunState:
        for sendable in (False, True):
            enabled = enabled_actions(ActionContext(run, sendable, 4, 1))
            assert not (A.START in enabled and enabled & {A.PAUSE, A.RESUME, A.STOP})
            assert not (A.PAUSE in enabled and A.RESUME in enabled)


def test_retry_what_may_work_now_needs_an_idle_writable_campaign_with_fixable_rows() -> None:
    ready = ActionContext(RunState.FINISHED, True, 0, writable=True, fixable=2)
    assert A.RETRY_FIXABLE in enabled_actions(ready)
    assert retry_fixable_blocked(ready) is None
    for run in BUSY:
        busy = ActionContext(run, True, 3, writable=True, fixable=2)
        assert A.RETRY_FIXABLE not in enabled_actions(busy)
        assert "stop it first" in (retry_fixable_blocked(busy) or "")
    nothing = ActionContext(RunState.FINISHED, True, 0, writable=True, fixable=0)
    assert A.RETRY_FIXABLE not in enabled_actions(nothing)
    assert "Nothing to retry" in (retry_fixable_blocked(nothing) or "")
    read_only = ActionContext(RunState.FINISHED, False, 0, writable=False, fixable=2)
    assert "read-only" in (retry_fixable_blocked(read_only) or "")
    assert A.RETRY_FIXABLE not in enabled_actions(ActionContext(fixable=2))


S = Status


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], set()),
        ([S.DELIVERED], {RowAction.REMOVE}),
        ([S.INVALID, S.QUEUED], {RowAction.REMOVE}),
        ([S.DELIVERED, S.BOUNCED], {RowAction.RETRY, RowAction.REMOVE}),
        ([S.DEFERRED], {RowAction.RETRY, RowAction.REMOVE}),
        ([S.EXPIRED], {RowAction.RETRY, RowAction.REMOVE}),
        ([S.AMBIGUOUS], {RowAction.RETRY, RowAction.REMOVE}),
    ],
)
def test_row_actions_when_idle(statuses: list[Status], expected: set[RowAction]) -> None:
    idle = ActionContext(RunState.READY, True, 3, writable=True)
    assert row_actions(idle, statuses) == expected


def test_row_actions_are_never_offered_while_sending_or_read_only() -> None:
    statuses = [S.BOUNCED, S.DELIVERED]
    for run in (*BUSY, RunState.NO_CAMPAIGN):
        assert row_actions(ActionContext(run, True, 3, writable=True), statuses) == frozenset()
    read_only = ActionContext(RunState.FINISHED, False, 0, writable=False)
    assert row_actions(read_only, statuses) == frozenset()


def test_only_a_possibly_delivered_row_asks_before_retrying() -> None:
    assert retry_needs_confirming([S.BOUNCED, S.AMBIGUOUS])
    assert not retry_needs_confirming([S.BOUNCED, S.EXPIRED, S.DEFERRED])
