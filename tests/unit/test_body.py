"""The body on the wire: CRLF, dot-stuffing, trailing CRLF, and the 998-octet line limit."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.smtp import Body, BodyLineTooLongError, LocalProtocolError, encode_body
from core.smtp.body import BodyEncoder
from core.smtp.limits import BODY_CHUNK, MAX_BODY_LINE


def encode_in_chunks(*chunks: bytes) -> bytes:
    encoder = BodyEncoder()
    out = b"".join(encoder.feed(chunk) for chunk in chunks)
    return out + encoder.finish()


@pytest.mark.parametrize(
    ("raw", "wire"),
    [
        (b"", b""),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\rb\r", b"a\r\nb\r\n"),
        (b"a\r\nb\nc\rd", b"a\r\nb\r\nc\r\nd\r\n"),
        (b"\n\n", b"\r\n\r\n"),
        (b"\r\r\n\n", b"\r\n\r\n\r\n"),
        (b"\n\r", b"\r\n\r\n"),
        (b"no newline", b"no newline\r\n"),
    ],
)
def test_line_endings_become_crlf(raw: bytes, wire: bytes) -> None:
    assert encode_body(raw) == wire


@pytest.mark.parametrize(
    ("raw", "wire"),
    [
        (b".", b"..\r\n"),
        (b".\r\n", b"..\r\n"),
        (b"..hidden\r\n", b"...hidden\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n"),
        (b"a\n.b\n..c\n", b"a\r\n..b\r\n...c\r\n"),
        (b"a\r.b", b"a\r\n..b\r\n"),
        (b"a.b\r\n", b"a.b\r\n"),
    ],
)
def test_leading_dots_are_doubled_including_the_first_line(raw: bytes, wire: bytes) -> None:
    assert encode_body(raw) == wire


def test_a_body_line_can_never_end_the_data() -> None:
    wire = encode_body(b"text\r\n.\r\nMAIL FROM:<evil@x.test>\r\n")
    assert b"\r\n.\r\n" not in b"\r\n" + wire


def test_line_of_998_octets_passes_and_999_is_refused() -> None:
    ok = b"x" * MAX_BODY_LINE
    assert encode_body(ok) == ok + b"\r\n"
    assert encode_body(b"a\r\n" + ok + b"\r\nb") == b"a\r\n" + ok + b"\r\nb\r\n"
    with pytest.raises(BodyLineTooLongError) as caught:
        encode_body(b"a\r\nb\r\n" + b"x" * (MAX_BODY_LINE + 1) + b"\r\nc\r\n")
    assert caught.value.line_number == 3
    assert caught.value.length == MAX_BODY_LINE + 1
    assert isinstance(caught.value, LocalProtocolError)
    assert "line 3" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "line", "length"),
    [
        (b"y" * 5000, 1, 5000),
        (b"a\nb\nc\n" + b"y" * 1200, 4, 1200),
        (b"a\rb\r" + b"y" * 1000 + b"\r", 3, 1000),
        (b"a\r\n" + b"y" * 1500 + b"\r\nshort\r\n" + b"z" * 2000 + b"\r\n", 2, 1500),
    ],
)
def test_the_first_long_line_is_reported_with_its_number_and_length(
    raw: bytes, line: int, length: int
) -> None:
    with pytest.raises(BodyLineTooLongError) as caught:
        encode_body(raw)
    assert (caught.value.line_number, caught.value.length) == (line, length)


def test_dot_stuffing_does_not_count_towards_the_limit() -> None:
    line = b"." + b"x" * (MAX_BODY_LINE - 1)
    assert encode_body(line) == b"." + line + b"\r\n"


# ---- the incremental encoder ------------------------------------------------------------


def test_encoder_carries_cr_dot_and_line_state_across_chunks() -> None:
    assert encode_in_chunks(b"a\r", b"\n.b", b"\r", b".c") == b"a\r\n..b\r\n..c\r\n"
    assert encode_in_chunks(b".", b".", b"\n", b".") == b"...\r\n..\r\n"
    assert encode_in_chunks(b"\r", b"", b"\r") == b"\r\n\r\n"
    assert encode_in_chunks(b"abc", b"") == b"abc\r\n"
    assert encode_in_chunks() == b""


def test_encoder_finish_resets_it() -> None:
    encoder = BodyEncoder()
    assert encoder.feed(b"a\r") == b"a"
    assert encoder.finish() == b"\r\n"
    assert encoder.finish() == b""


def test_encoder_refuses_long_line_within_one_chunk_with_its_number() -> None:
    encoder = BodyEncoder()
    with pytest.raises(BodyLineTooLongError) as caught:
        encoder.feed(b"one\r\ntwo\r\n" + b"x" * 1000 + b"\r\nfour\r\n")
    assert caught.value.line_number == 3
    assert caught.value.length == 1000


def test_encoder_counts_lines_across_chunks() -> None:
    encoder = BodyEncoder()
    encoder.feed(b"1\n2\n3\n")
    encoder.feed(b"4\n")
    with pytest.raises(BodyLineTooLongError) as caught:
        encoder.feed(b"5\n6\n" + b"x" * 999 + b"\n8\n")
    assert caught.value.line_number == 7


def test_encoder_refuses_a_line_that_grows_too_long_over_many_chunks() -> None:
    encoder = BodyEncoder()
    encoder.feed(b"first\r\n")
    with pytest.raises(BodyLineTooLongError) as caught:
        for _ in range(20):
            encoder.feed(b"x" * 100)
    assert caught.value.line_number == 2
    assert caught.value.length > MAX_BODY_LINE


def test_encoder_refuses_a_long_line_ended_in_the_next_chunk() -> None:
    encoder = BodyEncoder()
    encoder.feed(b"x" * 900)
    with pytest.raises(BodyLineTooLongError) as caught:
        encoder.feed(b"y" * 200 + b"\r\nmore\r\n")
    assert (caught.value.line_number, caught.value.length) == (1, 1100)


def test_encoder_refuses_a_long_last_line_in_a_chunk() -> None:
    encoder = BodyEncoder()
    with pytest.raises(BodyLineTooLongError) as caught:
        encoder.feed(b"a\r\nb\r\n" + b"x" * 1000)
    assert caught.value.line_number == 3


_BODY_BYTES = st.lists(
    st.sampled_from([b"a", b"b", b".", b"\r", b"\n", b"\r\n", b"..", b"\xc3\xa9", b" "]),
    max_size=60,
).map(b"".join)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(_BODY_BYTES, st.lists(st.integers(0, 1000), max_size=30))
def test_encoder_in_any_chunking_equals_encode_body(data: bytes, cuts: list[int]) -> None:
    assert encode_in_chunks(*chunked(data, cuts)) == encode_body(data)


@given(
    st.lists(st.integers(0, 1100), min_size=1, max_size=6),
    st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=6, max_size=6),
    st.lists(st.integers(0, 8000), max_size=12),
)
def test_encoder_refuses_exactly_what_encode_body_refuses(
    lengths: list[int], ends: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(b"x" * n + end for n, end in zip(lengths, ends, strict=False))
    try:
        expected = encode_body(data)
    except BodyLineTooLongError as error:
        with pytest.raises(BodyLineTooLongError) as caught:
            encode_in_chunks(*chunked(data, cuts))
        assert caught.value.line_number == error.line_number
        assert MAX_BODY_LINE < caught.value.length <= error.length
    else:
        assert encode_in_chunks(*chunked(data, cuts)) == expected


# ---- Body ------------------------------------------------------------------------------


def test_body_from_bytes() -> None:
    body = Body.from_bytes(b"Subject: x\n\n.hi\n")
    assert body.wire == b"Subject: x\r\n\r\n..hi\r\n"
    assert body.size == len(body.wire)
    assert not body.eight_bit
    assert b"".join(body.stream()) == body.wire
    assert Body.from_bytes("Grüße\n".encode()).eight_bit


def test_a_large_body_streams_in_bounded_chunks() -> None:
    body = Body.from_bytes((b"x" * 99 + b"\n") * 2000)
    parts = list(body.stream())
    assert len(parts) > 1
    assert all(len(part) <= BODY_CHUNK for part in parts)
    assert b"".join(parts) == body.wire


def test_streamed_body_is_encoded_as_it_goes_and_can_be_replayed() -> None:
    raw = [b"Subject: x\n", b"\n.", b"dot\r", b"\nlast"]
    body = Body.from_chunks(lambda: iter(raw), size=30, eight_bit=False)
    assert body.wire is None
    once = b"".join(body.stream())
    assert once == encode_body(b"".join(raw))
    assert b"".join(body.stream()) == once


def test_streamed_body_with_a_long_line_fails_while_streaming() -> None:
    body = Body.from_chunks(lambda: [b"ok\n", b"x" * 2000, b"\n"], size=3000, eight_bit=False)
    stream = body.stream()
    assert next(stream) == b"ok\r\n"
    with pytest.raises(BodyLineTooLongError) as caught:
        next(stream)
    assert caught.value.line_number == 2


def test_streamed_chunks_that_encode_to_nothing_are_not_yielded() -> None:
    body = Body.from_chunks(lambda: [b"", b"a\r", b"", b"\nb"], size=4, eight_bit=False)
    parts = list(body.stream())
    assert all(parts)
    assert b"".join(parts) == b"a\r\nb\r\n"


def test_a_long_line_in_a_body_over_a_megabyte_is_found_too() -> None:
    lines = b"x" * 76 + b"\r\n"
    big = lines * 20_000  # 1.5 MB: past the size where lines are split to be measured
    assert encode_body(big) == big
    with pytest.raises(BodyLineTooLongError) as error:
        encode_body(big + b"y" * 1200 + b"\r\n" + lines)
    assert (error.value.line_number, error.value.length) == (20_001, 1200)
