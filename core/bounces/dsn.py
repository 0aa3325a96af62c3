"""Delivery status notifications: what a bounce says about which recipient of which message.

Owns reading a bounce mail into a :class:`Bounce`: the standard form (RFC 3464:
``multipart/report; report-type=delivery-status``, which Postfix, Exchange/Office 365 and
Gmail send) and the common plain-text forms that predate or ignore it (Exim's default
bounce and delay warning, qmail's "failure notice"). From each it takes, per recipient,
Final-Recipient / Original-Recipient, Action, Status and Diagnostic-Code, and the
returned message's Message-ID (from ``text/rfc822-headers``, ``message/rfc822`` or the
copy pasted below a separator line).

Pure: bytes in, values out. It decides nothing about the campaign (``core.bounces.apply``
does) and never trusts a bounce's layout: a mail it cannot read is "not a bounce", never
an exception.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.errors import MessageError
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from typing import Final

from core.smtp import EnhancedStatus, Reply

#: A bounce's explanation is read this far: the original message below it can be large.
TEXT_LIMIT: Final = 256 * 1024


class Action(enum.Enum):
    """RFC 3464 §2.3.3 ``Action``; UNKNOWN for a value outside the RFC."""

    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RELAYED = "relayed"
    EXPANDED = "expanded"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One per-recipient block of a DSN (or what a text bounce says of one address)."""

    final_recipient: str  # the address only, "" if none was given
    original_recipient: str  # the address as the sender gave it (ORCPT), "" if none
    action: Action
    status: str  # RFC 3463 code, "5.1.1"; "" if none
    diagnostic: str  # the remote reply without its type ("550 5.1.1 ... User unknown")
    remote_mta: str = ""

    def reply(self) -> Reply:
        """The failure as a :class:`Reply`, for ``core.faults.classify_fault``: the SMTP
        code of the diagnostic if it has one (else 550 or 450 from the status class), the
        ``Status`` field as the enhanced code (RFC 3464 makes it the authoritative one),
        the diagnostic's words as the text."""
        enhanced = parse_status(self.status)
        match = _SMTP_REPLY.match(self.diagnostic)
        if match is not None:
            code = int(match.group(1))
            text = self.diagnostic[match.end() :].strip()
            if enhanced is None:
                enhanced = parse_status(match.group(2) or "")
        else:
            code = 450 if enhanced is not None and enhanced.klass == 4 else 550
            text = self.diagnostic
        if enhanced is not None and enhanced.klass != code // 100:
            enhanced = None  # a 4.x.x status on a 5xx reply: the code decides the class
        return Reply(code, (text,), enhanced)

    @property
    def addresses(self) -> tuple[str, ...]:
        """The original and the final recipient, the original first; "" left out."""
        return tuple(a for a in (self.original_recipient, self.final_recipient) if a)


@dataclass(frozen=True, slots=True)
class Bounce:
    """A bounce mail, read. ``form`` names the layout it was read from."""

    form: str  # "rfc3464", "exim", "qmail"
    recipients: tuple[RecipientStatus, ...]
    message_id: str  # of the returned (original) message, "<...>", or ""
    reporting_mta: str = ""


# ---- helpers ---------------------------------------------------------------------------

_SMTP_REPLY = re.compile(r"([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?\b")
_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_ANGLE_ADDRESS = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


def parse_status(text: str) -> EnhancedStatus | None:
    """``5.1.1`` (possibly followed by words: Exchange writes ``5.1.10 (...)``)."""
    match = _STATUS.match(text.strip())
    if match is None:
        return None
    return EnhancedStatus(*(int(group) for group in match.groups()))


def _address(value: str) -> str:
    """The address of an ``rfc822; ann@example.test`` field, "" if none."""
    kind, _, rest = value.partition(";")
    text = rest if rest else kind
    text = text.strip()
    match = _ANGLE_ADDRESS.search(text)
    if match is not None:
        text = match.group(1)
    return text if "@" in text and " " not in text else ""


def _diagnostic(value: str) -> str:
    """A Diagnostic-Code without its type, unfolded, with the repeated ``550-5.1.1``
    prefixes of a multi-line reply (Gmail's) kept once."""
    kind, sep, rest = value.partition(";")
    text = " ".join((rest if sep else kind).split())
    match = _SMTP_REPLY.match(text)
    if match is None:
        return text
    prefix = re.escape(match.group(1)) + r"[ -]" + (
        re.escape(match.group(2)) + " " if match.group(2) else ""
    )
    head, tail = text[: match.end()], text[match.end() :]
    return head + re.sub(r"\s" + prefix, " ", tail)


def _action(value: str) -> Action:
    word = value.strip().split(" ", 1)[0].lower()
    try:
        return Action(word)
    except ValueError:
        return Action.UNKNOWN


def message_id_of(headers: Message) -> str:
    """The first ``<...>`` of a Message-ID header, "" if none."""
    match = _MESSAGE_ID.search(str(headers.get("Message-ID", "") or ""))
    return match.group(0) if match is not None else ""


def _returned_headers(mail: Message) -> Message | None:
    """The returned message's headers: a ``text/rfc822-headers`` part, or the message of a
    ``message/rfc822`` part (Python parses it into a one-message list)."""
    for part in mail.walk():
        kind = part.get_content_type()
        if kind == "text/rfc822-headers":
            return HeaderParser(policy=policy.compat32).parsestr(_text(part))
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
    return None


def _text(part: Message) -> str:
    """A part's text, decoded from its transfer encoding and charset; never raises."""
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        payload = part.get_payload()
        return payload[:TEXT_LIMIT] if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw[:TEXT_LIMIT].decode(charset, "replace")
    except LookupError:  # an unknown charset name
        return raw[:TEXT_LIMIT].decode("utf-8", "replace")


# ---- RFC 3464 ----------------------------------------------------------------------------


def _status_blocks(part: Message) -> list[Message]:
    """The blocks of a delivery-status part: Python parses ``message/delivery-status``
    into a list of header blocks; a ``text/delivery-status`` (some servers; also
    RFC 6533's ``message/global-delivery-status``) is cut at blank lines here."""
    payload = part.get_payload()
    if isinstance(payload, list) and all(isinstance(block, Message) for block in payload):
        return list(payload)
    text = _text(part).replace("\r\n", "\n")
    parser = HeaderParser(policy=policy.compat32)
    return [parser.parsestr(block.strip() + "\n") for block in re.split(r"\n\s*\n", text)
            if block.strip()]


_STATUS_TYPES: Final = frozenset(
    {"message/delivery-status", "text/delivery-status", "message/global-delivery-status"}
)


def _rfc3464(mail: Message) -> Bounce | None:
    report = next((p for p in mail.walk() if p.get_content_type() in _STATUS_TYPES), None)
    if report is None:
        return None
    blocks = _status_blocks(report)
    if not blocks:
        return None
    reporting = _field_value(blocks[0].get("Reporting-MTA", ""))
    recipients = []
    for block in blocks:
        final = _address(str(block.get("Final-Recipient", "")))
        original = _address(str(block.get("Original-Recipient", "")))
        if not (final or original) or block.get("Action") is None:
            continue  # the per-message block, or a block we cannot use
        recipients.append(
            RecipientStatus(
                final_recipient=final,
                original_recipient=original,
                action=_action(str(block["Action"])),
                status=str(block.get("Status", "")).strip().split(" ", 1)[0],
                diagnostic=_diagnostic(str(block.get("Diagnostic-Code", ""))),
                remote_mta=_field_value(block.get("Remote-MTA", "")),
            )
        )
    if not recipients:
        return None
    returned = _returned_headers(mail)
    message_id = message_id_of(returned) if returned is not None else ""
    if not message_id:  # Gmail and Exim also name it in the per-message block
        match = _MESSAGE_ID.search(str(blocks[0].get("X-Original-Message-ID", "")))
        message_id = match.group(0) if match is not None else ""
    return Bounce("rfc3464", tuple(recipients), message_id, reporting)


def _field_value(value: object) -> str:
    """``dns; mx.example.test`` -> ``mx.example.test``."""
    text = str(value or "")
    text = text.partition(";")[2] if ";" in text else text
    return " ".join(text.split())


# ---- plain-text bounces --------------------------------------------------------------------

# Where the returned message starts in a text bounce: Exim, qmail, Sendmail-likes.
_COPY_SEPARATOR = re.compile(
    r"^[ \t]*-{2,}[ \t]*(?:This is a copy of the message|Below this line is a copy of the"
    r" message|The header of the original message is following|Original message"
    r"|Returned message|Original message headers)[^\n]*\n",
    re.IGNORECASE | re.MULTILINE,
)
_EXIM_FAILED = re.compile(r"could not be delivered to one or more of its\s+recipients", re.I)
_EXIM_DELAYED = re.compile(r"has not yet been delivered to one or more of its\s+recipients", re.I)
_QMAIL = re.compile(r"I'm afraid I wasn't able to deliver your message", re.I)
# Exim lists each address indented by two spaces on its own line; its details follow
# indented by four.
_EXIM_ADDRESS = re.compile(r"^  (\S+@\S+?)(?::)?\s*$", re.MULTILINE)
_QMAIL_ADDRESS = re.compile(r"^<(\S+@\S+)>:\s*$", re.MULTILINE)
_SMTP_LINE = re.compile(r"^\s*(?:Remote host said:\s*)?([245]\d\d[ -].*)$", re.MULTILINE)


def _text_bounce(mail: Message) -> Bounce | None:
    body = next((p for p in mail.walk() if p.get_content_type() == "text/plain"), None)
    if body is None:
        return None
    text = _text(body).replace("\r\n", "\n")
    separator = _COPY_SEPARATOR.search(text)
    explanation = text[: separator.start()] if separator else text
    if _EXIM_FAILED.search(explanation):
        form, action, pattern = "exim", Action.FAILED, _EXIM_ADDRESS
    elif _EXIM_DELAYED.search(explanation):
        form, action, pattern = "exim", Action.DELAYED, _EXIM_ADDRESS
    elif _QMAIL.search(explanation):
        form, action, pattern = "qmail", Action.FAILED, _QMAIL_ADDRESS
    else:
        return None
    matches = list(pattern.finditer(explanation))
    recipients = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(explanation)
        recipients.append(_text_recipient(match.group(1), explanation[match.end() : end], action))
    if not recipients:
        return None
    returned = _returned_headers(mail)
    if returned is None and separator is not None:
        returned = HeaderParser(policy=policy.compat32).parsestr(text[separator.end() :].lstrip())
    message_id = message_id_of(returned) if returned is not None else ""
    return Bounce(form, tuple(recipients), message_id)


def _text_recipient(address: str, details: str, action: Action) -> RecipientStatus:
    """One address of a text bounce, with the first SMTP reply of its details (and that
    reply's continuation lines, which Exim indents further)."""
    address = address.strip("<>")
    diagnostic = ""
    reply = _SMTP_LINE.search(details)
    if reply is not None:
        lines = [reply.group(1).strip()]
        for line in details[reply.end() :].split("\n")[1:]:
            if not line.startswith("    ") or not line.strip():
                break
            lines.append(line.strip())
        diagnostic = _diagnostic(" ".join(lines))
    status = ""
    match = _SMTP_REPLY.match(diagnostic)
    if match is not None and match.group(2):
        status = match.group(2)
    elif action is Action.FAILED:
        status = "5.0.0"  # RFC 3463: "other undefined status"
    else:
        status = "4.0.0"
    return RecipientStatus(address, "", action, status, diagnostic)


# ---- the entry point ----------------------------------------------------------------------


def read_bounce(mail: Message | bytes) -> Bounce | None:
    """The bounce ``mail`` is, or None if it is none this module can read."""
    if isinstance(mail, bytes):
        mail = message_from_bytes(mail, policy=policy.compat32)
    try:
        if mail.get_content_type() == "multipart/report":
            kind = str(mail.get_param("report-type", "") or "").lower()
            if kind in ("delivery-status", "global-delivery-status"):
                return _rfc3464(mail)
            return None  # a feedback report (RFC 5965) or a read receipt: not a bounce
        found = _rfc3464(mail)  # a delivery-status part under another container
        return found if found is not None else _text_bounce(mail)
    except (MessageError, LookupError, ValueError, TypeError, AttributeError):
        return None  # a mail too broken to read is no bounce we can act on


def envelope_addresses(mail: Message) -> list[str]:
    """Where a mail was delivered: ``Delivered-To`` and ``X-Original-To`` (set by the
    receiving MTA from the envelope), then ``To`` and ``Cc``; addresses only, in that
    order, each once."""
    seen: dict[str, str] = {}
    for name in ("Delivered-To", "X-Original-To", "To", "Cc"):
        values = [str(value) for value in mail.get_all(name, [])]
        for _, address in getaddresses(values):
            if "@" in address:
                seen.setdefault(address.lower(), address)
    return list(seen.values())
