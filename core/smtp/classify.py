"""The one place that says what a reply means: positive, transient, permanent, greylisted.

Greylisting (a 4xx that only asks us to come back later) gets its own kind because the
scheduler treats it differently from other transient failures: a short first retry, taken
from the server's hint when it gives one, then the usual backoff.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from core.smtp.reply import EnhancedStatus, Reply

# Words servers use for greylisting: postgrey, Postfix's postscreen, Exim, rspamd, MS.
_GREYLIST_WORDS = re.compile(r"gr[ae]y[\s_-]?list", re.IGNORECASE)
_TRY_LATER_WORDS = re.compile(
    r"try\s+(?:again\s+)?later|retry\s+(?:again\s+)?later|come\s+back\s+later"
    r"|please\s+(?:re)?try|temporar",
    re.IGNORECASE,
)
_GREYLIST_CODES = frozenset({450, 451})
_GREYLIST_ENHANCED = frozenset(
    {EnhancedStatus(4, 2, 0), EnhancedStatus(4, 7, 1), EnhancedStatus(4, 7, 0)}
)
# "try again in 300 seconds", "retry in 5 minutes", "wait 1 min", "after 60s".
_HINT = re.compile(
    r"(?:again|retry|wait|after|in)\s+(?:in\s+|after\s+)?(\d{1,6})\s*"
    r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
#: A hint longer than this is not believed: it is capped, not obeyed.
MAX_RETRY_HINT = 24 * 3600.0


class ReplyKind(enum.Enum):
    POSITIVE = "positive"
    TRANSIENT = "transient"
    GREYLISTED = "greylisted"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a reply means for the recipients it concerns."""

    kind: ReplyKind
    retry_after: float | None = None


POSITIVE = Verdict(ReplyKind.POSITIVE)
TRANSIENT = Verdict(ReplyKind.TRANSIENT)
PERMANENT = Verdict(ReplyKind.PERMANENT)


def is_greylisting(reply: Reply) -> bool:
    """True for a 4xx whose words, or whose code together with "try later", say greylisting."""
    if not reply.is_transient:
        return False
    text = reply.text
    if _GREYLIST_WORDS.search(text):
        return True
    return (
        reply.code in _GREYLIST_CODES
        and reply.enhanced in _GREYLIST_ENHANCED
        and _TRY_LATER_WORDS.search(text) is not None
    )


def retry_hint(text: str) -> float | None:
    """Seconds the server asked us to wait ("try again in 5 minutes"), capped; else None."""
    match = _HINT.search(text)
    if match is None:
        return None
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)[0].lower()]
    return float(min(seconds, MAX_RETRY_HINT))


def classify(reply: Reply, *, greylist_possible: bool = True) -> Verdict:
    """Classify a reply. ``greylist_possible`` is false for replies to the greeting, EHLO
    and other connection-level commands, where a 4xx means "try another server or later"
    whatever its words say."""
    if reply.code < 400:
        return POSITIVE
    if reply.code >= 500:
        return PERMANENT
    if greylist_possible and is_greylisting(reply):
        return Verdict(ReplyKind.GREYLISTED, retry_hint(reply.text))
    return TRANSIENT
