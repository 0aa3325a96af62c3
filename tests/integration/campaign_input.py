"""What the campaign-input end-to-end tests share: the sample inputs, DKIM keys made in the
test, and the expectations for what arrives, computed from the inputs alone.

Nothing here calls the code under test to find out what a message should look like: a
template is read with the standard library's email parser, a recipient's fields with the
``csv`` module, and merge fields are substituted here, encoded for where they land (as
given, HTML-escaped, percent-encoded inside a URL). What arrived is read with the
standard library's parser (``policy.default``) and verified with dkimpy against a key
published in a lab DNS zone and fetched over UDP, as a receiver does.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import difflib
import html
import re
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import quote

import dkim
import dns.exception
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
RECIPIENTS = SHARED / "recipients"
MESSAGES = SHARED / "messages"
TEMPLATES = ("welcome.eml", "newsletter-with-attachment.eml")

SENDER_DOMAIN = "sender.test"
UNSUBSCRIBE_MAILTO = "unsubscribe@sender.test"
UNSUBSCRIBE_URL = "https://sender.test/u?e={{email}}"
ONE_CLICK = "List-Unsubscribe=One-Click"
#: Headers the sender stamps on each recipient's copy (RFC 5322 §3.6).
STAMPED = ("Message-ID", "Date", "To")
#: Added when the campaign signs and offers List-Unsubscribe.
ADDED = ("DKIM-Signature", "List-Unsubscribe", "List-Unsubscribe-Post")

_FIELD = re.compile(r"\{\{(\w+)\}\}")
_HREF = re.compile(r'(href=")([^"]*)(")')
_MESSAGE_ID = re.compile(r"<[0-9A-Za-z._-]+@sender\.test>")
#: How a value is made safe, as the product promises: CR, LF and NUL become spaces.
_LINE_BREAK = re.compile("[\r\n\0]")


# ---- running the real command line -----------------------------------------------------------


async def run_cli(*args: str | Path, timeout: float = 60) -> tuple[int, bytes, str]:
    """``mxmailer ARGS`` in a subprocess: exit code, stdout as bytes, stderr as text."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core.cli",
        *map(str, args),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out, err.decode(errors="replace")


def campaign_options(key: DKIMKey | None) -> list[str | Path]:
    """List-Unsubscribe by mail and by one-click URL, and DKIM with ``key`` if given."""
    options: list[str | Path] = [
        "--list-unsubscribe-mailto",
        UNSUBSCRIBE_MAILTO,
        "--list-unsubscribe-url",
        UNSUBSCRIBE_URL,
    ]
    if key is not None:
        options += ["--dkim-key", key.path, "--dkim-selector", key.selector]
    return options


# ---- recipients, read with the csv module ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """A data row of a recipients file: the address cell and every other cell by field."""

    address: str
    fields: dict[str, str]


def read_rows(
    path: Path, *, encoding: str = "utf-8", delimiter: str = ",", address: str = "email"
) -> list[Row]:
    """The rows of ``path``: field names are the headers lower-cased, spaces as ``_``."""
    with path.open(encoding=encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = ["_".join(cell.strip().lower().split()) for cell in next(reader)]
        rows = []
        for record in reader:
            cells = dict(zip(header, record, strict=True))
            rows.append(Row(cells.pop(address), cells))
    return rows


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ---- templates and what each recipient should get ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """A template's parts as a mail reader shows them, merge fields still in."""

    subject: str
    text: str
    html: str | None
    attachment: tuple[str, bytes] | None  # (filename, content)
    headers: tuple[str, ...]  # the top-level header names, in order

    @classmethod
    def read(cls, path: Path) -> Template:
        message = parse(path.read_bytes())
        text = message.get_body(("plain",))
        html_part = message.get_body(("html",))
        attachments = list(message.iter_attachments())
        assert text is not None and len(attachments) <= 1
        attachment = None
        if attachments:
            [part] = attachments
            attachment = (str(part.get_filename()), part.get_content())
        return cls(
            subject=str(message["Subject"]),
            text=lines(text.get_content()),
            html=None if html_part is None else lines(html_part.get_content()),
            attachment=attachment,
            headers=tuple(message.keys()),
        )

    def expected_headers(self, *added: str) -> Counter[str]:
        """Each header name once: the template's, the stamped ones and ``added``."""
        return Counter(name.lower() for name in (*self.headers, *STAMPED, *added))


def lines(text: str) -> str:
    """Text with LF line ends: templates are files, messages arrive with CRLF."""
    return text.replace("\r\n", "\n")


def safe(value: str) -> str:
    return _LINE_BREAK.sub(" ", value)


def merge(template: str, values: Mapping[str, str]) -> str:
    """``{{field}}`` replaced by the value as it is (text, a header's decoded text)."""
    return _FIELD.sub(lambda m: safe(values[m.group(1)]), template)


def merge_html(template: str, values: Mapping[str, str]) -> str:
    """In HTML: a value inside an ``href`` is percent-encoded, anywhere else escaped."""

    def in_url(match: re.Match[str]) -> str:
        url = _FIELD.sub(lambda m: quote(safe(values[m.group(1)]), safe=""), match.group(2))
        return match.group(1) + url + match.group(3)

    urls_done = _HREF.sub(in_url, template)
    return _FIELD.sub(lambda m: html.escape(safe(values[m.group(1)])), urls_done)


# ---- what arrived --------------------------------------------------------------------------------


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def header_names(message: EmailMessage) -> Counter[str]:
    return Counter(name.lower() for name in message)


def addressee(message: EmailMessage) -> str:
    """The To header's address (decoded: it may be UTF-8, RFC 6532)."""
    return parseaddr(str(message["To"]))[1]


def message_id(message: EmailMessage) -> str:
    value = str(message["Message-ID"]).strip()
    assert _MESSAGE_ID.fullmatch(value), f"Message-ID {value!r} is not <id@sender.test>"
    return value


def same(received: object, expected: object) -> str:
    """An assertion message (this module's asserts are not rewritten by pytest)."""
    if isinstance(received, str) and isinstance(expected, str):
        diff = difflib.unified_diff(
            expected.splitlines(), received.splitlines(), "expected", "received", lineterm=""
        )
        return "\n" + "\n".join(diff)
    return f"\nreceived: {received!r}\nexpected: {expected!r}"


def check_content(
    message: EmailMessage, template: Template, recipient: str, fields: Mapping[str, str]
) -> None:
    """What ``recipient`` reads is ``template`` with its fields merged: Subject, To, the
    text, the HTML, the attachment's bytes, the lines that start with a dot."""
    values = {**fields, "email": recipient}
    to = addressee(message)
    assert to.lower() == recipient.lower(), same(to, recipient)
    subject, wanted = str(message["Subject"]), merge(template.subject, values)
    assert subject == wanted, same(subject, wanted)
    text = message.get_body(("plain",))
    assert text is not None, f"no text part for {recipient}"
    received = lines(text.get_content())
    expected = merge(template.text, values)
    assert received == expected, same(received, expected)
    dotted = [line for line in expected.splitlines() if line.startswith(".")]
    arrived = [line for line in received.splitlines() if line.startswith(".")]
    assert dotted == arrived, same(arrived, dotted)
    html_part = message.get_body(("html",))
    if template.html is None:
        assert html_part is None, f"an HTML part for {recipient}"
    else:
        assert html_part is not None, f"no HTML part for {recipient}"
        received_html, expected_html = (
            lines(html_part.get_content()),
            merge_html(template.html, values),
        )
        assert received_html == expected_html, same(received_html, expected_html)
    attachments = [
        (str(part.get_filename()), part.get_content()) for part in message.iter_attachments()
    ]
    wanted_attachments = [template.attachment] if template.attachment else []
    assert attachments == wanted_attachments, f"attachments differ for {recipient}"


def check_unsubscribe(message: EmailMessage, recipient: str) -> None:
    """Both ways to unsubscribe, the recipient's address percent-encoded in the URL."""
    url = UNSUBSCRIBE_URL.replace("{{email}}", quote(recipient, safe=""))
    links = re.findall(r"<([^>]*)>", str(message["List-Unsubscribe"]))
    wanted = [f"mailto:{UNSUBSCRIBE_MAILTO}", url]
    assert links == wanted, same(links, wanted)
    post = str(message["List-Unsubscribe-Post"]).strip()
    assert post == ONE_CLICK, same(post, ONE_CLICK)


# ---- DKIM ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DKIMKey:
    kind: str  # "rsa" or "ed25519"
    path: Path
    selector: str
    #: The TXT record a receiver fetches, made here from the public key (RFC 6376 §3.6.1,
    #: RFC 8463 §4): a DER SubjectPublicKeyInfo for RSA, the raw 32 octets for Ed25519.
    txt: str

    @property
    def algorithm(self) -> str:
        return f"{self.kind}-sha256"

    @property
    def txt_name(self) -> str:
        return f"{self.selector}._domainkey.{SENDER_DOMAIN}"


def make_key(kind: str, directory: Path) -> DKIMKey:
    """A new key written as PKCS#8 PEM (mode 0600, as the product demands of key files)."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if kind == "rsa":
        private = rsa.generate_private_key(65537, 2048)
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    path = directory / f"{kind}.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    txt = f"v=DKIM1; k={kind}; p={base64.b64encode(public).decode()}"
    return DKIMKey(kind, path, f"{kind}-campaign", txt)


def signature_tags(message: EmailMessage) -> dict[str, str]:
    signatures = message.get_all("DKIM-Signature") or []
    assert len(signatures) == 1, f"{len(signatures)} DKIM-Signature headers"
    compact = re.sub(r"\s", "", str(signatures[0]))
    pairs = (tag.split("=", 1) for tag in compact.split(";") if tag)
    return {name: value for name, value in pairs}


def check_signature_tags(message: EmailMessage, key: DKIMKey) -> None:
    """The signature names the key and covers what a receiver must be able to trust."""
    tags = signature_tags(message)
    named = (tags["d"], tags["s"], tags["a"])
    assert named == (SENDER_DOMAIN, key.selector, key.algorithm), same(named, key)
    signed = set(tags["h"].lower().split(":"))
    must = {"from", "to", "subject", "date", "message-id"}
    must |= {"list-unsubscribe", "list-unsubscribe-post"}
    assert must <= signed, f"not signed: {sorted(must - signed)}"


PASS, FAIL = "pass", "fail"


def dkim_verdict(data: bytes, nameserver: tuple[str, int]) -> str:
    """dkimpy's verdict on ``data`` (CRLF line ends), the key fetched from ``nameserver``
    over UDP: ``pass``, ``fail``, or why dkimpy refused the message. Blocking: call it
    through :func:`asyncio.to_thread` while a lab DNS server runs on the event loop."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [nameserver[0]]
    resolver.port = nameserver[1]
    resolver.lifetime = 3.0

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode("ascii"), "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(b"".join(record.strings) for record in answer)

    try:
        return PASS if dkim.DKIM(data).verify(dnsfunc=lookup) else FAIL
    except dkim.DKIMException as error:
        return str(error)


def tamper_unsubscribe(data: bytes) -> bytes:
    """``data`` with its one-click URL pointed elsewhere: what a signature must catch."""
    assert data.count(b"https://sender.test/u?") == 1
    return data.replace(b"https://sender.test/u?", b"https://evil.test/u?")
