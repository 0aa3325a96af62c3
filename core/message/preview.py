"""What a rendered message looks like to its reader: decoded headers, the text and HTML
bodies, the attachments' names and sizes. For the GUI's preview and ``mxmailer preview``;
it parses with the stdlib (about a millisecond), never on the sending path."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, Parser


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    filename: str
    content_type: str
    size: int  # decoded octets


@dataclass(frozen=True, slots=True)
class MessagePreview:
    headers: tuple[tuple[str, str], ...]  # (name, decoded value), in order
    text: str | None
    html: str | None
    attachments: tuple[AttachmentInfo, ...]

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


def _content(part: EmailMessage | None) -> str | None:
    if part is None:
        return None
    content = part.get_content()
    return content.replace("\r\n", "\n") if isinstance(content, str) else None


def describe(data: bytes) -> MessagePreview:
    """The human-readable structure of a message's bytes (any message, not only ours)."""
    if data.isascii():
        message = BytesParser(policy=policy.default).parsebytes(data)
    else:  # raw UTF-8 headers (RFC 6532): the bytes parser would show them as escapes
        message = Parser(policy=policy.default).parsestr(data.decode("utf-8", "replace"))
    assert isinstance(message, EmailMessage)
    headers = tuple((name, str(value)) for name, value in message.items())
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    attachments = []
    for part in message.walk():
        if part.is_multipart() or part is text or part is html:
            continue
        if part is message and part.get_content_maintype() == "text":
            continue
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        attachments.append(AttachmentInfo(part.get_filename() or "", part.get_content_type(), size))
    return MessagePreview(
        headers,
        _content(text if isinstance(text, EmailMessage) else None),
        _content(html if isinstance(html, EmailMessage) else None),
        tuple(attachments),
    )
