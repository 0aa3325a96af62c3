"""When to try again: greylisting, other transient failures, and the message lifetime.

One place for these numbers, with where they come from. Pure arithmetic on an injected
random source: the scheduler asks, this module never schedules anything itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays in seconds.

    Greylisters (postgrey: 300 s by default) refuse a retry that comes too early and
    restart their clock, so the first retry without a hint is just over five minutes,
    spread by jitter so that a burst of greylisted recipients does not return as a burst.
    A server's own hint is honoured within ``hint_min``..``hint_max``. Later greylistings
    of the same recipient, and every other transient failure, back off exponentially
    (Postfix: minimal_backoff_time 300 s, maximal_backoff_time 4000 s).
    """

    greylist_first: float = 330.0
    greylist_jitter: float = 90.0
    hint_min: float = 60.0
    hint_max: float = 3600.0
    backoff_first: float = 300.0
    backoff_max: float = 3600.0
    #: Each backoff delay is stretched by up to this fraction, at random.
    jitter: float = 0.1
    #: From the first attempt; then the recipient is ``expired`` (Postfix:
    #: maximal_queue_lifetime, 5 days).
    lifetime: float = 5 * 86400.0

    def after_greylisting(
        self, times_greylisted: int, hint: float | None, rng: random.Random
    ) -> float:
        """Delay after the ``times_greylisted``-th greylisting (1 for the first)."""
        if times_greylisted <= 1:
            if hint is not None:
                return min(max(hint, self.hint_min), self.hint_max)
            return self.greylist_first + rng.uniform(0.0, self.greylist_jitter)
        return self.after_failure(times_greylisted - 1, rng)

    def after_failure(self, failures: int, rng: random.Random) -> float:
        """Delay after the ``failures``-th transient failure (1 for the first)."""
        doublings = min(max(failures - 1, 0), 32)  # past that it is backoff_max anyway
        base: float = min(self.backoff_first * 2.0**doublings, self.backoff_max)
        return base * (1.0 + rng.uniform(0.0, self.jitter))

    def expired(self, first_attempt_at: float, retry_at: float) -> bool:
        """Would a retry at ``retry_at`` come after the message's lifetime?"""
        return retry_at > first_attempt_at + self.lifetime
