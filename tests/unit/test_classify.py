"""What a reply means: positive, transient, permanent, greylisted, and the retry hint."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.smtp import EnhancedStatus, Reply, ReplyKind, Verdict, classify, is_greylisting
from core.smtp import retry_hint as hint
from core.smtp.classify import MAX_RETRY_HINT


def r(code: int, text: str, enhanced: str | None = None) -> Reply:
    status = EnhancedStatus(*map(int, enhanced.split("."))) if enhanced else None
    return Reply(code, (text,), status)


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (r(250, "Ok"), ReplyKind.POSITIVE),
        (r(251, "will forward"), ReplyKind.POSITIVE),
        (r(354, "go ahead"), ReplyKind.POSITIVE),
        (r(421, "closing"), ReplyKind.TRANSIENT),
        (r(450, "mailbox busy"), ReplyKind.TRANSIENT),
        (r(452, "insufficient storage", "4.3.1"), ReplyKind.TRANSIENT),
        (r(550, "no such user", "5.1.1"), ReplyKind.PERMANENT),
        (r(554, "please try later, greylisted"), ReplyKind.PERMANENT),
        (r(599, "whatever"), ReplyKind.PERMANENT),
    ],
)
def test_kinds(reply: Reply, kind: ReplyKind) -> None:
    assert classify(reply).kind is kind


@pytest.mark.parametrize(
    "reply",
    [
        # Postgrey
        r(450, "<x@dest.test>: Recipient address rejected: Greylisted, see "
               "http://postgrey.schweikert.ch/help/dest.test.html", "4.2.0"),
        # Exim / rspamd / "graylist" spellings and separators
        r(451, "Temporary local problem - please try later; graylisted"),
        r(451, "Grey-listing in action, come back later"),
        r(450, "you are grey_listed"),
        r(421, "greylisted, try again in 5 minutes"),
        # No greylist word: the code, the enhanced code and try-later words together.
        r(451, "Please try again later", "4.7.1"),
        r(450, "Temporary failure, retry later", "4.2.0"),
        r(451, "come back later", "4.7.0"),
        r(450, "Please retry", "4.7.1"),
    ],
)
def test_greylisting_is_recognised(reply: Reply) -> None:
    assert is_greylisting(reply)
    assert classify(reply).kind is ReplyKind.GREYLISTED


@pytest.mark.parametrize(
    "reply",
    [
        r(451, "Please try again later"),  # no enhanced code
        r(452, "Please try again later", "4.7.1"),  # 452 is not a greylisting code
        r(451, "Please try again later", "4.3.0"),  # 4.3.0: a mail system problem
        r(450, "mailbox busy", "4.2.0"),  # no try-later words
        r(550, "greylisted", "5.7.1"),  # permanent is permanent
        r(250, "greylist plugin says hi"),
    ],
)
def test_not_greylisting(reply: Reply) -> None:
    assert not is_greylisting(reply)
    assert classify(reply).kind is not ReplyKind.GREYLISTED


def test_greylisting_impossible_for_connection_level_replies() -> None:
    reply = r(451, "greylisted, try again in 60 seconds")
    assert classify(reply, greylist_possible=False) == Verdict(ReplyKind.TRANSIENT)


def test_greylisted_verdict_carries_the_hint() -> None:
    verdict = classify(r(450, "Greylisted, please try again in 300 seconds", "4.2.0"))
    assert verdict == Verdict(ReplyKind.GREYLISTED, 300.0)
    assert classify(r(450, "greylisted")).retry_after is None


def test_only_greylisting_carries_a_hint() -> None:
    assert classify(r(452, "try again in 300 seconds")).retry_after is None
    assert classify(r(550, "retry in 5 minutes")).retry_after is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("try again in 300 seconds", 300),
        ("Try again in 1 second", 1),
        ("retry in 5 minutes", 300),
        ("please retry after 90s", 90),
        ("wait 1 min", 60),
        ("wait 2 mins before retrying", 120),
        ("come back after 60 secs", 60),
        ("greylisted for 5m, retry in 5m", 300),
        ("try again in 2 hours", 7200),
        ("RETRY IN 3 HRS", 10800),
        ("again in 1h", 3600),
        ("try again in 10 min", 600),
    ],
)
def test_retry_hints(text: str, seconds: int) -> None:
    assert hint(text) == float(seconds)


@pytest.mark.parametrize(
    "text",
    ["try again later", "retry in a while", "in 5 months", "452 4.3.1 storage", "",
     "after 1234567 seconds"],
)
def test_no_retry_hint(text: str) -> None:
    assert hint(text) is None


def test_hints_are_capped_at_a_day() -> None:
    assert MAX_RETRY_HINT == 24 * 3600
    assert hint("try again in 999999 hours") == MAX_RETRY_HINT
    assert hint("retry in 1441 minutes") == MAX_RETRY_HINT
    assert hint("retry in 1440 minutes") == MAX_RETRY_HINT
    assert hint("retry in 1439 minutes") == 1439 * 60


@given(st.integers(0, 999_999), st.sampled_from([("seconds", 1), ("minutes", 60), ("h", 3600)]))
def test_hint_is_the_number_times_its_unit_capped(number: int, unit: tuple[str, int]) -> None:
    name, factor = unit
    assert hint(f"Greylisted: try again in {number} {name}") == min(number * factor, 86400)


@given(st.integers(200, 599), st.text(max_size=60))
def test_classification_follows_the_first_digit(code: int, text: str) -> None:
    kind = classify(Reply(code, (text,))).kind
    if code < 400:
        assert kind is ReplyKind.POSITIVE
    elif code >= 500:
        assert kind is ReplyKind.PERMANENT
    else:
        assert kind in (ReplyKind.TRANSIENT, ReplyKind.GREYLISTED)
