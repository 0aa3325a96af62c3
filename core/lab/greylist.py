"""A lab server's greylisting memory: which (sender, recipient) pairs came back, and when.

Owns the postgrey-style decision "first time: come back later; later: welcome", using a
clock handed in (so a test can move time by hand). It never sleeps and never replies:
the conversation turns its answer into SMTP.
"""

from __future__ import annotations

from collections.abc import Callable

from core.lab.behaviour import Greylist

#: Pairs remembered at most, waiting and passed each; beyond it some are forgotten.
MAX_PAIRS = 100_000


class GreylistMemory:
    """Per-server state for :class:`~core.lab.behaviour.Greylist`."""

    __slots__ = ("_clock", "_first_seen", "_passed", "policy")

    def __init__(self, policy: Greylist, clock: Callable[[], float]) -> None:
        self.policy = policy
        self._clock = clock
        self._first_seen: dict[tuple[str, str], float] = {}
        self._passed: set[tuple[str, str]] = set()

    def admits(self, sender: str, recipient: str) -> bool:
        """Record an attempt of this pair; true if it may pass now."""
        pair = (sender.lower(), recipient.lower())
        if pair in self._passed:
            return True
        now = self._clock()
        first = self._first_seen.get(pair)
        if first is None:
            if len(self._first_seen) >= MAX_PAIRS:
                del self._first_seen[next(iter(self._first_seen))]
            self._first_seen[pair] = now
            return False
        if now - first < self.policy.min_delay:
            return False
        del self._first_seen[pair]
        if len(self._passed) >= MAX_PAIRS:
            self._passed.pop()
        self._passed.add(pair)
        return True

    def reply(self) -> tuple[int, str, str]:
        """(code, enhanced status, text) of the greylisting reply."""
        if self.policy.hint:
            return 451, "4.7.1", f"Greylisted, try again in {self.policy.retry_after} seconds"
        return 450, "4.2.0", "Greylisted"
