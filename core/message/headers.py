"""Compiling header sections: each header kept as written, re-encoded once, or rendered
per recipient; some dropped.

- Kept as written: a header without fields that is 7-bit and has no line over 998.
- Re-encoded once: raw UTF-8 (RFC 6532 templates) becomes encoded words in text, display
  names and List-Id's description, RFC 2231 parameters in Content-Type/-Disposition.
- Never encoded (:data:`RAW_HEADERS`: URL lists and message identifiers), where encoded
  words mean nothing: the template's text must be ASCII, and values are made so.
- Per recipient: headers with fields, and To (always the recipient's address).
- Dropped: see :data:`DROPPED`.

Fields are allowed in the message's own headers, never in MIME headers (Content-*,
MIME-Version), whose syntax a value could break.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email import policy
from email.headerregistry import ContentDispositionHeader, ContentTypeHeader

from core.message.address import (
    AddressHeader,
    Group,
    Mailbox,
    parse_addresses,
    recipient_header,
)
from core.message.context import header_contexts
from core.message.entity import Entity, Header
from core.message.errors import TemplateError
from core.message.fields import FIELD, Context, Segments, Slot, has_slots, segments
from core.message.params import mime_header
from core.message.words import MAX_LINE, fold, fold_text, phrase, unstructured

#: What a compiled message is made of: literal bytes, or a renderer of per-recipient
#: bytes from the field values.
Piece = bytes | Callable[[Mapping[str, str]], bytes]

#: Set per recipient (Message-ID, Date); Bcc, which every recipient would see; and the
#: traces of a previous delivery of a message saved from a mailbox (Received, signatures
#: that no longer verify, Return-Path that the receiving server sets).
DROPPED = frozenset(
    {
        "message-id",
        "date",
        "bcc",
        "return-path",
        "delivered-to",
        "x-original-to",
        "received",
        "received-spf",
        "authentication-results",
        "dkim-signature",
        "arc-seal",
        "arc-message-signature",
        "arc-authentication-results",
        "content-length",
    }
)
ADDRESS_HEADERS = frozenset({"from", "sender", "reply-to", "cc", "disposition-notification-to"})
#: Headers whose values are URLs in <…> (RFC 2369, RFC 8058) or message identifiers
#: (RFC 5322 §3.6.4): encoded words have no meaning there, so they go as they are, ASCII.
URL_LIST_HEADERS = frozenset(
    {
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-help",
        "list-subscribe",
        "list-post",
        "list-owner",
        "list-archive",
    }
)
RAW_HEADERS = URL_LIST_HEADERS | {"in-reply-to", "references"}
_UNSTRUCTURED_KEY = "x-unstructured"  # parsed as plain text by the stdlib header registry


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A part whose body was re-encoded: its new Content-Type and transfer encoding."""

    content_type: str
    params: dict[str, str]
    transfer_encoding: str


@dataclass(frozen=True, slots=True)
class TextHeader:
    """An unstructured header (Subject, X-…) with fields: encoded words when needed."""

    name: str
    value: Segments

    def __call__(self, values: Mapping[str, str]) -> bytes:
        return unstructured(self.name, self.value.fill(values))


@dataclass(frozen=True, slots=True)
class RawHeader:
    """A header where encoded words mean nothing (:data:`RAW_HEADERS`): in a URL list,
    fields inside ``<…>`` are URL components, percent-encoded; anywhere else a value's
    non-ASCII characters are percent-encoded, so the header is always 7-bit."""

    name: str
    value: Segments

    def __call__(self, values: Mapping[str, str]) -> bytes:
        return fold_text(self.name, self.value.fill(values))


@dataclass(frozen=True, slots=True)
class ListIdHeader:
    """List-Id (RFC 2919 §2): a description, which is a phrase (encoded words when it is
    not ASCII, like a display name), then the list's identifier in ``<…>``, ASCII."""

    name: str
    description: Segments
    identifier: Segments

    def __call__(self, values: Mapping[str, str]) -> bytes:
        words = phrase(self.description.fill(values))
        identifier = self.identifier.fill(values)
        return fold(self.name, [*words, identifier] if identifier else words)


def _is_raw(key: str) -> bool:
    return key in RAW_HEADERS


def _raw_header(header: Header) -> RawHeader:
    """A URL list or message identifiers; non-ASCII text in the template is an error."""
    value = header.value
    where = f"the {header.name} header"
    if header.key in URL_LIST_HEADERS:
        contexts = [
            Context.ASCII if context is Context.TEXT else context
            for context in header_contexts(value, bracketed_urls=True)
        ]
        parts = segments(value, contexts, where)
    else:
        parts = segments(value, Context.ASCII, where)
    _ascii_only(header, parts, "percent-encode it in a URL (é is %C3%A9)")
    return RawHeader(header.name, parts)


def _ascii_only(header: Header, parts: Segments, advice: str) -> None:
    """The template's own text (not the fields' names) in a header never encoded."""
    text = "".join(part for part in parts if isinstance(part, str))
    bad = next((character for character in text if not character.isascii()), None)
    if bad is not None:
        raise TemplateError(
            f"the {header.name} header holds {bad!r}, which it cannot carry (it is never "
            f"encoded): {advice}"
        )


def _list_id(header: Header) -> ListIdHeader:
    value = header.value.strip(" \t")
    where = f"the {header.name} header"
    opening = value.rfind("<")
    description, identifier = value, ""
    if opening >= 0 and value.endswith(">"):
        description, identifier = value[:opening], value[opening:]
    description = description.strip(" \t")
    if len(description) > 1 and description[0] == description[-1] == '"':
        description = re.sub(r"\\(.)", r"\1", description[1:-1])
    elif "=?" in description:
        description = str(policy.default.header_factory(_UNSTRUCTURED_KEY, description))
    list_id = segments(identifier, Context.URL, where)
    _ascii_only(header, list_id, "the list's identifier is ASCII, like <news.example.com>")
    return ListIdHeader(header.name, segments(description, Context.TEXT, where), list_id)


def _is_mime(key: str) -> bool:
    return key.startswith("content-") or key == "mime-version"


def _fits(raw: bytes) -> bool:
    return raw.isascii() and max(map(len, raw.split(b"\r\n"))) <= MAX_LINE


def _text(header: Header) -> str:
    """An unstructured header's text, its encoded words (if any) decoded."""
    value = header.value
    if "=?" in value:
        return str(policy.default.header_factory(_UNSTRUCTURED_KEY, value))
    return value


def _params_header(header: Header, rewrite: Rewrite | None = None) -> bytes:
    if rewrite is not None:
        return mime_header(header.name, rewrite.content_type, rewrite.params)
    parsed = policy.default.header_factory(header.key, header.value)
    if isinstance(parsed, ContentTypeHeader):
        return mime_header(header.name, parsed.content_type, parsed.params)
    assert isinstance(parsed, ContentDispositionHeader)
    return mime_header(header.name, parsed.content_disposition or "attachment", parsed.params)


def _once(header: Header) -> bytes:
    """A header without fields, re-encoded once because it cannot go as written."""
    key = header.key
    if key in ("content-type", "content-disposition"):
        return _params_header(header)
    if key in ADDRESS_HEADERS:
        return AddressHeader(header.name, parse_addresses(header.name, header.value))({})
    if key == "list-id":
        return _list_id(header)({})
    if (_is_raw(key) and header.value.isascii()) or key == "mime-version":
        return fold_text(header.name, header.value)
    return unstructured(header.name, _text(header))


def _no_fields_in_mime(header: Header, where: str) -> None:
    if FIELD.search(header.value):
        raise TemplateError(
            f"{where}: merge fields cannot be used in the {header.name} header "
            "(it describes the message's structure); remove the {{…}} from it"
        )


def compile_header(header: Header, names: set[str]) -> Piece:
    """One of the message's own headers (not To, not dropped)."""
    key = header.key
    if _is_mime(key):
        _no_fields_in_mime(header, "the message")
        return header.raw + b"\r\n" if _fits(header.raw) else _once(header)
    renderer: AddressHeader | RawHeader | ListIdHeader | TextHeader
    if key in ADDRESS_HEADERS:
        items = parse_addresses(header.name, header.value)
        if key == "from":
            _check_from(items, header)
        renderer = AddressHeader(header.name, items)
        fields = _slots_of(items)
    elif _is_raw(key):
        renderer = _raw_header(header)
        fields = list(renderer.value.slots)
    elif key == "list-id":
        renderer = _list_id(header)
        fields = [*renderer.description.slots, *renderer.identifier.slots]
    else:
        text = _text(header)
        where = f"the {header.name} header"
        renderer = TextHeader(header.name, segments(text, header_contexts(text), where))
        fields = list(renderer.value.slots)
    if not fields:
        return header.raw + b"\r\n" if _fits(header.raw) else renderer({})
    names.update(field.name for field in fields)
    return renderer


def _slots_of(items: tuple[Mailbox | Group, ...]) -> list[Slot]:
    found: list[Slot] = []
    for item in items:
        if isinstance(item, Mailbox):
            found += [p for p in (*item.display, *item.address) if isinstance(p, Slot)]
        else:
            found += [p for p in item.display if isinstance(p, Slot)]
            found += _slots_of(item.members)
    return found


def _check_from(items: tuple[Mailbox | Group, ...], header: Header) -> None:
    mailboxes = [item for item in items if isinstance(item, Mailbox)]
    if not mailboxes:
        raise TemplateError(
            f"the From header names no address ({header.value!r}): "
            "write it like From: Example Club <news@example.com>"
        )
    for mailbox in mailboxes:
        if has_slots(mailbox.address):
            continue
        address = "".join(str(part) for part in mailbox.address)
        local, at, domain = address.rpartition("@")
        if not at or not domain or not local:
            raise TemplateError(
                f"the From address {address!r} has no domain: write it in full, "
                "like news@example.com (the domain is where replies and bounces go)"
            )


def recipient(headers: tuple[Header, ...], names: set[str]) -> Piece:
    """The To header: the template's display name (fields allowed), the recipient's
    address. A To naming several addresses or a group is an error: each recipient gets
    their own message, addressed to them alone."""
    to = [header for header in headers if header.key == "to"]
    if not to:
        return recipient_header("To", Segments())
    items = parse_addresses(to[0].name, to[0].value)
    if len(items) != 1 or not isinstance(items[0], Mailbox):
        raise TemplateError(
            f"the To header names {to[0].value!r}: each recipient gets a message addressed "
            "to them alone, so To holds one address, e.g. To: {{first_name}} <{{email}}>"
        )
    names.update(slot.name for slot in items[0].display.slots)
    return recipient_header(to[0].name, items[0].display)


def part_headers(entity: Entity, rewrite: Rewrite | None) -> list[bytes]:
    """A body part's headers: no fields allowed; Content-Type and the transfer encoding
    replaced when the body was re-encoded."""
    out: list[bytes] = []
    for header in entity.headers:
        key = header.key
        if FIELD.search(header.value):
            _no_fields_in_mime(header, entity.where)
        if key == "content-length":
            continue
        out.append(_part_header(header, rewrite))
    if rewrite is not None:
        out += _missing(entity, rewrite, top=False)
    return out


def _part_header(header: Header, rewrite: Rewrite | None) -> bytes:
    if rewrite is not None and header.key == "content-type":
        return _params_header(header, rewrite)
    if rewrite is not None and header.key == "content-transfer-encoding":
        return f"{header.name}: {rewrite.transfer_encoding}\r\n".encode("ascii")
    return header.raw + b"\r\n" if _fits(header.raw) else _once(header)


def rewritten(header: Header, rewrite: Rewrite) -> bytes | None:
    """A top-level MIME header replaced because the body was re-encoded, else None."""
    if header.key in ("content-type", "content-transfer-encoding"):
        return _part_header(header, rewrite)
    return None


def _missing(entity: Entity, rewrite: Rewrite, *, top: bool) -> list[bytes]:
    present = {header.key for header in entity.headers}
    out: list[bytes] = []
    if top and "mime-version" not in present:
        out.append(b"MIME-Version: 1.0\r\n")
    if "content-type" not in present:
        out.append(mime_header("Content-Type", rewrite.content_type, rewrite.params))
    if "content-transfer-encoding" not in present:
        out.append(f"Content-Transfer-Encoding: {rewrite.transfer_encoding}\r\n".encode())
    return out


def top_headers(
    entity: Entity, rewrite: Rewrite | None, names: set[str], *, drop: frozenset[str]
) -> list[Piece]:
    """The message's header section, less Message-ID and Date (set per recipient)."""
    headers = entity.headers
    counts = {key: sum(h.key == key for h in headers) for key in ("from", "to")}
    if not counts["from"]:
        raise TemplateError("the message has no From header: add one with your address")
    if counts["from"] > 1 or counts["to"] > 1:
        twice = "From" if counts["from"] > 1 else "To"
        raise TemplateError(f"the message has more than one {twice} header: keep one")
    out: list[Piece] = []
    if not counts["to"]:
        out.append(recipient(headers, names))
    for header in headers:
        key = header.key
        if key in DROPPED or key in drop:
            continue
        if key == "to":
            out.append(recipient(headers, names))
            continue
        replaced = rewritten(header, rewrite) if rewrite is not None else None
        out.append(replaced if replaced is not None else compile_header(header, names))
    if rewrite is not None:
        out += _missing(entity, rewrite, top=True)
    return out
