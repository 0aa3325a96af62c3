"""Templates built from parts, List-Unsubscribe options, and the preview's description of
a rendered message."""

from __future__ import annotations

import pytest

from core.template import (
    Attachment,
    AttachmentInfo,
    MessageParts,
    MessageTemplate,
    TemplateError,
    TemplateOptions,
    describe,
)
from tests.unit.test_template import DATE, MID, addresses, lines_of, parse, render, text_of

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 20

PARTS = MessageParts(
    from_="\u00c9cole Club <news@sender.test>",
    reply_to="help@sender.test",
    subject="{{first_name}}, your {{city|local}} news \u2014 November",
    text="Hello {{first_name}},\n.dotted line\n" + "long line " * 200 + "\nBye",
    html='<p>Hello {{first_name}}</p><a href="https://sender.test/u?e={{email}}">u</a>',
    attachments=(
        Attachment("programme-d\u00e9cembre.pdf", PDF, "application/pdf"),
        Attachment("notes.txt", b"plain notes\n", "text/plain"),
    ),
)


def test_a_template_built_from_parts() -> None:
    template = MessageTemplate.from_parts(PARTS)
    assert template.fields == frozenset({"first_name", "city", "email"})
    data = render(template, {"first_name": "Zo\u00eb", "city": "Oslo"}, to="a@plain.test").data
    assert data.isascii()
    assert all(len(line) <= 78 for line in lines_of(data))
    message = parse(data)
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
        "text/plain",
    ]
    assert addresses(message, "From") == [("\u00c9cole Club", "news@sender.test")]
    assert addresses(message, "Reply-To") == [("", "help@sender.test")]
    assert str(message["Subject"]) == "Zo\u00eb, your Oslo news \u2014 November"
    assert text_of(message) == "Hello Zo\u00eb,\n.dotted line\n" + "long line " * 200 + "\nBye"
    assert text_of(message, "html") == (
        '<p>Hello Zo\u00eb</p><a href="https://sender.test/u?e=a%40plain.test">u</a>'
    )
    pdf, notes = message.iter_attachments()
    assert pdf.get_filename() == "programme-d\u00e9cembre.pdf"
    assert pdf.get_payload(decode=True) == PDF
    assert notes.get_payload(decode=True) == b"plain notes\n"


def test_the_source_of_a_built_template_recompiles_identically() -> None:
    built = MessageTemplate.from_parts(PARTS)
    assert MessageTemplate.from_parts(PARTS).source == built.source  # deterministic
    resumed = MessageTemplate(built.source)
    fields = {"first_name": "\u65e5\u672c"}
    assert render(resumed, fields).data == render(built, fields).data


@pytest.mark.parametrize(
    ("html", "attachments", "types"),
    [
        (None, (), ["text/plain"]),
        ("<p>x</p>", (), ["multipart/alternative", "text/plain", "text/html"]),
        (
            None,
            (Attachment("a.bin", b"\x00"),),
            ["multipart/mixed", "text/plain", "application/octet-stream"],
        ),
    ],
)
def test_the_structure_follows_the_parts(
    html: str | None, attachments: tuple[Attachment, ...], types: list[str]
) -> None:
    parts = MessageParts("a@sender.test", "Hi", "Hello {{name}}", html, attachments=attachments)
    data = render(MessageTemplate.from_parts(parts), {"name": "Ann"}).data
    assert [p.get_content_type() for p in parse(data).walk()] == types
    assert text_of(parse(data)) == "Hello Ann"


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        (MessageParts("", "Hi", "x"), "needs a From address"),
        (MessageParts("a@sender.test", "Hi\nBcc: x@y.test", "x"), "Subject cannot hold line"),
        (MessageParts("news", "Hi", "x"), "has no domain"),
        (
            MessageParts("a@sender.test", "Hi", "x", attachments=(Attachment("a", b"", "pdf"),)),
            "no valid content type",
        ),
        (
            MessageParts("a@sender.test", "Hi", "x", attachments=(Attachment("", b""),)),
            "needs a file name",
        ),
    ],
)
def test_parts_that_make_no_message_are_clear_errors(parts: MessageParts, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        MessageTemplate.from_parts(parts)


# ---- List-Unsubscribe ----------------------------------------------------------------


def _unsubscribe(
    options: TemplateOptions, raw: bytes = b"From: a@sender.test\n\nhi\n"
) -> list[bytes]:
    data = (
        MessageTemplate(raw, options=options)
        .render({"token": "t/1 2"}, to="ann+x@plain.test", message_id=MID, date=DATE)
        .data
    )
    return [line for line in lines_of(data) if line.lower().startswith(b"list-unsubscribe")]


def test_list_unsubscribe_with_one_click() -> None:
    options = TemplateOptions(
        list_unsubscribe_mailto="unsubscribe@sender.test",
        list_unsubscribe_url="https://sender.test/u?e={{email}}&t={{token}}",
    )
    assert _unsubscribe(options) == [
        b"List-Unsubscribe: <mailto:unsubscribe@sender.test>,",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
    ]
    data = (
        MessageTemplate(b"From: a@sender.test\n\nhi\n", options=options)
        .render({"token": "t/1 2"}, to="ann+x@plain.test", message_id=MID, date=DATE)
        .data
    )
    assert str(parse(data)["List-Unsubscribe"]) == (
        "<mailto:unsubscribe@sender.test>, "
        "<https://sender.test/u?e=ann%2Bx%40plain.test&t=t%2F1%202>"
    )


def test_list_unsubscribe_mailto_only_has_no_one_click() -> None:
    options = TemplateOptions(list_unsubscribe_mailto="mailto:u@sender.test?subject={{email}}")
    assert _unsubscribe(options) == [
        b"List-Unsubscribe: <mailto:u@sender.test?subject=ann%2Bx%40plain.test>"
    ]


def test_the_options_replace_the_templates_own_list_unsubscribe() -> None:
    raw = (
        b"From: a@sender.test\nList-Unsubscribe: <mailto:old@sender.test>\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\n\nhi\n"
    )
    options = TemplateOptions(list_unsubscribe_url="https://sender.test/u")
    assert _unsubscribe(options, raw) == [
        b"List-Unsubscribe: <https://sender.test/u>",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
    ]


def test_a_templates_own_list_unsubscribe_gets_its_fields_percent_encoded() -> None:
    raw = b"From: a@sender.test\nList-Unsubscribe: <https://sender.test/u?e={{email}}>\n\nhi\n"
    assert _unsubscribe(TemplateOptions(), raw) == [
        b"List-Unsubscribe: <https://sender.test/u?e=ann%2Bx%40plain.test>"
    ]


def test_option_fields_count_as_fields() -> None:
    options = TemplateOptions(list_unsubscribe_url="https://sender.test/u?t={{token}}")
    template = MessageTemplate(b"From: a@sender.test\n\nhi\n", options=options)
    assert template.unknown_fields([]) == ["token"]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (TemplateOptions(list_unsubscribe_url="http://sender.test/u"), "must start with https://"),
        (TemplateOptions(list_unsubscribe_url="sender.test/u"), "must start with https://"),
        (TemplateOptions(list_unsubscribe_mailto="unsubscribe"), "neither an address"),
        (TemplateOptions(list_unsubscribe_url="https://sender.test/a b"), "is not a URL"),
        (TemplateOptions(list_unsubscribe_url="https://sender.test/>x"), "is not a URL"),
        (
            TemplateOptions(list_unsubscribe_mailto="mailto:d\u00e9sinscription@x.test"),
            "is not a URL",
        ),
    ],
)
def test_bad_list_unsubscribe_options_are_clear_errors(
    options: TemplateOptions, match: str
) -> None:
    with pytest.raises(TemplateError, match=match):
        MessageTemplate(b"From: a@sender.test\n\nhi\n", options=options)


# ---- preview -------------------------------------------------------------------------


def test_preview_describes_a_rendered_message() -> None:
    template = MessageTemplate.from_parts(PARTS)
    rendered = template.preview({"first_name": "Zo\u00eb"}, to="ann@plain.test", date=DATE)
    preview = describe(rendered.data)
    assert preview.header("Message-ID") == "<preview@mxmailer.invalid>"
    assert preview.header("subject") == "Zo\u00eb, your local news \u2014 November"
    assert preview.header("From") == "\u00c9cole Club <news@sender.test>"
    assert preview.header("X-Nothing") is None
    assert [name for name, _ in preview.headers][:3] == ["Message-ID", "Date", "To"]
    assert preview.text is not None and preview.text.startswith("Hello Zo\u00eb,\n.dotted")
    assert preview.html is not None and "Hello Zo\u00eb" in preview.html
    assert preview.attachments == (
        AttachmentInfo("programme-d\u00e9cembre.pdf", "application/pdf", len(PDF)),
        AttachmentInfo("notes.txt", "text/plain", len(b"plain notes\n")),
    )


def test_preview_of_a_plain_message() -> None:
    preview = describe(render(b"From: a@sender.test\n\nhi {{x}}\n", {"x": "there"}).data)
    assert preview.text == "hi there\n"
    assert preview.html is None
    assert preview.attachments == ()


def test_preview_stamps_now_when_no_date_is_given() -> None:
    rendered = MessageTemplate(b"From: a@sender.test\n\nhi\n").preview({}, to="a@x.test")
    assert describe(rendered.data).header("Date")


def test_preview_of_a_message_for_an_internationalised_address() -> None:
    rendered = render(b"From: a@sender.test\n\nhi\n", to="j\u00fcrgen@b\u00fccher.test")
    assert rendered.needs_smtputf8
    assert describe(rendered.data).header("To") == "j\u00fcrgen@xn--bcher-kva.test"
