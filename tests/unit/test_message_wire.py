"""The send path's shortcut: ``OutgoingMessages.render_body`` gives exactly the Body that
``Body.from_bytes`` makes of the rendered message (same bytes, same refusal of a long
line), while skipping the pass over the whole message when the template proves the bytes
ready; and ``Body.from_checked`` takes such bytes as they are (dot-stuffed if need be).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.message.compile import Compiled
from core.message.fields import Context, segments
from core.message.headers import Piece
from core.message.parts import QPLine, qp_line
from core.outgoing import (
    DKIM_DOMAIN,
    DKIM_KEY,
    DKIM_SELECTOR,
    LIST_UNSUBSCRIBE_MAILTO,
    LIST_UNSUBSCRIBE_URL,
    OutgoingMessages,
)
from core.smtp import Body, BodyLineTooLongError, encode_body
from core.template import MessageTemplate, WireMessage
from tests.unit.test_dkim import ED25519_SEED
from tests.unit.test_message_properties import TEMPLATE
from tests.unit.test_template import DATE, MID, SHARED_MESSAGES

ORDINARY = (
    b"From: Bench <bench@client.test>\n"
    b"To: {{first_name}} <{{email}}>\n"
    b"Subject: Hello {{first_name}}, your throughput benchmark\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=us-ascii\n"
    b"\n"
    b"Dear {{first_name}},\n"
    b"\n" + b"".join(b"%02d" % n + b"x" * 74 + b"\n" for n in range(1, 25)) + b"\n"
    b"Regards, {{first_name}}'s benchmark\n"
)
DOTTED = b"From: a@sender.test\nSubject: x\n\n.A line with a dot, {{first_name}}\n..two\n"
TEMPLATES = {
    "ordinary": MessageTemplate(ORDINARY),
    "dotted": MessageTemplate(DOTTED),
    "unterminated": MessageTemplate(b"From: a@sender.test\n\nHi {{first_name}}"),
    "properties": TEMPLATE,
    **{
        path.name: MessageTemplate(path.read_bytes())
        for path in sorted(SHARED_MESSAGES.glob("*.eml"))
    },
}
TRAPS = [
    ".", "..", "\n.", "\r\n.\r\n", "\r\n", "\0", " ", "=", "-", "--outer", "é", "\U0001f4ec",
    "x" * 70, "y" * 400, "z " * 300, "\ud800", "=?utf-8?q?x?=",
]  # fmt: skip
VALUES = st.lists(st.one_of(st.sampled_from(TRAPS), st.text(max_size=6)), max_size=8).map(
    "".join
) | st.text(min_size=900, max_size=1200)
ADDRESSES = st.sampled_from(
    ["ann@plain.test", "zoë@grey.test", "a@bücher.test", ".dot@x.test", "x" * 990 + "@y.test"]
)


def expected(template: MessageTemplate, fields: dict[str, str], to: str) -> tuple[Body, bool]:
    """What the engine built before the shortcut: render, then ``Body.from_bytes``."""
    rendered = template.render(fields, to=to, message_id=MID, date=DATE)
    return Body.from_bytes(rendered.data, crlf_only=True), rendered.needs_smtputf8


def outgoing(
    template: MessageTemplate, settings: dict[str, object] | None = None
) -> OutgoingMessages:
    options = template.options
    unsubscribe = {
        LIST_UNSUBSCRIBE_MAILTO: options.list_unsubscribe_mailto,
        LIST_UNSUBSCRIBE_URL: options.list_unsubscribe_url,
    }
    return OutgoingMessages(template.source, {**unsubscribe, **(settings or {})})


def body(messages: OutgoingMessages, fields: dict[str, str], to: str) -> tuple[Body, bool]:
    return messages.render_body(fields, to=to, message_id=MID, date=DATE)


def assert_same(got: tuple[Body, bool], want: tuple[Body, bool]) -> None:
    assert got[0].wire == want[0].wire
    assert (got[0].size, got[0].eight_bit, got[1]) == (want[0].size, want[0].eight_bit, want[1])


OUTGOING = {name: outgoing(template) for name, template in TEMPLATES.items()}


@given(st.sampled_from(sorted(TEMPLATES)), VALUES, VALUES, ADDRESSES)
def test_render_body_is_what_from_bytes_makes_of_the_message(
    name: str, first: str, other: str, to: str
) -> None:
    template = TEMPLATES[name]
    fields = {"first_name": first, "name": other, "city": first, "club": other}
    try:
        want = expected(template, fields, to)
    except BodyLineTooLongError as error:
        with pytest.raises(BodyLineTooLongError) as caught:
            body(OUTGOING[name], fields, to)
        assert (caught.value.line_number, caught.value.length) == (error.line_number, error.length)
        return
    assert_same(body(OUTGOING[name], fields, to), want)


@given(st.sampled_from(sorted(TEMPLATES)), VALUES, ADDRESSES)
def test_what_a_wire_message_says_it_needs_is_what_encode_body_does(
    name: str, value: str, to: str
) -> None:
    fields = {"first_name": value, "name": value, "city": value, "club": value}
    message = TEMPLATES[name].render_wire(fields, to=to, message_id=MID, date=DATE)
    if message.short_lines:
        wire = Body.from_checked(message.data, dots=message.dots).wire
        assert wire == encode_body(message.data, crlf_only=True)
        if not message.dots:
            assert wire == message.data
    else:
        assert not message.dots


def ordinary(value: str, to: str = "r00001@sink.test") -> WireMessage:
    fields = {"first_name": value}
    return TEMPLATES["ordinary"].render_wire(fields, to=to, message_id=MID, date=DATE)


def test_an_ordinary_message_needs_nothing_more() -> None:
    message = ordinary("Name00001")
    assert message.short_lines
    assert not message.dots
    assert not message.needs_smtputf8
    assert message.data.endswith(b"'s benchmark\r\n")
    want, _ = expected(TEMPLATES["ordinary"], {"first_name": "Name00001"}, "r00001@sink.test")
    assert message.data == want.wire


@pytest.mark.parametrize("value", [".leading dot", "a\n.b", "a\r\n.\r\nb", "x" * 999, "é" * 500])
def test_values_near_the_rules_give_the_same_bytes(value: str) -> None:
    fields = {"first_name": value}
    assert_same(body(OUTGOING["ordinary"], fields, "u@x.test"),
                expected(TEMPLATES["ordinary"], fields, "u@x.test"))  # fmt: skip


def test_a_value_that_starts_a_line_with_a_dot_has_it_doubled() -> None:
    template = MessageTemplate(b"From: a@sender.test\n\n{{first_name}}\nend\n")
    fields = {"first_name": ".hidden"}
    message = template.render_wire(fields, to="u@x.test", message_id=MID, date=DATE)
    assert message.short_lines and message.dots
    assert b"\r\n.hidden\r\n" in message.data  # doubled by the Body, not here
    sent, _ = outgoing(template).render_body(fields, to="u@x.test", message_id=MID, date=DATE)
    assert sent.wire is not None and b"\r\n..hidden\r\n" in sent.wire


def test_values_long_enough_to_make_a_long_line_get_the_full_check() -> None:
    template = MessageTemplate(b"From: a@sender.test\nX-Note: {{first_name}}\n\nbody\n")
    fields = {"first_name": "x" * 990}
    message = template.render_wire(fields, to="u@x.test", message_id=MID, date=DATE)
    assert not message.short_lines
    assert_same(
        body(outgoing(template), fields, "u@x.test"), expected(template, fields, "u@x.test")
    )


def test_a_template_with_a_dotted_line_of_its_own_always_has_dots_doubled() -> None:
    message = TEMPLATES["dotted"].render_wire(
        {"first_name": "Ann"}, to="u@x.test", message_id=MID, date=DATE
    )
    assert message.short_lines and message.dots
    sent, _ = body(OUTGOING["dotted"], {"first_name": "Ann"}, "u@x.test")
    assert sent.wire is not None and b"\r\n..A line with a dot, Ann\r\n...two\r\n" in sent.wire


def test_a_non_ascii_local_part_needs_smtputf8_and_eight_bit() -> None:
    sent, needs_smtputf8 = body(OUTGOING["ordinary"], {"first_name": "Zoë"}, "zoë@grey.test")
    assert needs_smtputf8 and sent.eight_bit
    assert ordinary("Zoë", "zoë@grey.test").needs_smtputf8
    sent, needs_smtputf8 = body(OUTGOING["ordinary"], {"first_name": "Zoë"}, "zoe@grey.test")
    assert not needs_smtputf8 and not sent.eight_bit


def test_a_signed_message_is_the_signed_render(tmp_path: Path) -> None:
    key = tmp_path / "dkim.key"
    key.write_bytes(base64.b64encode(ED25519_SEED))
    key.chmod(0o600)
    settings: dict[str, object] = {
        DKIM_KEY: str(key),
        DKIM_SELECTOR: "s1",
        DKIM_DOMAIN: "sender.test",
    }
    messages = outgoing(TEMPLATES["dotted"], settings)
    fields = {"first_name": "Ann"}
    signed = messages.render(fields, to="u@x.test", message_id=MID, date=DATE)
    sent, needs_smtputf8 = body(messages, fields, "u@x.test")
    assert sent.wire == Body.from_bytes(signed.data, crlf_only=True).wire
    assert sent.wire is not None and sent.wire.startswith(b"DKIM-Signature:")
    assert not needs_smtputf8


def test_from_checked_takes_the_bytes_as_they_are_or_dot_stuffed() -> None:
    checked = Body.from_checked(b"Subject: x\r\n\r\n.hi\r\n", dots=False)
    assert checked.wire == b"Subject: x\r\n\r\n.hi\r\n"
    assert checked.size == len(checked.wire)
    assert not checked.eight_bit
    stuffed = Body.from_checked(b".a\r\n.hi\r\n", dots=True)
    assert stuffed.wire == b"..a\r\n..hi\r\n"
    assert stuffed.size == len(stuffed.wire)
    assert Body.from_checked("Grüße\r\n".encode(), dots=False).eight_bit


# ---- what the template proves once, and checks per message -------------------------------


def test_the_template_bytes_on_a_line_with_values_count_towards_its_length() -> None:
    # 700 literal octets and 300 rendered ones on one line: 1000, over the limit, although
    # the rendered bytes alone are far from it.
    def note(values: Mapping[str, str]) -> bytes:
        return values["first_name"].encode() + b"\r\n"

    compiled = Compiled.of([b"X-Long: " + b"a" * 692, note], [b"body"], frozenset({"first_name"}))
    assert compiled.reach == 700 + 4
    message = compiled.wire({"first_name": "b" * 300}, "u@x.test", b"Date: x\r\n")
    assert not message.short_lines
    with pytest.raises(BodyLineTooLongError):
        encode_body(message.data, crlf_only=True)
    assert compiled.wire({"first_name": "b" * 200}, "u@x.test", b"Date: x\r\n").short_lines


def test_the_reach_takes_the_line_ends_of_each_literal() -> None:
    def value(values: Mapping[str, str]) -> bytes:
        return b"v"

    pieces: list[Piece] = [b"a" * 10 + b"\r\n" + b"b" * 900 + b"\r\n" + b"c" * 20, value, b"d" * 5]
    assert Compiled.of(pieces, [], frozenset()).reach == 20 + 5  # "ddddd" and the blank line merge
    assert Compiled.of([b"x" * 999 + b"\r\n", value], [], frozenset()).reach is None


def test_literal_dots_are_found_once() -> None:
    def value(values: Mapping[str, str]) -> bytes:
        return b"v"

    assert not Compiled.of([b"x.\r\ny.\r\n", value], [b"a.b"], frozenset()).dotted
    assert Compiled.of([b"x\r\n.y\r\n", value], [], frozenset()).dotted
    assert Compiled.of([value, b".y\r\n"], [], frozenset()).dotted  # after a value


def test_a_stamp_that_starts_with_a_dot_has_it_doubled() -> None:
    compiled = Compiled.of([b"From: a@x.test\r\n"], [b"body"], frozenset())
    assert not compiled.wire({}, "u@x.test", b"Date: x\r\n").dots
    assert compiled.wire({}, "u@x.test", b".Date: x\r\n").dots


def test_a_body_without_a_final_line_break_gets_one() -> None:
    message = TEMPLATES["unterminated"].render_wire(
        {"first_name": "Ann"}, to="u@x.test", message_id=MID, date=DATE
    )
    assert message.short_lines
    assert message.data.endswith(b"\r\n\r\nHi Ann\r\n")


# ---- quoted-printable lines that need no encoding ------------------------------------------

QP_TEXT = st.lists(
    st.sampled_from(["a", "x", ".", " ", "\t", "=", "-", "--b", "_", "~", "é", "\x7f", "\x00"]),
    max_size=90,
).map("".join) | st.text(max_size=90)


@given(QP_TEXT, st.sampled_from([(), (b"--b",)]), st.booleans())
def test_a_line_left_as_it_is_is_what_b2a_qp_gives(
    text: str, markers: tuple[bytes, ...], last: bool
) -> None:
    line = QPLine(segments("{{v}}", Context.TEXT), markers, last)
    encoded = qp_line(text.encode(), markers)
    assert line({"v": text}) == (encoded[:-2] if last else encoded)


@pytest.mark.parametrize(
    "text", ["x" * 75, "x" * 76, ".", "..", "a ", " a", "a=b", "--b x", "a\tb", "é"]
)
def test_lines_at_the_edges_of_as_is(text: str) -> None:
    line = QPLine(segments("{{v}}", Context.TEXT), (b"--b",), False)
    assert line({"v": text}) == qp_line(text.encode(), (b"--b",))
