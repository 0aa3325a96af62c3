"""The reply parser against every server: any reply the grammar allows comes out exactly
as written whatever the chunking, and any bytes at all give replies or
``RemoteProtocolError`` (never another exception), in bounded memory, the same however
they are split."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.smtp import EnhancedStatus, RemoteProtocolError, Reply, ReplyParser
from core.smtp.limits import MAX_REPLY_BYTES, MAX_REPLY_LINE
from tests.fuzz.profile import FUZZ, TIMEOUT
from tests.unit.test_session_properties import chunks_of, smtpish

pytestmark = TIMEOUT

# Reply text: anything but line ends; not starting with a digit or a space, which the
# parser would rightly read as (or strip after) an enhanced status code.
_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=80
).filter(lambda t: not t[:1].isdigit() and t[:1] != " ")


@st.composite
def written_replies(draw: st.DrawFn) -> tuple[Reply, bytes]:
    """A reply as a server may write it, and the value it must parse to (the oracle is
    built from the drawn parts, not from the parser)."""
    code = draw(st.integers(200, 599))
    texts = draw(st.lists(_TEXT, min_size=1, max_size=6))
    enhanced = None
    if code // 100 != 3 and draw(st.booleans()):
        enhanced = EnhancedStatus(code // 100, draw(st.integers(0, 999)), draw(st.integers(0, 999)))
    on_every_line = draw(st.booleans())
    wire = b""
    for i, text in enumerate(texts):
        separator = " " if i == len(texts) - 1 else "-"
        marked = enhanced is not None and (i == 0 or on_every_line)
        line = f"{code}{separator}{enhanced} {text}" if marked else f"{code}{separator}{text}"
        wire += line.encode() + draw(st.sampled_from([b"\r\n", b"\n"]))
    return Reply(code, tuple(texts), enhanced), wire


@FUZZ
@given(st.lists(written_replies(), min_size=1, max_size=8), st.lists(st.integers(0, 2000)))
def test_every_grammatical_reply_parses_as_written(
    replies: list[tuple[Reply, bytes]], cuts: list[int]
) -> None:
    parser = ReplyParser()
    got: list[Reply] = []
    for chunk in chunks_of(b"".join(wire for _, wire in replies), cuts):
        parser.receive_data(chunk)
        while (reply := parser.next_reply()) is not None:
            got.append(reply)
    assert got == [expected for expected, _ in replies]
    assert parser.buffered == 0


# Bytes a hostile or broken server sends: raw binary, SMTP-like words, and lines and
# replies around the parser's limits.
_HOSTILE = st.one_of(
    st.binary(max_size=600),
    smtpish,
    st.builds(
        lambda n, end: b"250 " + b"x" * n + end,
        st.integers(MAX_REPLY_LINE - 8, MAX_REPLY_LINE + 8),
        st.sampled_from([b"\r\n", b"\n", b""]),
    ),
    st.builds(lambda n: b"250-" + b"y" * 1000 + b"\r\n" + b"250-y\r\n" * n, st.integers(150, 260)),
)


def parse_all(chunks: list[bytes]) -> tuple[list[Reply], str | None]:
    """Every reply, and the reason of the error that ended parsing (None: none)."""
    parser = ReplyParser()
    got: list[Reply] = []
    bound = MAX_REPLY_LINE + 2 + MAX_REPLY_BYTES
    for chunk in chunks:
        parser.receive_data(chunk)
        try:
            while (reply := parser.next_reply()) is not None:
                got.append(reply)
        except RemoteProtocolError as error:
            try:  # dead from now on, with the same error
                parser.next_reply()
            except RemoteProtocolError as again:
                assert again is error
            else:
                raise AssertionError("a failed parser went on parsing") from None
            return got, error.reason
        assert parser.buffered <= bound, "memory grows with what the server sends"
    return got, None


@FUZZ
@given(st.lists(_HOSTILE, min_size=1, max_size=6).map(b"".join), st.lists(st.integers(0, 5000)))
def test_any_bytes_give_replies_or_a_protocol_error_however_split(
    data: bytes, cuts: list[int]
) -> None:
    whole = parse_all([data])
    assert parse_all(chunks_of(data, cuts)) == whole
    assert parse_all([data[i : i + 1] for i in range(min(len(data), 3000))]) == parse_all(
        [data[:3000]]
    )
    for reply in whole[0]:
        assert 200 <= reply.code <= 599
        assert all("\n" not in line for line in reply.lines)
        # What a transcript shows re-parses to the same reply.
        again = ReplyParser()
        again.receive_data(b"".join(line.encode() + b"\r\n" for line in reply.wire_lines()))
        replayed = again.next_reply()
        assert replayed is not None and replayed.code == reply.code


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=40), max_size=20))
def test_feeding_after_an_error_is_harmless(chunks: list[bytes]) -> None:
    """A dead parser holds nothing more, whatever the server goes on sending."""
    parser = ReplyParser()
    parser.receive_data(b"garbage\r\n")
    with pytest.raises(RemoteProtocolError) as first:
        parser.next_reply()
    for chunk in itertools.chain([b""], chunks):
        parser.receive_data(chunk)
        assert parser.buffered == 0
        with pytest.raises(RemoteProtocolError) as again:
            parser.next_reply()
        assert again.value is first.value
