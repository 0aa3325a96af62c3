"""A template built from parts (what the GUI's editor gives): From, Reply-To, Subject,
plain text, optional HTML, attachments, written as .eml bytes.

The result is an ordinary template: it is compiled like a loaded .eml and stored as its
bytes. Headers are written as raw UTF-8 (RFC 6532), which the compiler turns into encoded
words, so a field in the Subject stays readable in the stored file. Bodies are UTF-8
quoted-printable, attachments base64. Boundaries hold "=_", which neither encoding can
produce (RFC 2045 §6.7), and derive from the content: equal parts give equal bytes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field

from core.message.errors import TemplateError
from core.message.params import mime_header
from core.message.parts import qp_line

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    data: bytes = field(repr=False)
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class MessageParts:
    """``from_`` and ``reply_to`` as written in a header (``Club <news@example.com>``);
    fields (``{{first_name}}``) may be used in the subject, text and HTML."""

    from_: str
    subject: str
    text: str
    html: str | None = None
    reply_to: str | None = None
    attachments: tuple[Attachment, ...] = ()


def _header(name: str, value: str) -> bytes:
    if _LINE_BREAK.search(value) or "\0" in value:
        raise TemplateError(f"the {name} cannot hold line breaks: {value[:60]!r}")
    return f"{name}: {value.strip()}\r\n".encode()


def _quoted_printable(text: str) -> bytes:
    lines = _LINE_BREAK.split(text)
    return b"".join(qp_line(line.encode("utf-8"), ()) for line in lines)[:-2]


def _text_part(text: str, subtype: str) -> bytes:
    return (
        mime_header("Content-Type", f"text/{subtype}", {"charset": "utf-8"})
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + _quoted_printable(text)
    )


def _attachment(attachment: Attachment) -> bytes:
    content_type = attachment.content_type.strip().lower()
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise TemplateError(
            f"the attachment {attachment.filename!r} has no valid content type "
            f"({attachment.content_type!r}): use type/subtype, e.g. application/pdf"
        )
    if not attachment.filename.strip() or _LINE_BREAK.search(attachment.filename):
        raise TemplateError(f"an attachment needs a file name on one line: {attachment!r}")
    name = attachment.filename.strip()
    encoded = base64.encodebytes(attachment.data).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    return (
        mime_header("Content-Type", content_type, {"name": name})
        + b"Content-Transfer-Encoding: base64\r\n"
        + mime_header("Content-Disposition", "attachment", {"filename": name})
        + b"\r\n"
        + encoded
    )


def _multipart(subtype: str, parts: list[bytes], boundary: str) -> bytes:
    delimiter = f"--{boundary}".encode("ascii")
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts)
    return (
        mime_header("Content-Type", f"multipart/{subtype}", {"boundary": boundary})
        + b"\r\n"
        + body
        + delimiter
        + b"--\r\n"
    )


def build_eml(parts: MessageParts) -> bytes:
    """The .eml bytes of a message made of ``parts``."""
    if not parts.from_.strip():
        raise TemplateError("the message needs a From address")
    head = _header("From", parts.from_)
    if parts.reply_to and parts.reply_to.strip():
        head += _header("Reply-To", parts.reply_to)
    head += _header("Subject", parts.subject) + b"MIME-Version: 1.0\r\n"
    digest = hashlib.sha256(head)
    body = _text_part(parts.text, "plain")
    digest.update(body)
    if parts.html is not None:
        html = _text_part(parts.html, "html")
        digest.update(html)
        boundary = f"=_mx_alt_{digest.hexdigest()[:24]}"
        body = _multipart("alternative", [body, html], boundary)
    if parts.attachments:
        files = [_attachment(attachment) for attachment in parts.attachments]
        for file in files:
            digest.update(file)
        boundary = f"=_mx_mixed_{digest.hexdigest()[:24]}"
        body = _multipart("mixed", [body, *files], boundary)
    return head + body
