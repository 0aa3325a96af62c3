"""What a server offers, read from its EHLO reply."""

from __future__ import annotations

import pytest

from core.smtp import Extensions, Reply, parse_ehlo
from core.smtp.extensions import NO_EXTENSIONS


def ehlo(*lines: str) -> Extensions:
    return parse_ehlo(Reply(250, ("mx.test greets you", *lines)))


def test_keywords_are_read_case_insensitively() -> None:
    ext = ehlo("pipelining", "8BITMIME", "SmtpUtf8", "STARTTLS", "ENHANCEDSTATUSCODES",
               "CHUNKING", "DSN")
    assert ext.keywords == frozenset(
        {"PIPELINING", "8BITMIME", "SMTPUTF8", "STARTTLS", "ENHANCEDSTATUSCODES", "CHUNKING",
         "DSN"}
    )
    assert ext.pipelining and ext.eightbitmime and ext.smtputf8 and ext.starttls
    assert ext.enhanced_status_codes and ext.chunking
    assert ext.esmtp


def test_the_first_line_is_the_server_name_not_a_keyword() -> None:
    ext = parse_ehlo(Reply(250, ("PIPELINING",)))
    assert not ext.pipelining
    assert ext.keywords == frozenset()


def test_nothing_advertised() -> None:
    ext = ehlo()
    assert not (ext.pipelining or ext.eightbitmime or ext.smtputf8 or ext.starttls)
    assert not (ext.enhanced_status_codes or ext.chunking or ext.size)
    assert ext.size_limit is None
    assert ext.auth_mechanisms == frozenset()


@pytest.mark.parametrize(
    ("line", "limit"),
    [("SIZE 10240000", 10240000), ("SIZE", 0), ("SIZE 0", 0), ("size 52428800", 52428800),
     ("SIZE unlimited", 0), ("SIZE -5", 0)],
)
def test_size(line: str, limit: int) -> None:
    ext = ehlo(line)
    assert ext.size
    assert ext.size_limit == limit


def test_size_with_a_non_ascii_digit_is_no_crash() -> None:
    # "²" is a digit to str.isdigit() but not to int(): a hostile EHLO line must not
    # raise ValueError out of the session.
    assert ehlo("SIZE ²").size_limit == 0
    assert ehlo("SIZE ١٢٣").size_limit == 0


def test_auth_mechanisms() -> None:
    ext = ehlo("AUTH plain LOGIN cram-md5")
    assert ext.auth_mechanisms == frozenset({"PLAIN", "LOGIN", "CRAM-MD5"})
    assert "AUTH" in ext.keywords


def test_blank_lines_are_skipped() -> None:
    assert ehlo("", "   ", "PIPELINING").keywords == frozenset({"PIPELINING"})


def test_helo_only_server_offers_nothing() -> None:
    assert not NO_EXTENSIONS.esmtp
    assert NO_EXTENSIONS.keywords == frozenset()
    assert NO_EXTENSIONS.size_limit is None
