"""The per-domain summary of a campaign: what to expect from each domain next time.

One row per recipient domain: how many were delivered, bounced, otherwise not delivered
or possibly delivered, how many were greylisted at least once, the median time from a recipient's
first attempt to its delivery (greylisting and backoff included), and the bounces' most
common replies. Read from the campaign file only (``mxmailer export-domains``, the
window's File menu); nothing is sent.
"""

from __future__ import annotations

import csv
import os
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from core.store import CampaignStore, RecipientState, Status, StoreError, spreadsheet_safe

HEADER: Final = (
    "domain",
    "recipients",
    "delivered",
    "bounced",
    "not_delivered",
    "possibly_delivered",
    "greylisted",
    "median_delivery_seconds",
    "top_bounce_reasons",
)
#: Bounce replies listed per domain, most common first.
TOP_REASONS: Final = 3
#: Statuses that are neither delivered nor bounced but were meant to be sent; a possibly
#: delivered row has its own column: sending it again may give a second copy.
_NOT_DELIVERED: Final = frozenset({Status.QUEUED, Status.DEFERRED, Status.EXPIRED})


@dataclass(slots=True)
class DomainSummary:
    domain: str
    recipients: int = 0
    delivered: int = 0
    bounced: int = 0
    not_delivered: int = 0
    possibly_delivered: int = 0
    greylisted: int = 0
    delays: list[float] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def median_delivery_seconds(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None

    def top_reasons(self) -> list[tuple[str, int]]:
        return self.reasons.most_common(TOP_REASONS)

    def row(self) -> tuple[str, ...]:
        median = self.median_delivery_seconds
        return (
            self.domain,
            str(self.recipients),
            str(self.delivered),
            str(self.bounced),
            str(self.not_delivered),
            str(self.possibly_delivered),
            str(self.greylisted),
            "" if median is None else f"{median:.1f}",
            "; ".join(f"{reason} (x{count})" for reason, count in self.top_reasons()),
        )


def summarize(
    states: Iterable[RecipientState], greylisted: set[int]
) -> list[DomainSummary]:
    """Per-domain figures, the domains with the most recipients first (then by name).
    Invalid and suppressed rows are not counted: they were never to be sent."""
    domains: dict[str, DomainSummary] = {}
    for state in states:
        if state.status in (Status.INVALID, Status.SUPPRESSED):
            continue
        summary = domains.get(state.domain)
        if summary is None:
            summary = domains[state.domain] = DomainSummary(state.domain)
        summary.recipients += 1
        if state.id in greylisted:
            summary.greylisted += 1
        if state.status is Status.DELIVERED:
            summary.delivered += 1
            if state.first_attempt_at is not None and state.last_attempt_at is not None:
                summary.delays.append(max(0.0, state.last_attempt_at - state.first_attempt_at))
        elif state.status is Status.BOUNCED:
            summary.bounced += 1
            summary.reasons[_reply(state)] += 1
        elif state.status in _NOT_DELIVERED:
            summary.not_delivered += 1
        elif state.status is Status.AMBIGUOUS:
            summary.possibly_delivered += 1
    return sorted(domains.values(), key=lambda s: (-s.recipients, s.domain))


def campaign_summary(store: CampaignStore) -> list[DomainSummary]:
    return summarize(store.states(), store.ids_with_outcome("greylisted"))


def export_domain_summary(store: CampaignStore, path: Path) -> int:
    """Write the summary as CSV to ``path`` (through ``path.part``, never half-written);
    returns the number of domains."""
    summaries = campaign_summary(store)
    partial = path.with_name(path.name + ".part")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for summary in summaries:
                writer.writerow([spreadsheet_safe(cell) for cell in summary.row()])
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise StoreError(f"cannot write the domain summary {path}: {error.strerror}") from error
    return len(summaries)


def _reply(state: RecipientState) -> str:
    """The bounce's reply, with the recipient's own address taken out so that the same
    reply to different recipients counts as one reason."""
    code = "" if state.code is None else str(state.code)
    text = re.sub(re.escape(state.email), "<recipient>", state.text, flags=re.IGNORECASE)
    words = " ".join(part for part in (code, state.enhanced, text) if part)
    return words or state.reason or "no reply recorded"
