"""When to try again: greylisting delays, exponential backoff with jitter, the lifetime."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.retry import RetryPolicy

POLICY = RetryPolicy()
SEEDS = st.integers(0, 2**32 - 1)


class Fixed(random.Random):
    """A random source whose ``uniform`` always returns one end of the range."""

    def __init__(self, at_top: bool) -> None:
        super().__init__(0)
        self.at_top = at_top
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return b if self.at_top else a


# ---- the defaults and where they come from -------------------------------------------


def test_defaults() -> None:
    assert POLICY.greylist_first == 330.0
    assert POLICY.greylist_jitter == 90.0
    assert (POLICY.hint_min, POLICY.hint_max) == (60.0, 3600.0)
    assert (POLICY.backoff_first, POLICY.backoff_max) == (300.0, 3600.0)
    assert POLICY.jitter == 0.1
    assert POLICY.lifetime == 5 * 86400.0


def test_policy_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        POLICY.lifetime = 1.0  # type: ignore[misc]


# ---- greylisting ---------------------------------------------------------------------


def test_first_greylisting_without_hint_waits_just_over_five_minutes() -> None:
    assert POLICY.after_greylisting(1, None, Fixed(at_top=False)) == 330.0
    assert POLICY.after_greylisting(1, None, Fixed(at_top=True)) == 420.0


@given(seed=SEEDS)
def test_first_greylisting_without_hint_is_between_330_and_420(seed: int) -> None:
    delay = POLICY.after_greylisting(1, None, random.Random(seed))
    assert 330.0 <= delay <= 420.0
    # Postgrey's default is 300 s: never come back before it.
    assert delay > 300.0


def test_greylisting_jitter_spreads_a_burst() -> None:
    rng = random.Random(1234)
    delays = [POLICY.after_greylisting(1, None, rng) for _ in range(500)]
    assert all(330.0 <= d <= 420.0 for d in delays)
    assert len(set(delays)) == len(delays)
    # Spread over the whole window, not bunched at one end.
    assert min(delays) < 340.0
    assert max(delays) > 410.0


def test_same_seed_same_delays() -> None:
    a = [POLICY.after_greylisting(1, None, random.Random(7)) for _ in range(3)]
    b = [POLICY.after_greylisting(1, None, random.Random(7)) for _ in range(3)]
    assert a == b


@pytest.mark.parametrize(
    ("hint", "delay"),
    [
        (300.0, 300.0),
        (60.0, 60.0),
        (3600.0, 3600.0),
        (59.0, 60.0),
        (0.0, 60.0),
        (-5.0, 60.0),
        (3601.0, 3600.0),
        (86400.0, 3600.0),
        (math.inf, 3600.0),
    ],
)
def test_hint_is_honoured_within_bounds(hint: float, delay: float) -> None:
    rng = Fixed(at_top=True)
    assert POLICY.after_greylisting(1, hint, rng) == delay
    assert rng.calls == []  # a hint is used as is: no jitter


@given(hint=st.floats(allow_nan=False), seed=SEEDS)
def test_any_hint_lands_in_hint_min_to_hint_max(hint: float, seed: int) -> None:
    delay = POLICY.after_greylisting(1, hint, random.Random(seed))
    assert POLICY.hint_min <= delay <= POLICY.hint_max
    if POLICY.hint_min <= hint <= POLICY.hint_max:
        assert delay == hint


@pytest.mark.parametrize("times", [0, -1])
def test_zeroth_greylisting_counts_as_the_first(times: int) -> None:
    assert POLICY.after_greylisting(times, None, Fixed(at_top=False)) == 330.0
    assert POLICY.after_greylisting(times, 120.0, Fixed(at_top=False)) == 120.0


@pytest.mark.parametrize(
    ("times", "base"), [(2, 300.0), (3, 600.0), (4, 1200.0), (5, 2400.0), (6, 3600.0)]
)
def test_later_greylistings_back_off(times: int, base: float) -> None:
    assert POLICY.after_greylisting(times, None, Fixed(at_top=False)) == base
    assert POLICY.after_greylisting(times, None, Fixed(at_top=True)) == pytest.approx(
        base * 1.1
    )


def test_later_greylistings_ignore_the_hint() -> None:
    """A server that greylists the same recipient again is not trusted with its hint."""
    assert POLICY.after_greylisting(3, 60.0, Fixed(at_top=False)) == 600.0


# ---- other transient failures --------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "base"),
    [(1, 300.0), (2, 600.0), (3, 1200.0), (4, 2400.0), (5, 3600.0), (6, 3600.0),
     (50, 3600.0), (0, 300.0), (-3, 300.0)],
)
def test_backoff_doubles_up_to_the_maximum(failures: int, base: float) -> None:
    assert POLICY.after_failure(failures, Fixed(at_top=False)) == base
    assert POLICY.after_failure(failures, Fixed(at_top=True)) == pytest.approx(base * 1.1)


def test_jitter_is_drawn_from_zero_to_the_fraction() -> None:
    rng = Fixed(at_top=True)
    POLICY.after_failure(2, rng)
    assert rng.calls == [(0.0, 0.1)]


@given(failures=st.integers(1, 1000), seed=SEEDS)
def test_backoff_stays_within_its_jitter_band(failures: int, seed: int) -> None:
    base = min(300.0 * 2.0 ** (failures - 1), 3600.0)
    delay = POLICY.after_failure(failures, random.Random(seed))
    assert base <= delay <= base * 1.1


@given(failures=st.integers(1, 60), seed=SEEDS)
def test_backoff_is_monotonic_for_the_same_draw(failures: int, seed: int) -> None:
    now = POLICY.after_failure(failures, random.Random(seed))
    later = POLICY.after_failure(failures + 1, random.Random(seed))
    assert later >= now


@given(
    first=st.floats(1.0, 10_000.0),
    maximum=st.floats(1.0, 100_000.0),
    jitter=st.floats(0.0, 1.0),
    failures=st.integers(1, 200),
    seed=SEEDS,
)
def test_custom_policies_keep_their_bounds(
    first: float, maximum: float, jitter: float, failures: int, seed: int
) -> None:
    policy = RetryPolicy(backoff_first=first, backoff_max=maximum, jitter=jitter)
    delay = policy.after_failure(failures, random.Random(seed))
    base = min(first * 2.0 ** (failures - 1), maximum)
    assert base <= delay <= base * (1.0 + jitter) * (1 + 1e-12)


def test_zero_jitter_is_exact() -> None:
    policy = RetryPolicy(jitter=0.0, greylist_jitter=0.0)
    rng = random.Random(3)
    assert policy.after_failure(3, rng) == 1200.0
    assert policy.after_greylisting(1, None, rng) == 330.0


@pytest.mark.parametrize("failures", [1025, 10**6])
def test_bug_many_failures_still_give_the_maximum(failures: int) -> None:
    delay = POLICY.after_failure(failures, Fixed(at_top=False))
    assert delay == 3600.0


# ---- lifetime ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_at", "expired"),
    [
        (1000.0, False),
        (1000.0 + 5 * 86400.0 - 1, False),
        (1000.0 + 5 * 86400.0, False),  # exactly at the end: still allowed
        (1000.0 + 5 * 86400.0 + 0.001, True),
        (1000.0 + 30 * 86400.0, True),
    ],
)
def test_expired_after_the_lifetime(retry_at: float, expired: bool) -> None:
    assert POLICY.expired(1000.0, retry_at) is expired


def test_custom_lifetime() -> None:
    policy = RetryPolicy(lifetime=3600.0)
    assert not policy.expired(0.0, 3600.0)
    assert policy.expired(0.0, 3600.5)


@given(
    first=st.floats(0, 2e9),
    delay=st.floats(0, 1e7),
)
def test_expired_is_retry_after_first_plus_lifetime(first: float, delay: float) -> None:
    assert POLICY.expired(first, first + delay) == (first + delay > first + POLICY.lifetime)


def test_a_backoff_schedule_expires_within_the_lifetime() -> None:
    """Following the schedule from a first attempt, the recipient expires after about
    five days, not sooner and not much later (one backoff_max at most)."""
    rng = random.Random(99)
    first = now = 1_700_000_000.0
    failures = 0
    while True:
        failures += 1
        delay = POLICY.after_failure(failures, rng)
        if POLICY.expired(first, now + delay):
            break
        now += delay
    assert first + POLICY.lifetime - POLICY.backoff_max * 1.1 <= now <= first + POLICY.lifetime
    assert failures < 200
