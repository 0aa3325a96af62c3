"""The recipients table's data, without Qt: one row per recipient, kept current by the
engine's event batches.

Owns what each row shows and how a batch of events changes it, so that the Qt model
(``gui.recipients_model``) only translates "these rows changed" into ``dataChanged``.
Applying a batch costs O(events), never O(rows): the window must stay smooth with a
million recipients. The campaign file stays the truth: a row that became final is
re-read from it (one indexed query), so the table shows what the report will say.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from core.events import (
    AttemptFinished,
    CampaignLog,
    Counters,
    DestinationPaused,
    Event,
    PhaseChanged,
    RecipientFinal,
    RecipientWaiting,
    SenderProblemReported,
)
from core.store import CampaignStore, RecipientState, Status

#: The phase of a row whose recipient waits for its next attempt.
WAITING: Final = "waiting"
#: A wait that is not an attempt of the recipient's own (its whole destination waits).
NOT_AN_ATTEMPT: Final = frozenset({"destination paused"})
#: Events that are about the campaign, not one recipient (the log panel shows them).
Notice = CampaignLog | DestinationPaused | SenderProblemReported


class Group(enum.Enum):
    """What the status filter selects: where a recipient stands, in the user's words."""

    ACTIVE = "in progress"
    WAITING = "waiting"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    EXPIRED = "expired"
    AMBIGUOUS = "possibly delivered"
    SKIPPED = "invalid or suppressed"


_FINAL_GROUPS: Final = {
    Status.DELIVERED: Group.DELIVERED,
    Status.BOUNCED: Group.BOUNCED,
    Status.EXPIRED: Group.EXPIRED,
    Status.AMBIGUOUS: Group.AMBIGUOUS,
    Status.INVALID: Group.SKIPPED,
    Status.SUPPRESSED: Group.SKIPPED,
}


@dataclass(slots=True)
class RecipientRow:
    """One recipient as the table shows it."""

    id: int
    email: str
    name: str
    domain: str
    status: Status
    #: "queued", "resolving", "sending" (or the SMTP step it waits on: "mail", "rcpt",
    #: "data", "end-of-data") or "waiting" while not final; "" once final.
    phase: str
    wait_reason: str = ""
    next_attempt_at: float | None = None
    attempts: int = 0
    code: int | None = None
    enhanced: str = ""
    text: str = ""
    mx: str = ""
    #: An AttemptFinished was counted and its outcome (wait or final) has not come yet.
    attempt_open: bool = field(default=False, repr=False)

    @property
    def final(self) -> bool:
        return self.status.final

    @property
    def waiting(self) -> bool:
        return self.phase == WAITING and self.next_attempt_at is not None

    @property
    def group(self) -> Group:
        if self.final:
            return _FINAL_GROUPS[self.status]
        return Group.WAITING if self.waiting else Group.ACTIVE

    @classmethod
    def from_state(cls, state: RecipientState) -> RecipientRow:
        row = cls(state.id, state.email, display_name(state.fields), state.domain, state.status, "")
        row.take_state(state)
        return row

    def take_state(self, state: RecipientState) -> None:
        """Everything but identity from the campaign file's row."""
        self.status = state.status
        self.attempts = state.attempts
        self.code = state.code
        self.enhanced = state.enhanced
        self.text = state.text or state.reason
        self.mx = state.mx
        self.attempt_open = False
        if state.status.final:
            self.phase, self.wait_reason, self.next_attempt_at = "", "", None
        elif state.next_attempt_at is not None:
            self.phase = WAITING
            self.wait_reason = state.wait_reason or "deferred"
            self.next_attempt_at = state.next_attempt_at
        else:
            self.phase, self.wait_reason, self.next_attempt_at = "queued", "", None


def display_name(fields: dict[str, str]) -> str:
    """A person's name from the merge fields: ``name``, else first and last name."""
    name = fields.get("name", "").strip()
    if name:
        return name
    parts = (fields.get("first_name", ""), fields.get("last_name", ""))
    return " ".join(part.strip() for part in parts if part.strip())


def load_rows(store: CampaignStore) -> list[RecipientRow]:
    """Every recipient of a campaign file, in import order (id order), read a page at a
    time by :meth:`CampaignStore.states`."""
    return [RecipientRow.from_state(state) for state in store.states()]


@dataclass(slots=True)
class BatchResult:
    """What one batch changed: rows (indices, ascending), and campaign-level news."""

    changed: list[int] = field(default_factory=list)
    counters: Counters | None = None
    notices: list[Notice] = field(default_factory=list)


class RecipientBook:
    """The rows, found by recipient id, changed by event batches."""

    def __init__(
        self,
        rows: Sequence[RecipientRow] = (),
        *,
        reload: Callable[[int], RecipientState] | None = None,
    ) -> None:
        self.rows: list[RecipientRow] = list(rows)
        self._index = {row.id: position for position, row in enumerate(self.rows)}
        self._reload = reload
        #: Positions of rows with a countdown: the only ones the clock changes.
        self._waiting = {position for position, row in enumerate(self.rows) if row.waiting}

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[RecipientRow]:
        return iter(self.rows)

    def position(self, recipient_id: int) -> int | None:
        return self._index.get(recipient_id)

    def waiting_positions(self) -> list[int]:
        """Rows showing a countdown, ascending."""
        return sorted(self._waiting)

    def apply(self, batch: Iterable[Event], now: float) -> BatchResult:
        """Change the rows as ``batch`` says; ``now`` is the wall-clock time (time.time).

        The bus coalesces phase changes and delivers them before the other events of a
        batch. A recipient whose wait was over within the same batch therefore seems to
        change phase *before* it waited; a wait that is already over when the batch
        arrives gives way to the phase it reported.
        """
        result = BatchResult()
        changed: set[int] = set()
        phases: dict[int, str] = {}
        waited: list[int] = []
        for event in batch:
            if isinstance(event, Counters):
                result.counters = event
                continue
            if isinstance(event, CampaignLog | DestinationPaused | SenderProblemReported):
                result.notices.append(event)
                continue
            position = self._index.get(event.recipient_id)
            if position is None:
                continue
            row = self.rows[position]
            if isinstance(event, PhaseChanged):
                if row.final:
                    continue
                phases[position] = event.phase
                self._set_phase(position, row, event.phase)
            elif isinstance(event, AttemptFinished):
                row.attempts += 1
                row.attempt_open = True
                row.code, row.enhanced, row.text = event.code, event.enhanced, event.text
                row.mx = event.mx
            elif isinstance(event, RecipientWaiting):
                self._wait(position, row, event)
                waited.append(position)
            elif isinstance(event, RecipientFinal):
                self._finish(position, row, event)
            changed.add(position)
        for position in waited:
            row = self.rows[position]
            phase = phases.get(position)
            if phase is not None and row.waiting and (row.next_attempt_at or 0.0) <= now:
                self._set_phase(position, row, phase)
        result.changed = sorted(changed)
        return result

    # ---- one event ------------------------------------------------------------------

    def _set_phase(self, position: int, row: RecipientRow, phase: str) -> None:
        row.phase = phase
        row.wait_reason, row.next_attempt_at = "", None
        self._waiting.discard(position)

    def _wait(self, position: int, row: RecipientRow, event: RecipientWaiting) -> None:
        if not row.attempt_open and event.reason not in NOT_AN_ATTEMPT:
            row.attempts += 1  # decided without a reply of its own (DNS, every MX failed)
        row.attempt_open = False
        if row.status is Status.QUEUED and row.attempts:
            row.status = Status.DEFERRED
        row.phase = WAITING
        row.wait_reason, row.next_attempt_at = event.reason, event.next_attempt_at
        self._waiting.add(position)

    def _finish(self, position: int, row: RecipientRow, event: RecipientFinal) -> None:
        if not row.attempt_open and event.status not in (Status.INVALID, Status.SUPPRESSED):
            row.attempts += 1
        row.attempt_open = False
        row.status = event.status
        row.code, row.enhanced, row.text, row.mx = event.code, event.enhanced, event.text, event.mx
        row.phase, row.wait_reason, row.next_attempt_at = "", "", None
        self._waiting.discard(position)
        if self._reload is not None:
            # The file's word (attempts, reply, MX), as the report will give it. The event
            # is published only once the status is durable, so the file has it.
            state = self._reload(row.id)
            if state.status is event.status:
                row.take_state(state)


def contiguous(positions: Sequence[int]) -> list[tuple[int, int]]:
    """Ascending positions as inclusive ``(first, last)`` runs: one ``dataChanged`` each."""
    runs: list[tuple[int, int]] = []
    for position in positions:
        if runs and position == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], position)
        else:
            runs.append((position, position))
    return runs
