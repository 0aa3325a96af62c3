"""The MIME tree of a template: kept byte-exact where it can travel, re-encoded once where
it cannot, personalised per part, and read strictly (clear errors, never a broken
message)."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.message import parts
from core.message.entity import crlf
from core.template import Attachment, MessageParts, MessageTemplate, TemplateError
from tests.unit.test_template import (
    SHARED_MESSAGES,
    lines_of,
    parse,
    render,
    split,
    text_of,
)


@pytest.fixture
def newsletter() -> bytes:
    path = SHARED_MESSAGES / "newsletter-with-attachment.eml"
    if not path.exists():
        pytest.skip(f"shared sample {path} not present")
    return path.read_bytes()


def _leaves(data: bytes) -> list[tuple[str, bytes]]:
    return [
        (part.get_content_type(), part.get_payload(decode=True))  # type: ignore[misc]
        for part in parse(data).walk()
        if not part.is_multipart()
    ]


def test_newsletter_keeps_its_structure_and_its_attachment_bytes(newsletter: bytes) -> None:
    data = render(newsletter, {"first_name": "Zo\u00eb"}, to="ann+news@plain.test").data
    assert data.isascii()
    assert all(len(line) <= 998 for line in lines_of(data))
    message = parse(data)
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]
    # The base64 attachment goes out as the file's own bytes, never re-encoded.
    block = newsletter.split(b"MIME-Version: 1.0\n\n")[-1].split(b"\n\n--")[0]
    assert block.replace(b"\n", b"\r\n") in data
    [(_, pdf)] = [leaf for leaf in _leaves(data) if leaf[0] == "application/pdf"]
    assert pdf == base64.b64decode(block)
    assert text_of(message).startswith("Hi Zo\u00eb,\n\nThe plain-text part")
    html = text_of(message, "html")
    assert "<h1>Hi Zo\u00eb</h1>" in html
    assert 'href="https://sender.test/unsub?u=ann%2Bnews%40plain.test"' in html


def test_quoted_printable_lines_stay_within_76(newsletter: bytes) -> None:
    data = render(newsletter, {"first_name": "\u65e5\u672c\u8a9e" * 40}).data
    _, body = split(data)
    text = body.split(b"application/pdf")[0]
    assert max(map(len, lines_of(text))) <= 76


def test_a_base64_text_part_with_fields_becomes_quoted_printable() -> None:
    text = b"Hello {{name}},\nsee you.\n"
    raw = (
        b"From: a@sender.test\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(text)
    )
    data = render(raw, {"name": "Zo\u00eb"}).data
    lines, body = split(data)
    assert b"Content-Transfer-Encoding: quoted-printable" in lines
    assert body == b"Hello Zo=C3=AB,\r\nsee you.\r\n"


def test_a_base64_part_without_fields_is_left_alone() -> None:
    encoded = base64.encodebytes("na\u00efve text".encode()).replace(b"\n", b"\r\n")
    raw = (
        b"From: a@sender.test\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
    )
    assert split(render(raw).data)[1] == encoded


def test_a_latin1_part_with_fields_is_sent_as_utf8() -> None:
    raw = (
        b"From: a@sender.test\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n"
        b"Gr\xfc\xdfe {{name}}\n"
    )
    data = render(raw, {"name": "\u65e5\u672c"}).data
    lines, _ = split(data)
    assert b'Content-Type: text/plain; charset="utf-8"' in lines
    assert text_of(parse(data)) == "Gr\u00fc\u00dfe \u65e5\u672c\n"


def test_an_eight_bit_attachment_is_made_base64() -> None:
    payload = bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"")
    raw = (
        b"From: a@sender.test\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b1"\n\n'
        b"--b1\nContent-Type: text/plain\n\nhi\n"
        b"--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: 8bit\n\n"
        + payload
        + b"\n--b1--\n"
    )
    data = render(raw).data
    assert data.isascii()
    assert (_leaves(data)[1]) == ("application/octet-stream", payload)


def test_a_long_eight_bit_line_is_folded_by_quoted_printable() -> None:
    raw = b"From: a@sender.test\nContent-Transfer-Encoding: 8bit\n\n" + "\u00e9".encode() * 3000
    data = render(raw).data
    assert max(map(len, lines_of(data))) <= 76
    assert text_of(parse(data)) == "\u00e9" * 3000


def test_a_long_seven_bit_line_is_folded_by_quoted_printable() -> None:
    raw = b"From: a@sender.test\n\n" + b"x" * 2000 + b"\n"
    data = render(raw).data
    assert max(map(len, lines_of(data))) <= 76
    assert text_of(parse(data)) == "x" * 2000 + "\n"


def test_a_value_cannot_close_or_open_a_part() -> None:
    """A boundary without "=" can be typed into a value; the line it would start is
    encoded so that it never begins with the delimiter, even after a soft break."""
    raw = (
        b"From: a@sender.test\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/alternative; boundary="simple"\n\n'
        b"--simple\nContent-Type: text/plain\n\n{{name}}\n"
        b"--simple\nContent-Type: text/html\n\n<p>{{name}}</p>\n"
        b"--simple--\n"
    )
    for value in ["--simple--", "--simple", "x" * 73 + "--simple--", "a --simple b"]:
        data = render(raw, {"name": value}).data
        assert lines_of(data).count(b"--simple") == 2
        assert lines_of(data).count(b"--simple--") == 1
        message = parse(data)
        assert len(message.get_payload()) == 2  # type: ignore[arg-type]
        assert text_of(message) == value  # the line end before "--simple" is its own
        assert all(len(line) <= 76 for line in lines_of(split(data)[1]))


def test_a_non_ascii_preamble_is_dropped_and_an_ascii_one_kept() -> None:
    raw = (
        b"From: a@sender.test\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n'
        b"This is a MIME message.\n--b\n\nhi\n--b--\nepilogue \xc3\xa9\n"
    )
    body = split(render(raw).data)[1]
    assert body.startswith(b"This is a MIME message.\r\n--b\r\n")
    assert body.endswith(b"--b--\r\n")


def test_part_headers_in_raw_utf8_are_encoded() -> None:
    raw = (
        "From: a@sender.test\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nhi\n"
        '--b\nContent-Type: application/pdf; name="r\u00e9sum\u00e9.pdf"\n'
        'Content-Disposition: attachment; filename="r\u00e9sum\u00e9.pdf"\n'
        "Content-Description: C.V. d'\u00c9lodie\n"
        "Content-Transfer-Encoding: base64\n\nJVBERg==\n--b--\n"
    ).encode()
    data = render(raw).data
    assert data.isascii()
    [part] = list(parse(data).iter_attachments())
    assert part.get_filename() == "r\u00e9sum\u00e9.pdf"
    assert str(part["Content-Description"]) == "C.V. d'\u00c9lodie"


def test_a_long_filename_is_continued_per_rfc2231() -> None:
    name = "\u00e9" * 100 + ".pdf"
    raw = (
        "From: a@sender.test\nMIME-Version: 1.0\n"
        f'Content-Type: application/pdf\nContent-Disposition: attachment; filename="{name}"\n'
        "Content-Transfer-Encoding: base64\n\nJVBERg==\n"
    ).encode()
    data = render(raw).data
    assert max(map(len, lines_of(data))) <= 78
    assert parse(data).get_filename() == name


def test_raw_utf8_display_names_in_the_template_become_encoded_words() -> None:
    raw = "From: \u00c9cole Club <news@sender.test>\nCc: Fr\u00e9d <f@sender.test>\n\nhi\n"
    data = render(raw.encode()).data
    assert data.isascii()
    lines, _ = split(data)
    assert b"From: =?utf-8?q?=C3=89cole_Club?= <news@sender.test>" in lines


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        pytest.param(
            b"From: a@sender.test\nContent-Type: multipart/mixed\n\n--x\n\nhi\n--x--\n",
            "no boundary parameter",
            id="multipart-without-boundary",
        ),
        pytest.param(
            b'From: a@sender.test\nContent-Type: multipart/mixed; boundary="x"\n\n--x\n\nhi\n',
            "no closing boundary line --x--",
            id="truncated-multipart",
        ),
        pytest.param(
            b'From: a@sender.test\nContent-Type: multipart/mixed; boundary="x"\n\n--x--\n',
            "has no parts",
            id="multipart-without-parts",
        ),
        pytest.param(
            b"From: a@sender.test\nContent-Type: text/plain; charset=x-klingon\n\nhi {{n}}\n",
            "unknown charset 'x-klingon'",
            id="unknown-charset",
        ),
        pytest.param(
            b"From: a@sender.test\nContent-Type: text/plain; charset=utf-8\n\nhi \xff {{n}}\n",
            "not valid utf-8",
            id="invalid-utf8-with-fields",
        ),
        pytest.param(
            b"From: a@sender.test\nContent-Type: text/{{kind}}\n\nhi\n",
            "cannot be used in the Content-Type header",
            id="field-in-content-type",
        ),
        pytest.param(
            b'From: a@sender.test\nContent-Type: multipart/mixed; boundary="x"\n\n'
            b'--x\nContent-Disposition: attachment; filename="{{n}}.pdf"\n\nhi\n--x--\n',
            "part 1: merge fields cannot be used in the Content-Disposition",
            id="field-in-part-header",
        ),
        pytest.param(
            b'From: a@sender.test\nContent-Type: multipart/mixed; boundary="x"\n\n'
            b"--x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nabc\n--x--\n",
            "part 1 is not valid base64",
            id="bad-base64-text",
        ),
        pytest.param(
            b"From: a@sender.test\nContent-Transfer-Encoding: x-uuencode\n\n\xc3\xa9\n",
            "transfer encoding 'x-uuencode'",
            id="unknown-transfer-encoding",
        ),
        pytest.param(
            b'From: a@sender.test\nContent-Type: multipart/mixed; boundary="x"\n\n'
            b"--x\nContent-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n"
            b"Subject: \xc3\xa9\n\nhi\n--x--\n",
            "part 1 \\(message/rfc822\\) holds 8-bit data",
            id="eight-bit-attached-message",
        ),
        pytest.param(
            b'From: a@sender.test\nContent-Type: multipart/mixed; boundary="x"\n\n'
            b"--x\nBroken header\n\nhi\n--x--\n",
            "part 1: the message has a malformed header line",
            id="malformed-part-header",
        ),
    ],
)
def test_templates_that_cannot_be_sent_are_clear_errors(raw: bytes, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        MessageTemplate(raw)


def test_nested_parts_are_named_in_errors() -> None:
    raw = (
        b'From: a@sender.test\nContent-Type: multipart/mixed; boundary="o"\n\n'
        b"--o\n\nhi\n"
        b'--o\nContent-Type: multipart/alternative; boundary="i"\n\n'
        b"--i\n\nx\n--i\nContent-Type: text/plain; charset=nope\n\n{{n}}\n--i--\n--o--\n"
    )
    with pytest.raises(TemplateError, match=r"part 2\.2 declares an unknown charset"):
        MessageTemplate(raw)


@pytest.mark.parametrize("tail", [" ", "\t", "   ", " \t "])
@pytest.mark.parametrize("length", range(68, 80))
def test_quoted_printable_keeps_76_when_a_line_ends_in_whitespace(length: int, tail: str) -> None:
    """binascii.b2a_qp writes 77 characters for such a line; its last =XX is moved."""
    raw = b"From: a@sender.test\n\n{{v}}\n"
    data = render(raw, {"v": "x" * length + tail}).data
    assert max(map(len, lines_of(split(data)[1]))) <= 76
    assert text_of(parse(data)) == "x" * length + tail + "\n"


def _old_strict(data: bytes) -> bytes:
    """The pure-Python encoder every line ending in whitespace used to take."""
    return parts._qp_strict(data)


def _sound(encoded: bytes, data: bytes) -> None:
    assert encoded.endswith(b"\r\n")
    lines = encoded[:-2].split(b"\r\n")
    assert all(len(line) <= 76 for line in lines), [len(line) for line in lines]
    assert all(line[-1:] not in (b" ", b"\t") for line in lines)
    assert all(line.isascii() for line in lines)
    assert binascii.a2b_qp(encoded) == data + b"\r\n"


_LINE = st.binary(max_size=400).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_TAIL = st.text(" \t", max_size=4).map(str.encode)


@given(head=_LINE, tail=_TAIL, pad=st.integers(0, 80))
@example(head=b"", tail=b" ", pad=75)
@example(head=b"", tail=b"\t", pad=74)
@example(head=b"\xff" * 25, tail=b" ", pad=0)
def test_quoted_printable_lines_equal_the_strict_encoders(
    head: bytes, tail: bytes, pad: int
) -> None:
    """The C encoder with its mended line end decodes as the strict one did, and keeps
    its limits: 76 characters, no trailing whitespace, 7-bit."""
    data = b"x" * pad + head + tail
    encoded = parts.qp_line(data, ())
    _sound(encoded, data)
    assert binascii.a2b_qp(encoded) == binascii.a2b_qp(_old_strict(data))


@given(head=_LINE, tail=_TAIL, pad=st.integers(0, 80), value=st.sampled_from([b"--b", b"x--b--"]))
def test_no_quoted_printable_line_starts_with_a_boundary(
    head: bytes, tail: bytes, pad: int, value: bytes
) -> None:
    data = b"x" * pad + value + head + value + tail
    encoded = parts.qp_line(data, (b"--b",))
    _sound(encoded, data)
    assert not any(line.startswith(b"--b") for line in encoded.split(b"\r\n"))


def test_whitespace_and_boundaries_take_the_c_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A minified HTML line that ends in a space, or holds a value with the boundary,
    costs what any other line does (the pure-Python encoder took 12 ms a message)."""

    def slow(data: bytes) -> bytes:
        raise AssertionError("the pure-Python encoder was used")

    monkeypatch.setattr(parts, "_qp_strict", slow)
    row = "<tr><td>Item for {{name}}</td></tr>"
    raw = (
        b"From: a@sender.test\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/alternative; boundary="b"\n\n'
        b"--b\nContent-Type: text/html; charset=utf-8\n\n"
        + (row * 300 + " {{name}}").encode()
        + b"\n--b--\n"
    )
    for value in ["Ann ", "Ann\t", "x--b", "--b--"]:
        data = render(raw, {"name": value}).data
        body = split(data)[1]
        assert max(map(len, lines_of(body))) <= 76
        assert lines_of(body).count(b"--b") == 1
        html = text_of(parse(data), "html")
        assert html == (row * 300 + " {{name}}").replace("{{name}}", value)


# ---- attachments are files, never templates --------------------------------------------

ICS = b"BEGIN:VCALENDAR\r\nX-NOTE:see {{first_name}}\r\nEND:VCALENDAR\r\n"
PAGE = b"<p>Hello {{first_name}} {{first name}}</p>\n"


def test_attachments_built_from_parts_go_out_as_their_bytes() -> None:
    template = MessageTemplate.from_parts(
        MessageParts(
            from_="Club <news@sender.test>",
            subject="Hi {{name}}",
            text="Hello {{name}}",
            attachments=(
                Attachment("invite.ics", ICS, "text/calendar"),
                Attachment("welcome-template.html", PAGE, "text/html"),
            ),
        )
    )
    assert template.fields == {"name"}
    assert template.unknown_fields(["name"]) == []
    data = render(template, {"name": "Ann", "first_name": "Eve"}).data
    assert [payload for _, payload in _leaves(data)][1:] == [ICS, PAGE]


@pytest.mark.parametrize(
    ("headers", "encoding"),
    [
        (b"Content-Type: text/calendar\nContent-Disposition: attachment\n", "7bit"),
        (b'Content-Type: text/html; name="page.html"\n', "7bit"),
        (b'Content-Type: text/html\nContent-Disposition: inline; filename="p.html"\n', "7bit"),
        (
            b"Content-Type: text/plain\nContent-Disposition: attachment\n"
            b"Content-Transfer-Encoding: quoted-printable\n",
            "quoted-printable",
        ),
        (
            b"Content-Type: text/plain\nContent-Disposition: ATTACHMENT\n"
            b"Content-Transfer-Encoding: 8bit\n",
            "8bit",
        ),
    ],
)
def test_a_text_attachment_in_an_eml_is_never_merged(headers: bytes, encoding: str) -> None:
    """Its exact bytes, whatever ``{{…}}`` it holds; re-encoded (base64, which keeps every
    byte) only when it cannot travel as written."""
    content = b"X-NOTE:see {{first_name}} {{ }}\r\nEND"
    if encoding == "8bit":
        content = b"caf\xc3\xa9 {{first_name}} {{ }}\nline two\rthree"
    body = content.replace(b"{", b"=7B") if encoding == "quoted-printable" else content
    raw = (
        b"From: a@sender.test\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="m"\n\n'
        b"--m\nContent-Type: text/plain\n\nHello {{name}}\n"
        b"--m\n" + headers + b"\n" + body + b"\n--m--\n"
    )
    template = MessageTemplate(raw)
    assert template.fields == {"name"}
    data = render(template, {"name": "Ann", "first_name": "Eve"}).data
    assert data.isascii()
    # The .eml's line ends are CRLF once read (crlf); the rest are the file's own bytes.
    assert _leaves(data)[1][1] == crlf(content)
    if encoding == "7bit":
        assert body in data  # as written, byte for byte
