"""The campaign's .eml with ``{{field}}`` merged in: parsing, rendering, and the rule that
no merge value can ever create or end a header.

The helpers at the top (``render``, ``split``, ``parse``, ``addresses``) are shared with
the ``test_message_*`` files.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, Parser
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.recipients import check_address, field_name
from core.template import (
    MessageTemplate,
    RenderedMessage,
    TemplateError,
    TemplateOptions,
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


def parse(data: bytes) -> EmailMessage:
    """The stdlib's reading; raw UTF-8 headers (RFC 6532, SMTPUTF8) read as text, since
    the bytes parser would take them for undecodable bytes."""
    if data.isascii():
        message = BytesParser(policy=policy.default).parsebytes(data)
    else:
        message = Parser(policy=policy.default).parsestr(data.decode("utf-8"))
    assert isinstance(message, EmailMessage)
    return message


def raw_header(message: EmailMessage, name: str) -> str:
    """A header's value as sent, unfolded (RFC 5322 §2.2.3)."""
    [value] = [v for n, v in message.raw_items() if n.lower() == name.lower()]
    return value.replace("\r\n", "").replace("\n", "")


def addresses(message: EmailMessage, name: str) -> list[tuple[str, str]]:
    """(display name, address) of each mailbox in an address header, decoded.

    RFC 2047 §6.2: the whitespace between adjacent encoded words is not text. Python's
    address parser before 3.14 keeps it (CPython gh-128110), so it is removed first.
    """
    value = re.sub(r"\?=\s+=\?", "?==?", raw_header(message, name))
    header = policy.default.header_factory("to", value)
    return [(a.display_name, a.addr_spec) for a in header.addresses]  # type: ignore[attr-defined]


def text_of(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body((subtype,))
    assert isinstance(part, EmailMessage), f"no text/{subtype} part"
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def lines_of(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


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
        (b"{a} {{{a}}} }} {x}", {"a"}),
        (b"{{x}}{{y|z}}{{x}}", {"x", "y"}),
        # What the importer makes of "Prénom", "Prix (€)", "N°", "Téléphone #2", "日本語".
        ("{{pr\u00e9nom}}".encode(), {"pr\u00e9nom"}),
        ("{{prix_(\u20ac)}} {{n\u00b0}}".encode(), {"prix_(\u20ac)", "n\u00b0"}),
        (
            "{{t\u00e9l\u00e9phone_#2}} {{\u65e5\u672c\u8a9e}}".encode(),
            {"t\u00e9l\u00e9phone_#2", "\u65e5\u672c\u8a9e"},
        ),
    ],
)
def test_field_syntax(text: bytes, fields: set[str]) -> None:
    template = MessageTemplate(b"From: a@sender.test\n\n" + text + b"\n")
    assert template.fields == frozenset(fields)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (b"Dear {{first name}},", "'{{first name}}'"),
        (b"{{ }}", "'{{ }}'"),
        (b"{{}}", "'{{}}'"),
        (b"Dear {{first_name", "'{{first_name"),
        (b"{{a}} and {{b", "'{{b"),
        (b"{{a b|c}}", "'{{a b|c}}'"),
        (b"{{first_name, welcome}}", "'{{first_name, welcome}}'"),
        (b"{{a " + b"x" * 100 + b"}}", "'{{a'\u2026"),
    ],
)
@pytest.mark.parametrize("where", ["body", "subject", "from", "html", "quoted-printable"])
def test_a_brace_pair_that_is_not_a_field_is_an_error(text: bytes, shown: str, where: str) -> None:
    """Neither a field nor text to send as it is: the template is refused, saying what
    was written and how a field is written."""
    raw = {
        "body": b"From: a@sender.test\n\n" + text + b"\n",
        "subject": b"From: a@sender.test\nSubject: " + text + b"\n\nhi\n",
        "from": b"From: " + text + b" <a@sender.test>\n\nhi\n",
        "html": b"From: a@sender.test\nContent-Type: text/html\n\n<p>" + text + b"</p>\n",
        "quoted-printable": b"From: a@sender.test\nContent-Transfer-Encoding: quoted-printable\n\n"
        + text.replace(b"{", b"=7B")
        + b"\n",
    }[where]
    with pytest.raises(TemplateError) as error:
        MessageTemplate(raw)
    assert shown in str(error.value)
    assert "{{name}} or {{name|default}}" in str(error.value)
    if where in ("subject", "from"):
        assert f"the {where.capitalize()} header" in str(error.value)


def test_a_list_unsubscribe_option_that_is_not_a_field_is_an_error() -> None:
    options = TemplateOptions(list_unsubscribe_url="https://x.test/u?t={{tok en}}")
    with pytest.raises(TemplateError, match=r"List-Unsubscribe URL has '\{\{tok en\}\}'"):
        MessageTemplate(b"From: a@sender.test\n\nhi\n", options=options)


@given(st.text(min_size=1, max_size=30))
def test_every_column_the_importer_names_can_be_a_field(header: str) -> None:
    """A field is named as ``field_name`` names a column; only ``{``, ``}`` and ``|``,
    the syntax itself, cannot be part of a name."""
    name = field_name(header)
    assume(name and not set(name) & set("{}|"))
    template = MessageTemplate(b"From: a@sender.test\n\nHi {{" + name.encode() + b"}}!\n")
    assert template.fields == {name}
    assert text_of(parse(render(template, {name: "Ann"}).data)) == "Hi Ann!\n"


def test_non_ascii_fields_in_every_place() -> None:
    """\u00ab Pr\u00e9nom \u00bb, \u00ab Soci\u00e9t\u00e9 \u00bb columns become fields wherever the
    template says so, the template's text being raw UTF-8, RFC 2047-encoded, quoted-printable
    or base64."""
    html = '<a href="https://x.test/?p={{pr\u00e9nom}}">{{pr\u00e9nom}} &amp; co</a>\n'
    raw = (
        "From: =?utf-8?q?{{soci=C3=A9t=C3=A9}}?= <news@sender.test>\n"
        "To: {{pr\u00e9nom}} <x@x.test>\n"
        "Subject: Bonjour {{pr\u00e9nom}}\n"
        "X-Encoded: =?utf-8?q?Salut_{{pr=C3=A9nom}}?=\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="b"\n\n'
        "--b\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "Bonjour {{pr=C3=A9nom}} de {{soci=C3=A9t=C3=A9|nulle part}}\n"
        "--b\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        + base64.b64encode(html.encode()).decode()
        + "\n--b--\n"
    ).encode()
    template = MessageTemplate(raw)
    assert template.fields == {"pr\u00e9nom", "soci\u00e9t\u00e9"}
    assert template.unknown_fields(["pr\u00e9nom", "soci\u00e9t\u00e9"]) == []
    rendered = render(template, {"pr\u00e9nom": "Ren\u00e9e", "soci\u00e9t\u00e9": "Zo\u00eb & Co"})
    assert not rendered.needs_smtputf8
    message = parse(rendered.data)
    assert addresses(message, "from") == [("Zo\u00eb & Co", "news@sender.test")]
    assert addresses(message, "to") == [("Ren\u00e9e", "u@x.test")]
    assert str(message["subject"]) == "Bonjour Ren\u00e9e"
    assert str(message["x-encoded"]) == "Salut Ren\u00e9e"
    assert text_of(message) == "Bonjour Ren\u00e9e de Zo\u00eb & Co"
    assert text_of(message, "html") == (
        '<a href="https://x.test/?p=Ren%C3%A9e">Ren\u00e9e &amp; co</a>\n'
    )


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
    "value",
    [b"Club <news>", b"news", b"<news@>", b"Club <@sender.test>"],
)
def test_a_from_address_without_a_domain_is_a_clear_error(value: bytes) -> None:
    with pytest.raises(TemplateError, match="has no domain"):
        MessageTemplate(b"From: " + value + b"\n\nbody\n")


def test_a_from_without_any_address_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match="names no address"):
        MessageTemplate(b"From: \n\nbody\n")


def test_two_from_headers_are_an_error() -> None:
    with pytest.raises(TemplateError, match="more than one From"):
        MessageTemplate(b"From: a@sender.test\nFrom: b@sender.test\n\nbody\n")


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"This is not a header", id="no-colon"),
        pytest.param(b": no name", id="empty-name"),
        pytest.param(b" : x", id="first-line-indented-without-name"),
        pytest.param(b"Na me: x", id="space-in-name"),
        pytest.param("Sübject: x".encode(), id="non-ascii-name"),
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


def test_a_header_that_is_not_utf8_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match="Subject header holds bytes that are not UTF-8"):
        MessageTemplate(b"From: a@sender.test\nSubject: caf\xe9\n\nbody\n")


def test_folded_headers_are_unfolded_merged_and_folded_again() -> None:
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
    # A header without fields is kept as written; one with fields is rendered unfolded
    # (its whitespace kept) and folded again only where it needs to be.
    assert header_names(lines) == ["message-id", "date", "to", "from", "subject"]
    assert lines[3:] == [
        b"From:",
        b" Example Club <news@sender.test>",
        b"Subject: Welcome,\tAnn  and friends",
    ]
    assert body == b"body\r\n"


# ---- rendering -----------------------------------------------------------------------

QP_PLAIN = [
    b"MIME-Version: 1.0",
    b'Content-Type: text/plain; charset="utf-8"',
    b"Content-Transfer-Encoding: quoted-printable",
]


def test_render_merges_headers_and_body() -> None:
    data = render(SIMPLE, {"first_name": "Ann", "city": "Oslo"}).data
    lines, body = split(data)
    # A body with fields is served as UTF-8 quoted-printable: the MIME headers that say so
    # are added to a message that had none.
    assert lines == [
        b"Message-ID: " + MID.encode(),
        b"Date: " + DATE.encode(),
        b"To: <u@x.test>",
        b"From: Club <news@sender.test>",
        b"Subject: Hello Ann",
        *QP_PLAIN,
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
    assert str(parse(data)["Subject"]) == "{{b}}"
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


def test_headers_of_a_previous_delivery_and_bcc_are_dropped() -> None:
    raw = (
        b"Return-Path: <bounce@elsewhere.test>\n"
        b"Received: from mx.elsewhere.test by mx.sender.test\n"
        b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; b=abc\n"
        b"From: a@sender.test\n"
        b"Bcc: boss@sender.test\n"
        b"X-Campaign: autumn\n"
        b"\n"
        b"body\n"
    )
    lines, _ = split(render(raw).data)
    assert header_names(lines) == ["message-id", "date", "to", "from", "x-campaign"]


def test_to_is_added_when_absent() -> None:
    data = render(b"From: a@sender.test\n\nbody\n", to="u@x.test").data
    assert split(data)[0][2] == b"To: <u@x.test>"


@pytest.mark.parametrize("name", [b"To", b"TO", b"to"])
def test_to_keeps_its_place_and_display_name_with_the_recipients_address(name: bytes) -> None:
    raw = b"From: a@sender.test\n" + name + b": {{name|Member}} <{{email}}>\n\nbody\n"
    lines, _ = split(render(raw, {"name": "Ann"}, to="u@x.test").data)
    assert header_names(lines) == ["message-id", "date", "from", "to"]
    assert lines[-1] == name + b": Ann <u@x.test>"
    lines, _ = split(render(raw, {}, to="u@x.test").data)
    assert lines[-1] == name + b": Member <u@x.test>"


def test_the_templates_to_address_is_replaced_by_the_recipients() -> None:
    raw = b"From: a@sender.test\nTo: Dear Reader <placeholder@sender.test>\n\nbody\n"
    assert split(render(raw, to="u@x.test").data)[0][-1] == b"To: Dear Reader <u@x.test>"


@pytest.mark.parametrize(
    "to",
    [b"a@x.test, b@x.test", b"friends: a@x.test, b@x.test;", b"undisclosed-recipients:;"],
)
def test_a_to_naming_anything_but_one_address_is_an_error(to: bytes) -> None:
    with pytest.raises(TemplateError, match="To holds one address"):
        MessageTemplate(b"From: a@sender.test\nTo: " + to + b"\n\nbody\n")


def test_the_same_arguments_give_the_same_bytes() -> None:
    """Message-ID and Date are fixed at the first attempt so retries send equal bytes."""
    template = MessageTemplate(SIMPLE)
    fields = {"first_name": "Ann", "city": "Oslo"}
    assert render(template, fields).data == render(template, fields).data


def test_the_stored_source_recompiles_to_the_same_messages() -> None:
    """A resumed campaign recompiles the .eml it stored: it must send the same bytes."""
    path = SHARED_MESSAGES / "newsletter-with-attachment.eml"
    if not path.exists():
        pytest.skip(f"shared sample {path} not present")
    first = MessageTemplate(path.read_bytes())
    again = MessageTemplate(first.source)
    assert first.source == path.read_bytes()
    fields = {"first_name": "Zo\u00eb"}
    assert render(first, fields).data == render(again, fields).data


def test_a_seven_bit_body_without_fields_is_kept_byte_for_byte() -> None:
    raw = b"From: a@sender.test\n\nplain text\r\n.dot\r\n..two\r\n\r\n\r\nend = 1  "
    lines, body = split(render(raw).data)
    assert header_names(lines) == ["message-id", "date", "to", "from"]
    assert body == b"plain text\r\n.dot\r\n..two\r\n\r\n\r\nend = 1  "


def test_an_eight_bit_body_without_fields_is_made_quoted_printable() -> None:
    raw = b"From: a@sender.test\n\ncaf\xc3\xa9\r\n.dot\r\n"
    data = render(raw).data
    lines, body = split(data)
    assert lines[-3:] == QP_PLAIN
    assert body == b"caf=C3=A9\r\n.dot\r\n"
    assert data.isascii()
    assert text_of(parse(data)) == "caf\u00e9\n.dot\n"


@pytest.mark.parametrize(
    ("raw", "fields", "to", "smtputf8"),
    [
        pytest.param(b"Subject: hi\n\nbody\n", {}, "u@x.test", False, id="ascii"),
        pytest.param(
            b"Subject: hi\n\nna\xc3\xafve {{x}}\n",
            {"x": "\u00e9"},
            "u@x.test",
            False,
            id="non-ascii-body",
        ),
        pytest.param(
            b"Subject: hi {{x}}\n\nbody\n",
            {"x": "Zo\u00eb"},
            "u@x.test",
            False,
            id="non-ascii-merged-into-subject",
        ),
        pytest.param(
            b"Subject: caf\xc3\xa9\n\nbody\n", {}, "u@x.test", False, id="non-ascii-template-header"
        ),
        pytest.param(
            b"Subject: hi\n\nbody\n",
            {},
            "u@b\u00fccher.test",
            False,
            id="non-ascii-domain-only",
        ),
        pytest.param(
            b"Subject: hi\n\nbody\n",
            {},
            "j\u00fcrgen@b\u00fccher.test",
            True,
            id="non-ascii-local-part",
        ),
        pytest.param(
            b"Reply-To: {{x}}\n\nbody\n",
            {"x": "\u00e5sa@x.test"},
            "u@x.test",
            True,
            id="non-ascii-local-part-merged-into-reply-to",
        ),
    ],
)
def test_needs_smtputf8_only_for_a_non_ascii_local_part(
    raw: bytes, fields: dict[str, str], to: str, smtputf8: bool
) -> None:
    rendered = render(b"From: a@sender.test\n" + raw, fields, to=to)
    assert rendered.needs_smtputf8 is smtputf8
    assert rendered.data.isascii() is not smtputf8


def test_an_internationalised_domain_goes_out_as_its_a_label() -> None:
    data = render(b"From: a@sender.test\n\nbody\n", to="u@b\u00fccher.test").data
    assert split(data)[0][2] == b"To: <u@xn--bcher-kva.test>"


IDN_DOMAINS = [
    "stra\u00dfe.de",  # IDNA 2003 made it strasse.de: another domain
    "\u03c2\u03bf\u03c6\u03af\u03b1.gr",  # final sigma, likewise kept
    "b\u00fccher.test",
    "B\u00fccher.TEST",
    "\u65e5\u672c\u8a9e\u3002jp",  # ideographic full stop
    "\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com",  # full-width
    "\u0645\u062b\u0627\u0644.\u0625\u062e\u062a\u0628\u0627\u0631",
]


@pytest.mark.parametrize("domain", IDN_DOMAINS)
def test_the_to_domain_is_the_one_rcpt_to_names(domain: str) -> None:
    """IDNA 2008 (UTS #46, non-transitional) as email-validator applies it for RCPT TO:
    the To header names the mailbox the message is delivered to."""
    checked = check_address(f"anna@{domain}")
    assert not isinstance(checked, str)
    template = b"From: Club <news@sender.test>\nTo: {{n}} <x@x.test>\n\nhi\n"
    for to in (f"anna@{domain}", checked.email):
        for raw in (template, b"From: news@sender.test\n\nhi\n"):
            rendered = render(raw, {"n": "Anna"}, to=to)
            assert not rendered.needs_smtputf8
            [(_, address)] = addresses(parse(rendered.data), "to")
            assert address == f"anna@{checked.domain}"
    assert new_message_id(f"news@{domain}").endswith(f"@{checked.domain}>")
    data = render(f"From: <news@{domain}>\n\nhi\n".encode()).data
    assert addresses(parse(data), "from") == [("", f"news@{checked.domain}")]


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        # IDNA 2008 refuses these: IDNA 2003's reading, less what a host name cannot hold.
        ("\u2474.test", "1.test"),
        ("a\u200d\u00e9.test", "xn--a-bga.test"),
    ],
)
def test_a_domain_idna_2008_refuses_falls_back(domain: str, expected: str) -> None:
    data = render(f"From: <news@{domain}>\n\nhi\n".encode()).data
    assert addresses(parse(data), "from") == [("", f"news@{expected}")]


# ---- List-*, References: phrases encoded, URL lists ASCII -----------------------------


@pytest.mark.parametrize(
    ("list_id", "fields", "shown"),
    [
        (b"Les amis de Zo\xc3\xab <amis.sender.test>", {}, "Les amis de Zo\u00eb"),
        (b'"Zo\xc3\xab\'s \\"list\\"" <z.sender.test>', {}, 'Zo\u00eb\'s "list"'),
        (b"=?utf-8?q?Zo=C3=AB?= <z.sender.test>", {}, "Zo\u00eb"),
        (b"{{club}} news <news.sender.test>", {"club": "Caf\u00e9"}, "Caf\u00e9 news"),
        (b"{{club}} news <news.sender.test>", {"club": " "}, "news"),
    ],
)
def test_list_id_has_its_description_as_a_phrase(
    list_id: bytes, fields: dict[str, str], shown: str
) -> None:
    """RFC 2919: a description (a phrase: encoded words when not ASCII), then <list-id>.
    Raw UTF-8 would need SMTPUTF8, which most servers do not offer."""
    rendered = render(b"From: a@sender.test\nList-Id: " + list_id + b"\n\nhi\n", fields)
    assert not rendered.needs_smtputf8
    assert rendered.data.isascii()
    value = str(parse(rendered.data)["list-id"])
    identifier = list_id.decode().rpartition(" ")[2]
    assert value == f"{shown} {identifier}"


@pytest.mark.parametrize(
    "header",
    [
        b"List-Unsubscribe: <https://x.test/d\xc3\xa9sabonner>",
        b"List-Help: <mailto:aide@x.test> (l'\xc3\xa9quipe)",
        b"List-Archive: <https://x.test/archiv\xc3\xa9s>",
        b"List-Post: <mailto:\xc3\xa9@x.test>",
        b"References: <a@x.test> <\xc3\xa9@x.test>",
        b"In-Reply-To: <\xc3\xa9@x.test>",
        b"List-Id: Zo\xc3\xab <zo\xc3\xab.sender.test>",
    ],
)
def test_non_ascii_in_a_header_that_is_never_encoded_is_an_error(header: bytes) -> None:
    with pytest.raises(TemplateError, match=r"cannot carry .*(percent-encode|is ASCII)"):
        MessageTemplate(b"From: a@sender.test\n" + header + b"\n\nhi\n")


def test_values_in_url_lists_and_references_stay_ascii() -> None:
    raw = (
        b"From: a@sender.test\n"
        b"List-Help: <https://x.test/h?n={{name}}> ({{name}})\n"
        b"References: <{{ref}}>\n"
        b"List-Software: Caf\xc3\xa9 {{name}}\n"
        b"\nhi\n"
    )
    rendered = render(raw, {"name": "Zo\u00eb", "ref": "r.1@sender.test"})
    assert not rendered.needs_smtputf8
    message = parse(rendered.data)
    assert raw_header(message, "list-help") == "<https://x.test/h?n=Zo%C3%AB> (Zo%C3%AB)"
    assert raw_header(message, "references") == "<r.1@sender.test>"
    assert str(message["list-software"]) == "Caf\u00e9 Zo\u00eb"


def test_a_long_run_of_spaces_makes_no_blank_header_line() -> None:
    """A line of nothing but spaces reads as the end of the header section to some
    readers; a run of spaces in a header means one space."""
    raw = b"From: a@sender.test\nList-Help: <https://x.test/h> {{v}}\nSubject: {{v}}\n\nhi\n"
    for value in ["a" + " " * 1200 + "b", "a" + "\t " * 1000 + "b", " " * 3000 + "b" * 1500]:
        lines, _ = split(render(raw, {"v": value}).data)
        assert all(line.strip(b" \t") for line in lines)
        assert max(map(len, lines)) <= 998
        assert str(parse(render(raw, {"v": value}).data)["subject"]) == value.strip()


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
        "\r\n.\r\nMAIL FROM:<x@elsewhere.test>\r\n",
    ],
)
def test_injection_attempts_stay_inside_their_header(value: str) -> None:
    raw = b"From: a@sender.test\nSubject: Hi {{name}}\nTo: {{name}} <{{email}}>\n\nHi {{name}}\n"
    data = render(raw, {"name": value}, to="u@x.test\r\nBcc: x@elsewhere.test").data
    lines, _ = split(data)
    assert header_names(lines) == [
        "message-id",
        "date",
        "from",
        "subject",
        "to",
        *["mime-version", "content-type", "content-transfer-encoding"],
    ]
    assert b"\0" not in data
    safe = re.sub("[\r\n\0]", " ", value)
    message = parse(data)
    assert str(message["Subject"]) == f"Hi {safe}".strip(" \t")
    [(display, address)] = addresses(message, "To")
    assert display == " ".join(safe.split())
    assert address == '"u@x.test  Bcc: x"@elsewhere.test'
    assert text_of(message) == f"Hi {safe}\n"


def test_recipient_address_cannot_inject_into_the_added_to() -> None:
    data = render(b"From: a@sender.test\n\nbody\n", to="u@x.test>\r\nBcc: <x@elsewhere.test").data
    lines, body = split(data)
    assert header_names(lines) == ["message-id", "date", "to", "from"]
    assert lines[2] == b'To: <"u@x.test>  Bcc: <x"@elsewhere.test>'
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
        "=?utf-8?q?x?=",
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


def _safe(value: str) -> str:
    return re.sub("[\r\n\0]", " ", value)


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
    head_bytes = data[:header_end]
    # The header section: CRLF-separated lines, no stray CR, LF or NUL.
    assert b"\r" not in head_bytes.replace(b"\r\n", b"")
    assert b"\n" not in head_bytes.replace(b"\r\n", b"")
    assert b"\0" not in head_bytes
    assert all(len(line) <= 998 for line in lines_of(data))
    expected = ["message-id", "date"]
    expected += [] if with_to else ["to"]
    expected += ["from", "subject", "x-folded", "reply-to"]
    expected += ["to"] if with_to else []
    expected += ["mime-version", "content-type", "content-transfer-encoding"]
    assert header_names(head_bytes.split(b"\r\n")) == expected
    # Each header's own text is where it belongs.
    name_s, city_s, to_s = _safe(name), _safe(city), _safe(to)
    message = parse(data)
    assert str(message["Message-ID"]) == MID
    assert str(message["Subject"]) == f"Hello {name_s}, from {city_s or 'somewhere'}".strip(" \t")
    assert str(message["X-Folded"]) == f"first {name_s}\tsecond {city_s}".strip(" \t")
    [(display, _)] = addresses(message, "To")
    # A display name's whitespace runs are not content (readers show one space, Python
    # also for U+0085 and the like).
    assert display.split() == (name_s.split() if with_to else [])
    # The body is intact: the template's body with the values merged.
    assert text_of(message) == f"Body {name_s} and {city_s or 'x'}\nline2 {to_s}\n.\n"


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
    # The raw UTF-8 Subject (RFC 6532) and the 8bit body go out 7-bit.
    assert not rendered.needs_smtputf8
    assert rendered.data.isascii()
    assert lines[-1] == b"Content-Transfer-Encoding: quoted-printable"
    assert all(len(line) <= 76 for line in lines_of(body))
    message = parse(rendered.data)
    assert str(message["Subject"]) == (
        "Welcome, Zo\u00eb \u2014 your membership in H\u00e0 N\u1ed9i"
    )
    text = text_of(message)
    assert text.startswith("Hello Zo\u00eb Nguy\u1ec5n,\n")
    assert "\n.A line that starts with a dot" in text
    assert "\n..Two dots too.\n" in text
    assert "emoji \U0001f4ec" in text
    assert "{{" not in text


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


def test_message_id_at_an_internationalised_domain_is_ascii() -> None:
    assert new_message_id("news@b\u00fccher.test").endswith("@xn--bcher-kva.test>")


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


@pytest.mark.parametrize(
    ("raw", "content"),
    [
        (b"From: a@sender.test\n\nbefore\0after\n", "text/plain"),
        (
            b"From: a@sender.test\nContent-Type: application/x-data\n\nab\0cd\n",
            "application/x-data",
        ),
    ],
)
def test_a_nul_in_the_template_is_encoded_not_sent(raw: bytes, content: str) -> None:
    """Regression (fuzzing): a NUL is ASCII but not 7-bit data (RFC 2045 §2.7), and it
    went out raw; now the part is re-encoded and decodes to the same octets."""
    data = MessageTemplate(raw).render({}, to="ann@x.test", message_id=MID, date=DATE).data
    assert b"\0" not in data
    [part] = [p for p in parse(data).walk() if p.get_content_type() == content]
    assert part.get_payload(decode=True) == raw.partition(b"\n\n")[2].replace(b"\n", b"\r\n")
