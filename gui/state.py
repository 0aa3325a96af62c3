"""Which actions make sense now: one pure function of the campaign's state.

The window asks :func:`enabled_actions` after every change instead of enabling and
disabling buttons here and there, so the rules live in one table-like place and are
unit-tested without Qt. :func:`start_blocked` says in words why Start is disabled.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from core.store import RETRYABLE, Status


class RunState(enum.Enum):
    NO_CAMPAIGN = "no campaign"
    READY = "ready"  # open, not sending; recipients left to send (or a viewed file)
    STARTING = "starting"  # the lab and the engine are starting
    RUNNING = "running"
    PAUSED = "paused"  # no new connections; open ones finish what they hold
    STOPPING = "stopping"  # messages in flight finish, then the run ends
    FINISHED = "finished"  # every recipient has a final status


class Action(enum.Enum):
    NEW_SANDBOX = "new sandbox campaign"
    IMPORT_CSV = "new campaign from a CSV"
    OPEN = "open"
    SAVE_AS = "save as"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    EXPORT_REPORT = "export report"
    EXPORT_BOUNCES = "export bounces"
    EXPORT_DOMAINS = "export per-domain summary"
    EDIT_MESSAGE = "edit message"
    RETRY_FIXABLE = "retry what may work now"


class RowAction(enum.Enum):
    """What the table's context menu may do to the selected recipients."""

    RETRY = "retry"
    REMOVE = "remove from campaign"


#: States in which the engine runs (its campaign cannot be swapped for another).
BUSY = frozenset({RunState.STARTING, RunState.RUNNING, RunState.PAUSED, RunState.STOPPING})


@dataclass(frozen=True, slots=True)
class ActionContext:
    run: RunState = RunState.NO_CAMPAIGN
    #: The window may send this campaign: it is open for writing, and it was made for
    #: the lab (sandbox), or it is a real campaign the settings allow to be sent.
    sendable: bool = False
    #: Recipients without a final status.
    unfinished: int = 0
    bounced: int = 0
    #: No recipient was tried yet (statuses are still the import's): the message may
    #: change. Once sending started it may not: retries must send the same bytes.
    fresh: bool = False
    #: The campaign file may be written (not opened read-only).
    writable: bool = False
    #: Recipients that failed for a reason that may have been fixed since
    #: (:meth:`core.store.CampaignStore.fixable_ids`), as of the last time no run held
    #: the file.
    fixable: int = 0
    #: A real campaign (not made in the sandbox): sent to the recipients' servers.
    real: bool = False
    #: Why it may not be sent, when it may not (``sendable`` is False).
    send_blocked: str = ""
    #: A real campaign made in the window whose message is not written yet.
    draft: bool = False


def enabled_actions(context: ActionContext) -> frozenset[Action]:
    run = context.run
    enabled: set[Action] = set()
    if run not in BUSY:
        enabled |= {Action.NEW_SANDBOX, Action.IMPORT_CSV, Action.OPEN}
    if start_blocked(context) is None:
        enabled.add(Action.START)
    if run is RunState.RUNNING:
        enabled.add(Action.PAUSE)
    if run is RunState.PAUSED:
        enabled.add(Action.RESUME)
    if run in (RunState.STARTING, RunState.RUNNING, RunState.PAUSED):
        enabled.add(Action.STOP)
    if edit_blocked(context) is None:
        enabled.add(Action.EDIT_MESSAGE)
    if retry_fixable_blocked(context) is None:
        enabled.add(Action.RETRY_FIXABLE)
    if run is not RunState.NO_CAMPAIGN:
        enabled |= {Action.EXPORT_REPORT, Action.EXPORT_DOMAINS}
        if run not in BUSY:
            enabled.add(Action.SAVE_AS)
        if context.bounced > 0:
            enabled.add(Action.EXPORT_BOUNCES)
    return frozenset(enabled)


def start_blocked(context: ActionContext) -> str | None:
    """Why Start is disabled, in the user's words; None when it is enabled."""
    run = context.run
    if run is RunState.NO_CAMPAIGN:
        return "Open a campaign, or try the sandbox demo, first."
    if run in BUSY:
        return "The campaign is already sending."
    if not context.sendable:
        return context.send_blocked or (
            "This campaign file was not made in the sandbox, and Settings do not "
            "choose real delivery."
        )
    if context.unfinished == 0 or run is RunState.FINISHED:
        return "Every recipient has a final status: there is nothing left to send."
    if context.draft:
        return "Write the campaign's message first (Campaign ▸ Edit message)."
    return None


def edit_blocked(context: ActionContext) -> str | None:
    """Why "Edit message" is disabled, in the user's words; None when it is enabled."""
    run = context.run
    if run is RunState.NO_CAMPAIGN:
        return "Open a campaign first."
    if not context.sendable:
        return context.send_blocked or "This campaign cannot be sent from the window."
    if run in BUSY or not context.fresh:
        return (
            "This campaign has started sending, so it keeps its message: retries must "
            "send the same bytes (greylisting and duplicate checks key on them)."
        )
    return None


def _change_blocked(context: ActionContext) -> str | None:
    """Why the campaign's rows may not be changed now (retried, removed); None: they may."""
    if context.run is RunState.NO_CAMPAIGN:
        return "Open a campaign first."
    if context.run in BUSY:
        return "The campaign is sending: stop it first."
    if not context.writable:
        return "This campaign file is open read-only."
    return None


def retry_fixable_blocked(context: ActionContext) -> str | None:
    """Why "Retry what may work now" is disabled, in the user's words; None when enabled."""
    blocked = _change_blocked(context)
    if blocked is not None:
        return blocked
    if context.fixable == 0:
        return (
            "Nothing to retry: no recipient is deferred or expired, and no bounce was "
            "blamed on the sender."
        )
    return None


def row_actions(context: ActionContext, statuses: Collection[Status]) -> frozenset[RowAction]:
    """What may be done to selected recipients with these ``statuses`` (one per row)."""
    if not statuses or _change_blocked(context) is not None:
        return frozenset()
    enabled = {RowAction.REMOVE}
    if any(status in RETRYABLE for status in statuses):
        enabled.add(RowAction.RETRY)
    return frozenset(enabled)


def retry_needs_confirming(statuses: Collection[Status]) -> bool:
    """Retrying a possibly delivered recipient may send them a second copy: ask first."""
    return Status.AMBIGUOUS in statuses
