"""Properties of every rendered message, whatever the field values (control characters,
line breaks, non-ASCII, field syntax, very long values): it parses into the template's
structure with exactly the template's headers, no line exceeds 998 octets (76 in
quoted-printable), it is 7-bit unless the recipient's local part is not ASCII, and each
part decodes to the template's text with the values merged and encoded for their place.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from core.template import MessageTemplate, TemplateOptions
from tests.unit.test_template import DATE, MID, addresses, lines_of, parse, split, text_of

TEMPLATE = MessageTemplate(
    b"From: {{club|Club}} <news@sender.test>\n"
    b"To: {{name}} <{{email}}>\n"
    b"Subject: Hello {{name}}, from {{city|somewhere}}\n"
    b"X-Folded: first {{name}}\n"
    b"\tsecond {{city}}\n"
    b"MIME-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="outer"\n'
    b"\n"
    b"--outer\n"
    b'Content-Type: multipart/alternative; boundary="inner"\n'
    b"\n"
    b"--inner\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n"
    b"Hello {{name}} from {{city|nowhere}},\n"
    b".{{name}}\n"
    b"https://x.test/u?e={{email}}&n={{name}}\n"
    b"--inner\n"
    b"Content-Type: text/html; charset=utf-8\n"
    b"\n"
    b'<p title="{{name}}">{{city}}</p><a href="https://x.test/?n={{name}}">x</a>\n'
    b"--inner--\n"
    b"--outer\n"
    b"Content-Type: application/octet-stream\n"
    b"Content-Transfer-Encoding: base64\n"
    b"\n"
    b"AAECAw==\n"
    b"--outer--\n",
    options=TemplateOptions(list_unsubscribe_url="https://x.test/unsub?e={{email}}"),
)
HEADERS = [
    "message-id",
    "date",
    "from",
    "to",
    "subject",
    "x-folded",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
]

# Every kind of character: controls (C0, DEL, C1), line breaks of all kinds, surrogates
# excluded (they are not text), and the syntax of fields, headers, MIME and SMTP.
_CHARACTERS = st.characters(blacklist_categories=["Cs"])
_TRAPS = st.sampled_from(
    [
        "\r\n",
        "\n.\n",
        "\r\n\r\n",
        "--outer--",
        "--inner",
        "=?utf-8?q?x?=",
        "{{city}}",
        "Bcc: x@y.test",
        "&<>\"'",
        "&= ?#/ ",
        "\u0085\u2028\x0b\x0c\x1c",
        "\U0001f4ec",
        "Zo\u00eb",
        "\u65e5\u672c\u8a9e",
    ]
)
VALUES = st.lists(st.one_of(_TRAPS, st.text(_CHARACTERS, max_size=12)), max_size=12).map(
    "".join
) | st.text(_CHARACTERS, min_size=900, max_size=1200)
ADDRESSES = st.sampled_from(
    ["ann@plain.test", "ann+x@b\u00fccher.test", "j\u00fcrgen@plain.test", "\u7528\u6237@x.test"]
)


def _safe(value: str) -> str:
    return re.sub("[\r\n\0]", " ", value)


@given(name=VALUES, city=VALUES, club=VALUES, to=ADDRESSES)
def test_every_rendered_message_is_sound(name: str, city: str, club: str, to: str) -> None:
    rendered = TEMPLATE.render(
        {"name": name, "city": city, "club": club}, to=to, message_id=MID, date=DATE
    )
    data = rendered.data
    # 7-bit unless the recipient's local part needs SMTPUTF8.
    non_ascii_local = not to.partition("@")[0].isascii()
    assert rendered.needs_smtputf8 is non_ascii_local
    assert data.isascii() is not non_ascii_local
    assert all(len(line) <= 998 for line in lines_of(data))
    assert data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n")  # CRLF only
    head, body = split(data)
    assert all(len(line) <= 76 for line in lines_of(body))
    # Exactly the template's headers, in order; the structure is the template's.
    names = [
        line.partition(b":")[0].decode().lower() for line in head if line[:1] not in (b" ", b"\t")
    ]
    assert names == HEADERS
    message = parse(data)
    assert [part.get_content_type() for part in message.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/octet-stream",
    ]
    assert not any(part.defects for part in message.walk())
    # Each header holds its own text.
    n, c, k = _safe(name), _safe(city), _safe(club)
    assert str(message["Subject"]) == f"Hello {n}, from {c or 'somewhere'}".strip(" \t")
    assert str(message["X-Folded"]) == f"first {n}\tsecond {c}".strip(" \t")
    [(display, address)] = addresses(message, "To")
    assert display.split() == n.split()
    assert address.partition("@")[0] == to.partition("@")[0]
    [(display, _)] = addresses(message, "From")
    assert display.split() == (k or "Club").split()
    assert str(message["List-Unsubscribe"]) == f"<https://x.test/unsub?e={quote(to, safe='')}>"
    # Each part decodes to the template's text with the values in place.
    assert text_of(message) == (
        f"Hello {n} from {c or 'nowhere'},\n.{n}\n"
        f"https://x.test/u?e={quote(to, safe='')}&n={quote(n, safe='')}"
    )
    escaped = html.escape(n)
    assert text_of(message, "html") == (
        f'<p title="{escaped}">{html.escape(c)}</p>'
        f'<a href="https://x.test/?n={quote(n, safe="")}">x</a>'
    )
    [attachment] = message.iter_attachments()
    assert attachment.get_payload(decode=True) == b"\x00\x01\x02\x03"


@given(st.text(_CHARACTERS, max_size=3000))
def test_any_value_in_a_plain_template(value: str) -> None:
    template = MessageTemplate(b"From: a@sender.test\nSubject: {{v}}\n\n{{v}}\n")
    data = template.render({"v": value}, to="u@x.test", message_id=MID, date=DATE).data
    assert data.isascii()
    assert all(len(line) <= 76 for line in lines_of(split(data)[1]))
    assert all(len(line) <= 998 for line in lines_of(data))
    message = parse(data)
    assert list(message.keys()) == [
        "Message-ID",
        "Date",
        "To",
        "From",
        "Subject",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]
    assert str(message["Subject"]) == _safe(value).strip(" \t")
    assert text_of(message) == _safe(value) + "\n"


def test_a_value_with_lone_surrogates_still_renders() -> None:
    """A CSV cell decoded with errors="surrogateescape" must not stop the campaign."""
    template = MessageTemplate(b"From: a@sender.test\nSubject: {{v}}\n\n{{v}}\n")
    value = "caf" + b"\xe9".decode("utf-8", "surrogateescape") + "\ud83d"
    data = template.render({"v": value}, to="u@x.test", message_id=MID, date=DATE).data
    message = parse(data)
    assert str(message["Subject"]) == "caf\ufffd\ufffd"
    assert text_of(message) == "caf\ufffd\ufffd\n"


_BLANKS_AND_TEXT = st.lists(
    st.one_of(
        st.text(" \t", min_size=1, max_size=1500),
        st.text(' \ta\u00e9\u65e5,<>()"', max_size=40),
        st.sampled_from(["x" * 1100, "\u00e9" * 700, "{{v}}"]),
    ),
    max_size=6,
).map("".join)
WHITESPACE_TEMPLATE = MessageTemplate(
    b"From: {{v}} <news@sender.test>\n"
    b"To: {{v}} <x@x.test>\n"
    b"Subject: {{v}}\n"
    b"X-Note: a {{v}} b\n"
    b"List-Id: {{v}} <news.sender.test>\n"
    b"List-Help: <https://x.test/h?v={{v}}> {{v}}\n"
    b"References: <a@sender.test> {{v}}\n"
    b"\n"
    b"hi\n",
    options=TemplateOptions(list_unsubscribe_mailto="u@sender.test?subject={{v}}"),
)


@given(value=_BLANKS_AND_TEXT)
def test_no_header_line_is_blank(value: str) -> None:
    """Whatever runs of spaces and tabs a value holds, no header line is only whitespace
    (a reader may take it for the end of the headers) or over 998 octets."""
    rendered = WHITESPACE_TEMPLATE.render(
        {"v": value}, to="ann@plain.test", message_id=MID, date=DATE
    )
    lines, _ = split(rendered.data)
    assert all(line.strip(b" \t") for line in lines), lines
    assert max(map(len, lines)) <= 998
    assert rendered.data.isascii()
    assert len(parse(rendered.data).keys()) == 10
