"""The campaign's .eml with ``{{field}}`` merged in: parsing, rendering, and the rule that
no merge value can ever create or end a header."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.template import (
    MessageTemplate,
    RenderedMessage,
    TemplateError,
    date_header,
    new_message_id,
)

SHARED_MESSAGES = Path(__file__).resolve().parents[3] / "shared" / "data" / "messages"
MID = "<0123456789abcdef@sender.test>"
DATE = "Wed, 25 Nov 2026 09:00:00 +0000"


def render(
    template: bytes | MessageTemplate, fields: dict[str, str] | None = None, to: str = "u@x.test"
) -> RenderedMessage:
    if isinstance(template, bytes):
        template = MessageTemplate(template)
    return template.render(fields or {}, to=to, message_id=MID, date=DATE)


def split(data: bytes) -> tuple[list[bytes], bytes]:
    """(header lines, body) of rendered bytes, split at the first empty line."""
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, "no end of headers"
    return head.split(b"\r\n"), body


def header_names(lines: list[bytes]) -> list[str]:
    return [
        line.partition(b":")[0].decode("ascii").lower()
        for line in lines
        if line[:1] not in (b" ", b"\t")
    ]


def header(data: bytes, name: str) -> list[bytes]:
    """The values (first lines) of every ``name`` header."""
    lines, _ = split(data)
    return [
        line.partition(b":")[2].strip()
        for line in lines
        if line[:1] not in (b" ", b"\t")
        and line.partition(b":")[0].strip().lower() == name.encode()
    ]


# ---- parsing -------------------------------------------------------------------------

SIMPLE = (
    b"From: Club <news@sender.test>\n"
    b"Subject: Hello {{first_name}}\n"
    b"\n"
    b"Dear {{first_name|friend}} from {{ city }},\n"
    b"bye\n"
)


def test_lf_crlf_and_cr_files_render_the_same() -> None:
    fields = {"first_name": "Ann", "city": "Oslo"}
    lf = render(SIMPLE, fields).data
    crlf = render(SIMPLE.replace(b"\n", b"\r\n"), fields).data
    cr = render(SIMPLE.replace(b"\n", b"\r"), fields).data
    assert lf == crlf == cr
    assert b"\n" not in lf.replace(b"\r\n", b"")
    assert b"\r" not in lf.replace(b"\r\n", b"")


def test_fields_are_found_in_headers_and_body() -> None:
    template = MessageTemplate(SIMPLE)
    assert template.fields == frozenset({"first_name", "city"})


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (b"{{a}}", {"a"}),
        (b"{{ a }}", {"a"}),
        (b"{{a|default}}", {"a"}),
        (b"{{a.b-c_d9}}", {"a.b-c_d9"}),
        (b"{{email}}", {"email"}),
        (b"{{}} {{ }} {{a b}} {a} {{{a}", set()),
        (b"{{x}}{{y|z}}{{x}}", {"x", "y"}),
    ],
)
def test_field_syntax(text: bytes, fields: set[str]) -> None:
    template = MessageTemplate(b"From: a@sender.test\n\n" + text + b"\n")
    assert template.fields == frozenset(fields)


def test_unknown_fields() -> None:
    template = MessageTemplate(
        b"From: a@sender.test\nSubject: {{first_name}} {{email}}\n\n{{city}} {{zip|none}}\n"
    )
    assert template.unknown_fields(["first_name"]) == ["city", "zip"]
    assert template.unknown_fields(["first_name", "city", "zip"]) == []
    assert template.unknown_fields([]) == ["city", "first_name", "zip"]  # sorted
    # email is always there: it is the recipient's address.
    assert "email" not in template.unknown_fields([])


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"From: a@sender.test\r\nSubject: x\r\n", id="no-blank-line"),
        pytest.param(b"From: a@sender.test\nSubject: x", id="no-blank-line-no-newline"),
        pytest.param(b"\r\n\r\nJust a body\r\n", id="blank-line-first"),
        pytest.param(b"   \n\nbody\n", id="whitespace-head"),
    ],
)
def test_no_header_section_is_a_clear_error(raw: bytes) -> None:
    with pytest.raises(TemplateError, match="no header section") as caught:
        MessageTemplate(raw)
    assert "blank line" in str(caught.value)
    assert ".eml" in str(caught.value)


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: hi\n\nbody\n",
        b"To: u@x.test\nSubject: hi\n\nbody\n",
        b"Sender: a@sender.test\nReply-To: a@sender.test\n\nbody\n",
        b"X-From: a@sender.test\n\nbody\n",
    ],
)
def test_missing_from_is_a_clear_error(raw: bytes) -> None:
    with pytest.raises(TemplateError) as caught:
        MessageTemplate(raw)
    message = str(caught.value)
    assert "From" in message
    assert "add one" in message


@pytest.mark.parametrize("name", [b"From", b"FROM", b"from", b"From "])
def test_from_is_found_whatever_its_case(name: bytes) -> None:
    MessageTemplate(name + b": a@sender.test\n\nbody\n")


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"This is not a header", id="no-colon"),
        pytest.param(b": no name", id="empty-name"),
        pytest.param(b" : x", id="first-line-indented-without-name"),
    ],
)
def test_malformed_header_line_is_an_error(line: bytes) -> None:
    with pytest.raises(TemplateError, match="malformed header line") as caught:
        MessageTemplate(line + b"\nFrom: a@sender.test\n\nbody\n")
    assert repr(line) in str(caught.value)


def test_malformed_header_line_is_shown_cut_to_60_bytes() -> None:
    line = b"x" * 100
    with pytest.raises(TemplateError) as caught:
        MessageTemplate(b"From: a@sender.test\n" + line + b"\n\nbody\n")
    assert repr(line[:60]) in str(caught.value)
    assert repr(line[:61]) not in str(caught.value)


def test_folded_headers_are_kept_folded_and_merged() -> None:
    raw = (
        b"From:\n"
        b" Example Club <news@sender.test>\n"
        b"Subject: Welcome,\n"
        b"\t{{first_name}}\n"
        b"  and {{city|friends}}\n"
        b"\n"
        b"body\n"
    )
    data = render(raw, {"first_name": "Ann"}).data
    lines, body = split(data)
    assert header_names(lines) == ["message-id", "date", "to", "from", "subject"]
    assert lines[3:] == [
        b"From:",
        b" Example Club <news@sender.test>",
        b"Subject: Welcome,",
        b"\tAnn",
        b"  and friends",
    ]
    assert body == b"body\r\n"


# ---- rendering -----------------------------------------------------------------------


def test_render_merges_headers_and_body() -> None:
    data = render(SIMPLE, {"first_name": "Ann", "city": "Oslo"}).data
    lines, body = split(data)
    assert lines == [
        b"Message-ID: " + MID.encode(),
        b"Date: " + DATE.encode(),
        b"To: <u@x.test>",
        b"From: Club <news@sender.test>",
        b"Subject: Hello Ann",
    ]
    assert body == b"Dear Ann from Oslo,\r\nbye\r\n"


def test_defaults_apply_to_missing_and_empty_values() -> None:
    raw = b"From: a@sender.test\n\n[{{name|friend}}] [{{name}}] [{{city|}}]\n"
    assert split(render(raw, {}).data)[1] == b"[friend] [] []\r\n"
    assert split(render(raw, {"name": ""}).data)[1] == b"[friend] [] []\r\n"
    assert split(render(raw, {"name": "Ann"}).data)[1] == b"[Ann] [Ann] []\r\n"


def test_email_field_is_the_recipient_address() -> None:
    raw = b"From: a@sender.test\n\nYou are {{email}}.\n"
    body = split(render(raw, {"email": "someone@else.test"}, to="u@x.test").data)[1]
    assert body == b"You are u@x.test.\r\n"


def test_merged_values_are_not_merged_again() -> None:
    raw = b"From: a@sender.test\nSubject: {{a}}\n\n{{a}} {{b}}\n"
    data = render(raw, {"a": "{{b}}", "b": "B"}).data
    assert header(data, "subject") == [b"{{b}}"]
    assert split(data)[1] == b"{{b}} B\r\n"


def test_message_id_and_date_replace_the_templates_own() -> None:
    raw = (
        b"Message-Id: <old@sender.test>\n"
        b"From: a@sender.test\n"
        b"DATE: Thu, 01 Jan 1970 00:00:00 +0000\n"
        b"Message-ID:\n <also-old@sender.test>\n"
        b"Date : Fri, 02 Jan 1970 00:00:00 +0000\n"
        b"\n"
        b"body\n"
    )
    data = render(raw).data
    lines, _ = split(data)
    assert header_names(lines) == ["message-id", "date", "to", "from"]
    assert lines[0] == b"Message-ID: " + MID.encode()
    assert lines[1] == b"Date: " + DATE.encode()
    assert b"old@sender.test" not in data
    assert b"1970" not in data


def test_to_is_added_when_absent() -> None:
    data = render(b"From: a@sender.test\n\nbody\n", to="u@x.test").data
    assert header(data, "to") == [b"<u@x.test>"]


@pytest.mark.parametrize("name", [b"To", b"TO", b"to"])
def test_to_is_kept_and_merged_when_present(name: bytes) -> None:
    raw = b"From: a@sender.test\n" + name + b": {{name|Member}} <{{email}}>\n\nbody\n"
    data = render(raw, {"name": "Ann"}, to="u@x.test").data
    lines, _ = split(data)
    assert header_names(lines) == ["message-id", "date", "from", "to"]
    assert lines[-1] == name + b": Ann <u@x.test>"


def test_the_same_arguments_give_the_same_bytes() -> None:
    """Message-ID and Date are fixed at the first attempt so retries send equal bytes."""
    template = MessageTemplate(SIMPLE)
    fields = {"first_name": "Ann", "city": "Oslo"}
    assert render(template, fields).data == render(template, fields).data


def test_body_bytes_are_kept_byte_for_byte() -> None:
    raw = b"From: a@sender.test\n\ncaf\xe9 \xff\xfe {{x}}\r\n.dot\r\n..two\r\n\r\n\r\nend"
    body = split(render(raw, {"x": "\u00e9"}).data)[1]
    assert body == b"caf\xe9 \xff\xfe \xc3\xa9\r\n.dot\r\n..two\r\n\r\n\r\nend"


@pytest.mark.parametrize(
    ("raw", "fields", "to", "smtputf8"),
    [
        pytest.param(b"Subject: hi\n\nbody\n", {}, "u@x.test", False, id="ascii"),
        pytest.param(
            b"Subject: hi\n\nna\xc3\xafve {{x}}\n",
            {"x": "\u00e9"},
            "u@x.test",
            False,
            id="non-ascii-body-only",
        ),
        pytest.param(
            b"Subject: hi {{x}}\n\nbody\n",
            {"x": "Zo\u00eb"},
            "u@x.test",
            True,
            id="non-ascii-merged-into-subject",
        ),
        pytest.param(
            b"Subject: caf\xc3\xa9\n\nbody\n",
            {},
            "u@x.test",
            True,
            id="non-ascii-template-header",
        ),
        pytest.param(
            b"Subject: hi\n\nbody\n",
            {},
            "j\u00fcrgen@b\u00fccher.test",
            True,
            id="non-ascii-address-in-added-to",
        ),
        pytest.param(
            b"Subject: {{x}}\n\nbody\n",
            {"x": "plain"},
            "u@x.test",
            False,
            id="ascii-merge",
        ),
    ],
)
def test_needs_smtputf8_when_headers_hold_non_ascii(
    raw: bytes, fields: dict[str, str], to: str, smtputf8: bool
) -> None:
    rendered = render(b"From: a@sender.test\n" + raw, fields, to=to)
    assert rendered.needs_smtputf8 is smtputf8


# ---- the safety rule: values never create or end a header ----------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Eve\r\nBcc: victim@elsewhere.test",
        "Eve\nBcc: victim@elsewhere.test",
        "Eve\rBcc: victim@elsewhere.test",
        "Eve\r\n\r\nInjected body",
        "Eve\r\n Folded: continuation",
        "Eve\0Bcc: victim@elsewhere.test",
        "\r\n",
        "\n\n",
    ],
)
def test_injection_attempts_stay_inside_their_header(value: str) -> None:
    raw = b"From: a@sender.test\nSubject: Hi {{name}}\nTo: {{name}} <{{email}}>\n\nHi {{name}}\n"
    data = render(raw, {"name": value}, to="u@x.test\r\nBcc: x@elsewhere.test").data
    lines, body = split(data)
    assert header_names(lines) == ["message-id", "date", "from", "subject", "to"]
    assert not any(line[:1] in (b" ", b"\t") for line in lines)
    assert b"\0" not in data
    safe = re.sub("[\r\n\0]", " ", value).encode()
    assert lines[3] == b"Subject: Hi " + safe
    assert body == b"Hi " + safe + b"\r\n"


def test_recipient_address_cannot_inject_into_the_added_to() -> None:
    data = render(b"From: a@sender.test\n\nbody\n", to="u@x.test>\r\nBcc: <x@elsewhere.test").data
    lines, body = split(data)
    assert header_names(lines) == ["message-id", "date", "to", "from"]
    assert lines[2] == b"To: <u@x.test>  Bcc: <x@elsewhere.test>"
    assert body == b"body\r\n"


# What an attacker would put in a CSV cell: line breaks of every kind, NUL, colons, text
# that looks like headers or like the end of the header section, and field syntax.
_NASTY = st.sampled_from(
    [
        "\r",
        "\n",
        "\r\n",
        "\0",
        ":",
        " ",
        "\t",
        "\r\n\r\n",
        "\n\n",
        "\r\r",
        "Bcc: victim@elsewhere.test",
        "\r\nBcc: victim@elsewhere.test\r\n",
        "\nSubject: fake",
        "\r\n\tcontinued",
        "X-Evil:",
        "{{city}}",
        "{{email}}",
        "}}",
        "{{",
        "|",
        "\u0085",
        "\u2028",
        "\x1c",
        "\u00e9",
        "\U0001f4ec",
        "<",
        ">",
        ".",
        "\r\n.\r\n",
        "From: ceo@sender.test",
    ]
)
VALUES = st.lists(st.one_of(_NASTY, st.text(max_size=8)), max_size=8).map("".join)

PROPERTY_TEMPLATE = (
    b"From: Club <news@sender.test>\n"
    b"Subject: Hello {{name}}, from {{city|somewhere}}\n"
    b"X-Folded: first {{name}}\n"
    b"\tsecond {{city}}\n"
    b"Message-ID: <old@sender.test>\n"
    b"Reply-To: {{email}}\n"
    b"Date: Thu, 01 Jan 1970 00:00:00 +0000\n"
)
PROPERTY_BODY = b"Body {{name}} and {{city|x}}\nline2 {{email}}\n.\n"


def _safe(value: str) -> bytes:
    return re.sub("[\r\n\0]", " ", value).encode()


@pytest.mark.parametrize("with_to", [False, True], ids=["to-added", "to-merged"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@given(name=VALUES, city=VALUES, to=VALUES)
def test_no_merge_value_can_create_or_end_a_header(
    with_to: bool, newline: bytes, name: str, city: str, to: str
) -> None:
    head = PROPERTY_TEMPLATE + (b"To: {{name}} <{{email}}>\n" if with_to else b"")
    raw = (head + b"\n" + PROPERTY_BODY).replace(b"\n", newline)
    data = (
        MessageTemplate(raw)
        .render({"name": name, "city": city}, to=to, message_id=MID, date=DATE)
        .data
    )

    header_end = data.index(b"\r\n\r\n")
    head_bytes, body = data[:header_end], data[header_end + 4 :]
    # The header section: CRLF-separated lines, no stray CR, LF or NUL.
    assert b"\r" not in head_bytes.replace(b"\r\n", b"")
    assert b"\n" not in head_bytes.replace(b"\r\n", b"")
    assert b"\0" not in head_bytes
    lines = head_bytes.split(b"\r\n")
    expected = ["message-id", "date"]
    expected += [] if with_to else ["to"]
    expected += ["from", "subject", "x-folded", "reply-to"]
    expected += ["to"] if with_to else []
    assert header_names(lines) == expected
    # Exactly the template's one continuation line, right after X-Folded's first line.
    continuations = [i for i, line in enumerate(lines) if line[:1] in (b" ", b"\t")]
    folded = header_names(lines).index("x-folded")
    first_lines = [i for i, line in enumerate(lines) if line[:1] not in (b" ", b"\t")]
    assert continuations == [first_lines[folded] + 1]
    # Each header's own text is where it belongs.
    name_b, city_b, to_b = _safe(name), _safe(city), _safe(to)
    assert lines[first_lines[0]] == b"Message-ID: " + MID.encode()
    assert lines[first_lines[1]] == b"Date: " + DATE.encode()
    subject = lines[first_lines[expected.index("subject")]]
    assert subject == b"Subject: Hello " + name_b + b", from " + (city_b or b"somewhere")
    assert lines[continuations[0]] == b"\tsecond " + city_b
    if with_to:
        assert lines[-1] == b"To: " + name_b + b" <" + to_b + b">"
    else:
        assert lines[2] == b"To: <" + to_b + b">"
    # The body is intact: the template's body with the values merged, lines in CRLF.
    assert body == (
        b"Body " + name_b + b" and " + (city_b or b"x") + b"\r\nline2 " + to_b + b"\r\n.\r\n"
    )


# ---- the shared sample ---------------------------------------------------------------


@pytest.fixture
def welcome() -> bytes:
    path = SHARED_MESSAGES / "welcome.eml"
    if not path.exists():
        pytest.skip(f"shared sample {path} not present")
    return path.read_bytes()


def test_shared_welcome_sample_renders(welcome: bytes) -> None:
    template = MessageTemplate(welcome)
    assert template.fields == frozenset({"first_name", "last_name", "city"})
    assert template.unknown_fields(["first_name", "last_name", "city"]) == []
    rendered = template.render(
        {"first_name": "Zo\u00eb", "last_name": "Nguy\u1ec5n", "city": "H\u00e0 N\u1ed9i"},
        to="user3@plain.test",
        message_id=MID,
        date=DATE,
    )
    lines, body = split(rendered.data)
    assert header_names(lines) == [
        "message-id",
        "date",
        "to",
        "from",
        "reply-to",
        "subject",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    ]
    assert "Subject: Welcome, Zo\u00eb \u2014 your membership in H\u00e0 N\u1ed9i".encode() in lines
    assert rendered.needs_smtputf8  # the raw UTF-8 Subject (RFC 6532)
    text = body.decode("utf-8")
    assert text.startswith("Hello Zo\u00eb Nguy\u1ec5n,\r\n")
    assert "\r\n.A line that starts with a dot" in text
    assert "\r\n..Two dots too.\r\n" in text
    assert "emoji \U0001f4ec" in text
    assert "{{" not in text
    assert "\n" not in text.replace("\r\n", "")


# ---- Message-ID and Date -------------------------------------------------------------


def test_message_ids_are_unique_and_at_the_senders_domain() -> None:
    ids = [new_message_id("news@sender.test") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for message_id in ids[:50]:
        assert re.fullmatch(r"<[0-9a-f]{32}@sender\.test>", message_id)


def test_message_id_uses_the_last_at_sign() -> None:
    assert new_message_id('"a@b"@sender.test').endswith("@sender.test>")


def test_message_id_with_an_empty_sender_domain() -> None:
    assert new_message_id("nobody@").endswith("@localhost.invalid>")
    assert new_message_id("").endswith("@localhost.invalid>")


def test_bug_message_id_for_a_sender_without_at_sign() -> None:
    assert new_message_id("nobody").endswith("@localhost.invalid>")


_RFC5322_DATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} [+-]\d{4}"
)


@pytest.mark.parametrize("at", [0.0, 1_700_000_000.0, 1_795_000_000.5, 2_000_000_000.0])
def test_date_header_is_rfc5322_and_parses_back(at: float) -> None:
    value = date_header(at)
    assert _RFC5322_DATE.fullmatch(value), value
    parsed = parsedate_to_datetime(value)
    assert parsed.tzinfo is not None
    assert parsed.timestamp() == int(at)


@given(at=st.floats(0, 4_000_000_000))
def test_date_header_round_trips(at: float) -> None:
    value = date_header(at)
    assert _RFC5322_DATE.fullmatch(value)
    # The second ``at`` falls in.
    assert parsedate_to_datetime(value).timestamp() == int(at)


@pytest.fixture
def berlin_time() -> Iterator[None]:
    """The process's local time zone set to one with daylight saving time."""
    if not hasattr(time, "tzset") or not Path("/usr/share/zoneinfo/Europe/Berlin").exists():
        pytest.skip("needs time.tzset and the Europe/Berlin zone")
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_date_header_in_a_dst_zone(berlin_time: None) -> None:
    summer = datetime(2026, 7, 1, 10, 0, tzinfo=UTC).timestamp()
    winter = datetime(2026, 1, 1, 10, 0, tzinfo=UTC).timestamp()
    assert date_header(summer).endswith("12:00:00 +0200")
    assert date_header(winter).endswith("11:00:00 +0100")


@pytest.mark.parametrize("minute", [0, 30, 59, 60, 90, 119])
def test_date_header_in_the_repeated_hour(berlin_time: None, minute: int) -> None:
    """When DST ends, 02:00-03:00 happens twice in Berlin; both must keep their offset
    (a naive local datetime got the first one wrong by an hour)."""
    at = datetime(2026, 10, 25, 0, 0, tzinfo=UTC).timestamp() + minute * 60
    value = date_header(at)
    assert parsedate_to_datetime(value).timestamp() == at
    assert value.endswith("+0200" if minute < 60 else "+0100")


@given(st.text(max_size=40), st.text(max_size=40))
def test_a_rendered_message_has_crlf_line_ends_only(name: str, city: str) -> None:
    # The engine hands rendered messages to the SMTP layer as already CRLF-clean.
    template = MessageTemplate(
        b"From: <a@sender.test>\rSubject: {{name}}\n\nHi {{name}}\r\nfrom {{city}}\n"
    )
    data = template.render(
        {"name": name, "city": city},
        to="x@y.test",
        message_id="<1@sender.test>",
        date="Wed, 25 Nov 2026 10:00:00 +0000",
    ).data
    crlf = data.count(b"\r\n")
    assert data.count(b"\r") == crlf and data.count(b"\n") == crlf
