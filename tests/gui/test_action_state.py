"""Which actions the window offers in each state (gui.state), without Qt."""

from __future__ import annotations

import pytest

from gui.state import Action, ActionContext, RunState, enabled_actions, start_blocked

A = Action


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (ActionContext(), {A.NEW_SANDBOX, A.IMPORT_CSV, A.OPEN}),
        (
            ActionContext(RunState.READY, sendable=True, unfinished=5),
            {A.NEW_SANDBOX, A.IMPORT_CSV, A.OPEN, A.START, A.EXPORT_REPORT},
        ),
        (ActionContext(RunState.STARTING, True, 5), {A.STOP, A.EXPORT_REPORT}),
        (
            ActionContext(RunState.RUNNING, True, 5, bounced=1),
            {A.PAUSE, A.STOP, A.EXPORT_REPORT, A.EXPORT_BOUNCES},
        ),
        (ActionContext(RunState.PAUSED, True, 5), {A.RESUME, A.STOP, A.EXPORT_REPORT}),
        (ActionContext(RunState.STOPPING, True, 5), {A.EXPORT_REPORT}),
        (
            ActionContext(RunState.FINISHED, True, 0, bounced=2),
            {A.NEW_SANDBOX, A.IMPORT_CSV, A.OPEN, A.EXPORT_REPORT, A.EXPORT_BOUNCES},
        ),
        # A campaign not made in the sandbox is for viewing: it is never started here.
        (
            ActionContext(RunState.READY, sendable=False, unfinished=5),
            {A.NEW_SANDBOX, A.IMPORT_CSV, A.OPEN, A.EXPORT_REPORT},
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
    assert "not made in the sandbox" in not_sandbox and "mxmailer send" in not_sandbox
    assert "nothing left" in (start_blocked(ActionContext(RunState.READY, True, 0)) or "")


def test_pause_resume_and_stop_are_never_offered_together_with_start() -> None:
    for run in RunState:
        for sendable in (False, True):
            enabled = enabled_actions(ActionContext(run, sendable, 4, 1))
            assert not (A.START in enabled and enabled & {A.PAUSE, A.RESUME, A.STOP})
            assert not (A.PAUSE in enabled and A.RESUME in enabled)
