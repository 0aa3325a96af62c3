"""The user's files against random and adversarial bytes: a recipients file, a
suppression list and a message template give rows and messages or one of our documented
errors, never another exception; no address that comes out can break an SMTP command; no
merge value can add, remove or end a header.

The documented errors: :class:`~core.recipients.RecipientsError` (recipients file),
:class:`~core.suppression.SuppressionError` (a RecipientsError; suppression file),
:class:`~core.template.TemplateError` (message template), :class:`~core.dkim.DKIMError`
(DKIM key file). Anything else escaping is a finding.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import event as count
from hypothesis import given
from hypothesis import strategies as st

from core.dkim import DKIMError, DKIMSigner
from core.recipients import (
    ImportSummary,
    RecipientsError,
    preview_csv,
    read_header,
    read_recipients,
)
from core.smtp import commands
from core.store import Status
from core.suppression import SuppressionList
from core.template import MessageTemplate, TemplateError
from tests.fuzz.profile import FUZZ, TIMEOUT
from tests.unit.test_template import parse, split

pytestmark = TIMEOUT

# ---- recipients files ------------------------------------------------------------------

#: Pieces a CSV (or something that is not one) is made of, with their traps.
CSV_PIECES = [
    b",", b";", b"\t", b"|", b'"', b'""', b"\r\n", b"\n", b"\r", b"\0", b" ", b"email",
    b"E-Mail", b"name", b"ann@x.test", b"Bob <bob@x.test>", b"b\xc3\xbccher@x.test",
    b"u@b\xc3\xbccher.test", b"a@b", b"@", b"<", b">", b"=?utf-8?q?x?=", b"RCPT TO:<e@v.test>",
    b"\r\n.\r\n", b"Zo\xc3\xab", b"Zo\xeb", b"\xff\xfe", b"\xef\xbb\xbf", b"PK\x03\x04",
    b"\x89PNG", b"\xe2\x80\xa8", b"x" * 70,
]  # fmt: skip
csv_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(CSV_PIECES), max_size=60).map(b"".join),
    # A header the importer recognises, then anything: gets past detection to the rows.
    st.lists(st.sampled_from(CSV_PIECES), max_size=60).map(lambda p: b"email,name\n" + b"".join(p)),
)
ENCODINGS = [None, "utf-8", "cp1252", "utf-16", "utf-16-le", "latin-1", "shift_jis", "nope"]
DELIMITERS = [None, ",", ";", "tab", "|", "x", ""]
COLUMNS = [None, 0, 1, 7, "email", "name", "missing"]


def checked_rows(path: Path, **options: object) -> None:
    """Read ``path`` fully; check each row as the campaign and the session will use it."""
    summary = ImportSummary()
    rows = list(read_recipients(path, summary, **options))  # type: ignore[arg-type]
    for row in rows:
        if row.status is Status.INVALID:
            assert row.reason, "an invalid row says why"
            continue
        # A row to send: its address makes exactly one RCPT command, its domain is DNS.
        assert commands.rcpt_to(row.email).count(b"\r\n") == 1
        assert row.domain.isascii() and row.domain == row.domain.lower()
        assert row.email.rpartition("@")[2].lower() in (
            row.domain,
            row.domain.encode().decode("idna"),
        )
    assert summary.rows == summary.valid + summary.invalid + summary.suppressed + summary.duplicates
    assert len(rows) == summary.valid + summary.invalid + summary.suppressed


@FUZZ
@given(
    csv_bytes,
    st.sampled_from(ENCODINGS),
    st.sampled_from(DELIMITERS),
    st.sampled_from(COLUMNS),
)
def test_any_recipients_file_gives_rows_or_a_recipients_error(
    data: bytes, encoding: str | None, delimiter: str | None, column: str | int | None
) -> None:
    with TemporaryDirectory() as folder:
        path = Path(folder) / "recipients.csv"
        path.write_bytes(data)
        for options in (
            {},
            {"encoding": encoding, "delimiter": delimiter, "address_column": column},
        ):
            with contextlib.suppress(RecipientsError):
                preview_csv(
                    path,
                    encoding=encoding if options else None,
                    delimiter=delimiter if options else None,
                )
            try:
                read_header(path, **options)  # type: ignore[arg-type]
                checked_rows(path, **options)
                count("rows read")
            except RecipientsError:
                count("file refused")


@FUZZ
@given(csv_bytes)
def test_any_suppression_file_gives_entries_or_a_suppression_error(data: bytes) -> None:
    with TemporaryDirectory() as folder:
        path = Path(folder) / "suppression.txt"
        path.write_bytes(data)
        try:
            suppression = SuppressionList.load(path)
        except RecipientsError:  # SuppressionError is one
            return
        for rejected in suppression.rejected:
            assert rejected.reason


# ---- message templates -----------------------------------------------------------------

FROM = [b"From: {{club|Club}} <news@sender.test>\n", b"From: news@sender.test\n"]
GOOD_HEADERS = [
    b"To: {{name}} <{{email}}>\n",
    b"Subject: Hello {{name}}\n",
    b"Subject: =?utf-8?q?x?=\n",
    b"Reply-To: {{name}} <r@sender.test>\n",
    b"X-Note: {{note|none}} and {{name}}\n",
    b"X-Folded: {{name}}\n\t{{note}} folded\n continued\n",
    b"Subject: Gr\xc3\xbc\xc3\x9fe {{name}}\n",
    b"List-Id: {{name}} <list.sender.test>\n",
    b"MIME-Version: 1.0\n",
    b"Content-Type: text/html; charset=utf-8\n",
    b"Content-Transfer-Encoding: 8bit\n",
    b'Content-Type: multipart/alternative; boundary="b"\n',
    b"Bcc: x@y.test\n",
    b"Subject: " + b"long " * 60 + b"{{name}}\n",
    b"X-Url: https://x.test/?n={{url}}\n",
]
#: Header lines a template must be refused for (with a TemplateError).
BAD_HEADERS = [b"X-Broken {{name}}\n", b"{{name}}: x\n", b"Subject: {{unclosed\n", b"\xff\xfe: x\n"]
BODY_PIECES = [
    b"Hello {{name}},\n", b".{{name}}\n", b"\n.\n", b"<p>{{name}}</p>\n",
    b'<a href="{{url}}">x</a>\n', b"https://x.test/?n={{name}}\n", b"--b\n", b"--b--\n",
    b"Content-Type: text/plain\n\n", b"x" * 1200 + b"\n", b"\xe2\x82\xac {{name}}\n", b"\r\n",
    b"\0",
]  # fmt: skip
#: Body text a template must be refused for.
BAD_BODY = [b"{{", b"}}{{", b"{{}}"]
#: Mostly templates that compile, so that most examples get to the merge: at most one bad
#: header and one bad piece of body, each in one example out of four.
_structured = st.builds(
    lambda first, head, bad, body, bad_body: (
        first + b"".join(head) + bad + b"\n" + b"".join(body) + bad_body
    ),
    st.sampled_from(FROM),
    st.lists(st.sampled_from(GOOD_HEADERS), max_size=8, unique=True),
    st.one_of(st.just(b""), st.just(b""), st.just(b""), st.sampled_from(BAD_HEADERS)),
    st.lists(st.sampled_from(BODY_PIECES), max_size=8),
    st.one_of(st.just(b""), st.just(b""), st.just(b""), st.sampled_from(BAD_BODY)),
)
templates = st.one_of(_structured, _structured, _structured, st.binary(max_size=300))

# Merge values that try to become headers or end the message.
VALUE_TRAPS = [
    "\r\n", "\n", "\r", "\0", "\r\nBcc: victim@x.test", "\nX-Injected: 1", "\r\n\r\nbody",
    "\r\n.\r\nMAIL FROM:<e@v.test>", "=?utf-8?b?DQpCY2M6IHZAeC50ZXN0?=", "=?utf-8?q?=0D=0A?=",
    "\u2028", "\x85", "\x0b\x0c", "{{name}}", "--b", "--b--", ":", "Bcc:", "\U0001f4ec",
]  # fmt: skip
values = st.lists(st.one_of(st.sampled_from(VALUE_TRAPS), st.text(max_size=8)), max_size=10).map(
    "".join
) | st.text(min_size=990, max_size=1100)


def header_names(data: bytes) -> list[str]:
    """The headers of a rendered message as the stdlib parser reads them."""
    return [name.lower() for name in parse(data)]


@FUZZ
@given(templates, values, values, values)
def test_no_merge_value_changes_the_headers(raw: bytes, name: str, note: str, url: str) -> None:
    try:
        template = MessageTemplate(raw)
    except TemplateError:
        count("template refused")
        return
    count("template compiled")
    stamp = {"message_id": "<fuzz@sender.test>", "date": "Wed, 25 Nov 2026 12:00:00 +0000"}
    plain = template.render(
        {"name": "x", "note": "x", "url": "x", "club": "x"}, to="ann@x.test", **stamp
    ).data
    rendered = template.render(
        {"name": name, "note": note, "url": url, "club": name}, to="ann@x.test", **stamp
    ).data
    head, _ = split(rendered)
    assert [line[:1] for line in head].count(b"") == 0, "a blank line inside the header"
    assert header_names(rendered) == header_names(plain)
    assert all(len(line) <= 998 for line in rendered.split(b"\r\n"))
    assert rendered.count(b"\r") == rendered.count(b"\n") == rendered.count(b"\r\n")
    assert b"\0" not in rendered


# ---- DKIM keys -----------------------------------------------------------------------------

KEY_PIECES = [
    b"-----BEGIN PRIVATE KEY-----\n", b"-----END PRIVATE KEY-----\n",
    b"-----BEGIN RSA PRIVATE KEY-----\n", b"-----END RSA PRIVATE KEY-----\n",
    b"-----BEGIN OPENSSH PRIVATE KEY-----\n", b"-----BEGIN CERTIFICATE-----\n",
    b"-----BEGIN PUBLIC KEY-----\n", b"Proc-Type: 4,ENCRYPTED\n", b"MC4CAQAwBQYDK2VwBCIEI",
    b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    b"====\n", b"\n", b"\r\n", b"\0", b"\xff", b"v=DKIM1; k=rsa; p=MIIB\n",
]  # fmt: skip
key_bytes = st.binary(max_size=200) | st.lists(st.sampled_from(KEY_PIECES), max_size=12).map(
    b"".join
)


@FUZZ
@given(key_bytes)
def test_any_key_file_gives_a_signer_or_a_dkim_error(data: bytes) -> None:
    with TemporaryDirectory() as folder:
        path = Path(folder) / "dkim.pem"
        path.write_bytes(data)
        path.chmod(0o600)
        try:
            signer = DKIMSigner(path, selector="s1", domain="sender.test")
        except DKIMError as error:
            material = [ln for ln in data.splitlines() if len(ln) >= 16 and b"-----" not in ln]
            assert not any(ln.decode("latin-1") in str(error) for ln in material), error
            count("key refused")
            return
        count("key loaded")
        assert signer.algorithm in ("rsa-sha256", "ed25519-sha256")
