"""Command builders: exact bytes, and no way for data to end a command early."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.smtp import LocalProtocolError, UnsafeArgumentError, commands


def test_fixed_commands() -> None:
    assert commands.DATA == b"DATA\r\n"
    assert commands.RSET == b"RSET\r\n"
    assert commands.QUIT == b"QUIT\r\n"
    assert commands.STARTTLS == b"STARTTLS\r\n"
    assert commands.END_OF_DATA == b".\r\n"


def test_ehlo_and_helo() -> None:
    assert commands.ehlo("client.test") == b"EHLO client.test\r\n"
    assert commands.helo("client.test") == b"HELO client.test\r\n"
    assert commands.ehlo("[192.0.2.1]") == b"EHLO [192.0.2.1]\r\n"


def test_mail_from() -> None:
    assert commands.mail_from("a@b.test") == b"MAIL FROM:<a@b.test>\r\n"
    assert commands.mail_from("a@b.test", ("SIZE=1000", "BODY=8BITMIME")) == (
        b"MAIL FROM:<a@b.test> SIZE=1000 BODY=8BITMIME\r\n"
    )


def test_null_sender() -> None:
    assert commands.mail_from("") == b"MAIL FROM:<>\r\n"
    assert commands.mail_from("", ("SIZE=10",)) == b"MAIL FROM:<> SIZE=10\r\n"


def test_rcpt_to() -> None:
    assert commands.rcpt_to("x@dest.test") == b"RCPT TO:<x@dest.test>\r\n"
    assert commands.rcpt_to("x@dest.test", ["NOTIFY=NEVER"]) == (
        b"RCPT TO:<x@dest.test> NOTIFY=NEVER\r\n"
    )


def test_internationalised_addresses_are_sent_as_utf8() -> None:
    assert commands.rcpt_to("jürgen@bücher.test") == "RCPT TO:<jürgen@bücher.test>\r\n".encode()
    assert commands.mail_from("δοκιμή@παράδειγμα.test", ("SMTPUTF8",)) == (
        "MAIL FROM:<δοκιμή@παράδειγμα.test> SMTPUTF8\r\n".encode()
    )


_INJECT = ["\r", "\n", "\0", "\r\n", "\r\nRSET\r\n"]


@pytest.mark.parametrize("bad", _INJECT)
@pytest.mark.parametrize(
    ("build", "what"),
    [
        (commands.ehlo, "HELO name"),
        (commands.helo, "HELO name"),
        (commands.mail_from, "sender address"),
        (commands.rcpt_to, "recipient address"),
        (lambda v: commands.mail_from("a@b.test", ("SIZE=1" + v,)), "parameter"),
        (lambda v: commands.rcpt_to("a@b.test", ("NOTIFY=" + v,)), "parameter"),
    ],
)
def test_cr_lf_nul_in_any_argument_is_refused(
    build: Callable[[str], bytes], what: str, bad: str
) -> None:
    value = f"x{bad}y@dest.test"
    with pytest.raises(UnsafeArgumentError) as caught:
        build(value)
    assert caught.value.what == what
    assert bad in caught.value.value
    assert what in str(caught.value)


@pytest.mark.parametrize("bad", ["<", ">", "a>b", "<evil@x.test"])
def test_angle_brackets_in_addresses_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeArgumentError):
        commands.mail_from(f"u{bad}@dest.test")
    with pytest.raises(UnsafeArgumentError):
        commands.rcpt_to(f"u{bad}@dest.test")


@pytest.mark.parametrize("name", ["", "client test", "client\ttest", "client\u2003test"])
def test_helo_name_must_be_one_word(name: str) -> None:
    with pytest.raises(UnsafeArgumentError):
        commands.ehlo(name)
    with pytest.raises(UnsafeArgumentError):
        commands.helo(name)


def test_empty_recipient_and_spaced_parameter_are_refused() -> None:
    with pytest.raises(UnsafeArgumentError):
        commands.rcpt_to("")
    with pytest.raises(UnsafeArgumentError):
        commands.mail_from("a@b.test", ("SIZE=1 RCPT",))


def test_unsafe_argument_error_is_local_and_a_value_error() -> None:
    with pytest.raises(UnsafeArgumentError) as caught:
        commands.rcpt_to("a\r\n@b.test")
    assert isinstance(caught.value, LocalProtocolError)
    assert isinstance(caught.value, ValueError)


_ANY = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


@given(_ANY, st.sampled_from("\r\n\0"), _ANY)
def test_no_address_can_smuggle_a_line_end(head: str, bad: str, tail: str) -> None:
    for build in (commands.mail_from, commands.rcpt_to):
        with pytest.raises(UnsafeArgumentError):
            build(head + bad + tail)


@given(_ANY)
def test_every_accepted_address_gives_exactly_one_line(address: str) -> None:
    for build, prefix in ((commands.mail_from, b"MAIL FROM:<"), (commands.rcpt_to, b"RCPT TO:<")):
        try:
            line = build(address)
        except UnsafeArgumentError:
            assert not address or any(c in address for c in "\r\n\0<>")
            continue
        assert line == prefix + address.encode() + b">\r\n"
        assert line.count(b"\n") == 1 and line.count(b"\r") == 1 and b"\0" not in line
