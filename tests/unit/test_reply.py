"""The reply parser: whole replies from any chunking, bounded against hostile servers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.smtp import EnhancedStatus, RemoteProtocolError, Reply, ReplyParser
from core.smtp.limits import MAX_REPLY_BYTES, MAX_REPLY_LINE, MAX_REPLY_LINES


def parse_all(*chunks: bytes) -> list[Reply]:
    parser = ReplyParser()
    replies = []
    for chunk in chunks:
        parser.receive_data(chunk)
        while (reply := parser.next_reply()) is not None:
            replies.append(reply)
    return replies


def failure(*chunks: bytes) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_all(*chunks)
    return caught.value


# ---- the value object ------------------------------------------------------------------


def test_single_line_reply() -> None:
    assert parse_all(b"220 mx.test ESMTP\r\n") == [Reply(220, ("mx.test ESMTP",))]


def test_multiline_reply_is_one_reply() -> None:
    replies = parse_all(b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
    assert replies == [Reply(250, ("mx.test", "PIPELINING", "SIZE 1000"))]


def test_bare_code_and_code_with_space_have_one_empty_line() -> None:
    assert parse_all(b"250\r\n354 \r\n") == [Reply(250, ("",)), Reply(354, ("",))]


def test_bare_lf_is_tolerated() -> None:
    assert parse_all(b"250-a\n250 b\n221 bye\r\n") == [
        Reply(250, ("a", "b")),
        Reply(221, ("bye",)),
    ]


def test_non_utf8_text_is_replaced_not_fatal() -> None:
    (reply,) = parse_all(b"550 caf\xe9\r\n")
    assert reply.lines == ("caf\ufffd",)


@pytest.mark.parametrize(
    ("code", "positive", "transient", "permanent"),
    [(250, True, False, False), (354, True, False, False), (451, False, True, False),
     (554, False, False, True)],
)
def test_reply_categories(code: int, positive: bool, transient: bool, permanent: bool) -> None:
    reply = Reply(code, ("x",))
    assert (reply.is_positive, reply.is_transient, reply.is_permanent) == (
        positive, transient, permanent,
    )


def test_text_joins_non_empty_lines() -> None:
    assert Reply(550, ("first", "", "second")).text == "first second"


def test_str_shows_code_enhanced_and_text() -> None:
    assert str(Reply(550, ("no such user",), EnhancedStatus(5, 1, 1))) == "550 5.1.1 no such user"
    assert str(Reply(250, ("",))) == "250"


def test_enhanced_status_str() -> None:
    assert str(EnhancedStatus(4, 7, 1)) == "4.7.1"


# ---- enhanced status codes (RFC 3463 / RFC 2034) ---------------------------------------


def test_enhanced_code_is_parsed_and_stripped_from_every_line_that_carries_it() -> None:
    (reply,) = parse_all(b"550-5.1.1 The email account\r\n550-5.1.1 does not exist\r\n"
                         b"550 please check\r\n")
    assert reply.enhanced == EnhancedStatus(5, 1, 1)
    assert reply.lines == ("The email account", "does not exist", "please check")
    assert reply.text == "The email account does not exist please check"


def test_enhanced_code_alone_on_the_line() -> None:
    (reply,) = parse_all(b"250 2.0.0\r\n")
    assert reply.enhanced == EnhancedStatus(2, 0, 0)
    assert reply.lines == ("",)


def test_enhanced_code_with_three_digit_parts() -> None:
    (reply,) = parse_all(b"451 4.123.456 later\r\n")
    assert reply.enhanced == EnhancedStatus(4, 123, 456)
    assert reply.lines == ("later",)


@pytest.mark.parametrize(
    "line",
    [
        b"250 5.1.1 class does not match the code\r\n",  # RFC 2034 §3
        b"250 2.1.1.1 four parts\r\n",
        b"250 2.1234.1 subject too long\r\n",
        b"250 2.1.1a not a code\r\n",
        b"250 1.1.1 bad class\r\n",
        b"250 12 monkeys\r\n",
    ],
)
def test_text_that_only_looks_like_a_code_is_left_alone(line: bytes) -> None:
    (reply,) = parse_all(line)
    assert reply.enhanced is None
    assert reply.lines == (line[4:-2].decode(),)


def test_wire_lines_restore_what_the_server_sent() -> None:
    wire = b"550-5.1.1 The email account\r\n550 5.1.1 does not exist\r\n"
    (reply,) = parse_all(wire)
    assert "".join(line + "\r\n" for line in reply.wire_lines()).encode() == wire
    (plain,) = parse_all(b"250-mx.test\r\n250 PIPELINING\r\n")
    assert plain.wire_lines() == ["250-mx.test", "250 PIPELINING"]


# ---- chunking ---------------------------------------------------------------------------

STREAM = (
    b"220 mx.test ESMTP\r\n"
    b"250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    b"250 2.1.0 Ok\r\n"
    b"550 5.1.1 <x@dest.test>: unknown\r\n"
    b"354 go ahead\n"
    b"221 2.0.0 Bye\r\n"
)


def test_many_replies_in_one_chunk() -> None:
    replies = parse_all(STREAM)
    assert [r.code for r in replies] == [220, 250, 250, 550, 354, 221]
    assert replies[3].enhanced == EnhancedStatus(5, 1, 1)


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_a_split_at_any_byte_gives_the_same_replies(cut: int) -> None:
    assert parse_all(STREAM[:cut], STREAM[cut:]) == parse_all(STREAM)


def test_one_byte_at_a_time() -> None:
    assert parse_all(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == parse_all(STREAM)


def test_next_reply_returns_none_until_the_line_ends() -> None:
    parser = ReplyParser()
    parser.receive_data(b"250-first\r\n250 sec")
    assert parser.next_reply() is None
    assert parser.buffered == len(b"250-first\r\n250 sec")
    parser.receive_data(b"ond\r\n")
    assert parser.next_reply() == Reply(250, ("first", "second"))
    assert parser.next_reply() is None
    assert parser.buffered == 0


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40
).filter(lambda s: not s[:1].isdigit())


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    code = draw(st.integers(200, 599))
    lines = draw(st.lists(_TEXT, min_size=1, max_size=5))
    return Reply(code, tuple(lines))


def encode(reply: Reply, newline: bytes) -> bytes:
    last = len(reply.lines) - 1
    return b"".join(
        f"{reply.code}{' ' if i == last else '-'}{line}".encode() + newline
        for i, line in enumerate(reply.lines)
    )


@given(
    st.lists(st.tuples(replies(), st.sampled_from([b"\r\n", b"\n"])), min_size=1, max_size=8),
    st.lists(st.integers(0, 10_000), max_size=20),
)
def test_any_chunking_yields_exactly_the_replies_sent(
    sent: list[tuple[Reply, bytes]], cuts: list[int]
) -> None:
    data = b"".join(encode(reply, newline) for reply, newline in sent)
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert parse_all(*chunks) == [reply for reply, _ in sent]


# ---- hostile input: errors keep the offending bytes ------------------------------------


def test_line_over_the_limit_is_an_error() -> None:
    line = b"250 " + b"x" * MAX_REPLY_LINE + b"\r\n"
    error = failure(line)
    assert "longer than" in error.reason
    assert error.offending.startswith(b"250 xxx")


def test_line_of_exactly_the_limit_is_accepted_however_it_is_split() -> None:
    line = b"250 " + b"x" * (MAX_REPLY_LINE - 4) + b"\r\n"
    (whole,) = parse_all(line)
    assert whole.lines == ("x" * (MAX_REPLY_LINE - 4),)
    for cut in (len(line) - 2, len(line) - 1, len(line) - 3):
        assert parse_all(line[:cut], line[cut:]) == [whole]


def test_unterminated_line_over_the_limit_fails_before_its_end_arrives() -> None:
    parser = ReplyParser()
    parser.receive_data(b"250 " + b"x" * MAX_REPLY_LINE)
    with pytest.raises(RemoteProtocolError) as caught:
        parser.next_reply()
    assert caught.value.offending.startswith(b"250 xxxx")
    assert len(caught.value.offending) <= MAX_REPLY_LINE + 2
    assert parser.buffered == 0


def test_reply_over_the_byte_limit_is_an_error() -> None:
    line = b"250-" + b"y" * 4000 + b"\r\n"
    count = MAX_REPLY_BYTES // len(line) + 1
    assert count < MAX_REPLY_LINES
    error = failure(line * count + b"250 end\r\n")
    assert "larger than" in error.reason
    assert error.offending == line[:-2]


def test_reply_over_the_line_limit_is_an_error() -> None:
    error = failure(b"250-x\r\n" * MAX_REPLY_LINES + b"250 last\r\n")
    assert "lines" in error.reason
    assert error.offending == b"250 last"


def test_reply_of_exactly_the_line_limit_is_accepted() -> None:
    (reply,) = parse_all(b"250-x\r\n" * (MAX_REPLY_LINES - 1) + b"250 last\r\n")
    assert len(reply.lines) == MAX_REPLY_LINES


@pytest.mark.parametrize(
    "line",
    [b"", b"2", b"25", b"abc hello", b"650 six", b"150 one", b"2x0 a", b"25x a", b"250x",
     b"250_under", b" 250 lead", b"\x00\x00\x00"],
)
def test_malformed_code_is_an_error_keeping_the_line(line: bytes) -> None:
    error = failure(b"220 fine\r\n" + line + b"\r\n")
    assert error.reason == "malformed reply code"
    assert error.offending == line


def test_code_changing_mid_reply_is_an_error() -> None:
    error = failure(b"250-one\r\n251 two\r\n")
    assert "changed from 250 to 251" in error.reason
    assert error.offending == b"251 two"


def test_parser_stays_dead_after_an_error() -> None:
    parser = ReplyParser()
    parser.receive_data(b"999 nope\r\n")
    with pytest.raises(RemoteProtocolError) as first:
        parser.next_reply()
    parser.receive_data(b"250 fine now\r\n")
    assert parser.buffered == 0
    with pytest.raises(RemoteProtocolError) as again:
        parser.next_reply()
    assert again.value is first.value


# ---- memory stays bounded whatever the server sends -----------------------------------


def test_a_megabyte_without_newline_never_buffers_more_than_a_line() -> None:
    parser = ReplyParser()
    chunk = b"2" * 1000
    high = 0
    failed_at = None
    for i in range(1000):
        parser.receive_data(chunk)
        high = max(high, parser.buffered)
        try:
            parser.next_reply()
        except RemoteProtocolError:
            failed_at = failed_at if failed_at is not None else i
        high = max(high, parser.buffered)
    assert failed_at == MAX_REPLY_LINE // len(chunk)
    assert high <= MAX_REPLY_LINE + len(chunk)
    assert parser.buffered == 0


def test_endless_continuation_lines_never_buffer_more_than_a_reply() -> None:
    parser = ReplyParser()
    high = 0
    with pytest.raises(RemoteProtocolError):
        for _ in range(100_000):
            parser.receive_data(b"250-" + b"z" * 1000 + b"\r\n")
            assert parser.next_reply() is None
            high = max(high, parser.buffered)
    assert high <= MAX_REPLY_BYTES + MAX_REPLY_LINE
    assert parser.buffered == 0


def test_endless_short_continuation_lines_fail_on_the_line_count() -> None:
    parser = ReplyParser()
    sent = 0
    with pytest.raises(RemoteProtocolError) as caught:
        while sent < 10_000:
            parser.receive_data(b"250-\r\n")
            sent += 1
            parser.next_reply()
    assert sent == MAX_REPLY_LINES + 1
    assert "lines" in caught.value.reason


def test_enhanced_code_is_stripped_only_as_a_whole_word() -> None:
    parser = ReplyParser()
    parser.receive_data(b"550-5.1.1 first\r\n550-5.1.10 not the code\r\n550 5.1.1 last\r\n")
    reply = parser.next_reply()
    assert reply is not None
    assert reply.lines == ("first", "5.1.10 not the code", "last")


def test_enhanced_code_digits_are_ascii() -> None:
    parser = ReplyParser()
    parser.receive_data("550 5.\u0661.1 Arabic-Indic digit\r\n".encode())
    reply = parser.next_reply()
    assert reply is not None and reply.enhanced is None
