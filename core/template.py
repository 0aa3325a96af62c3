"""The message each recipient gets: the campaign's template with ``{{field}}`` merged in.

The public face of :mod:`core.message`. A :class:`MessageTemplate` is compiled once from
the .eml bytes (loaded, or built with :meth:`MessageTemplate.from_parts`); rendering a
recipient's message joins literal bytes with a few per-recipient pieces, each value
encoded for where it lands: encoded words in headers, HTML-escaped in HTML,
percent-encoded in URLs, quoted-printable in bodies. The output is CRLF, 7-bit unless an
address has a non-ASCII local part (then ``needs_smtputf8``), no line over 998 octets,
and no value can create or end a header (CR, LF and NUL in values become spaces).

``To``, ``Message-ID`` and ``Date`` are set per recipient, the last two fixed by the
engine at the first attempt so that every retry sends the same bytes (greylisting keys
on them). Compiling is deterministic: the stored .eml (:attr:`MessageTemplate.source`)
recompiles to the same messages when a campaign resumes.
"""

from __future__ import annotations

import functools
import random
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from core.message.address import a_label
from core.message.build import Attachment, MessageParts, build_eml
from core.message.compile import WireMessage, compile_message
from core.message.errors import TemplateError
from core.message.fields import EMAIL, has_unsafe, neutralise
from core.message.preview import AttachmentInfo, MessagePreview, describe
from core.message.unsubscribe import TemplateOptions

__all__ = [
    "Attachment",
    "AttachmentInfo",
    "MessageParts",
    "MessagePreview",
    "MessageTemplate",
    "RenderedMessage",
    "TemplateError",
    "TemplateOptions",
    "WireMessage",
    "date_header",
    "describe",
    "new_message_id",
]

#: What :meth:`MessageTemplate.preview` stamps when not told otherwise.
PREVIEW_MESSAGE_ID = "<preview@mxmailer.invalid>"


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    data: bytes
    #: Raw UTF-8 in the headers (RFC 6532): only servers offering SMTPUTF8 may get it.
    needs_smtputf8: bool


class MessageTemplate:
    """A compiled template. ``raw`` is an .eml (RFC 5322, raw UTF-8 headers accepted);
    ``options`` add what the .eml does not say (List-Unsubscribe)."""

    def __init__(self, raw: bytes, *, options: TemplateOptions | None = None) -> None:
        self.source = raw
        self.options = options or TemplateOptions()
        self._compiled = compile_message(raw, self.options)
        #: Every field the message uses (``email`` too, if used).
        self.fields = self._compiled.fields

    @classmethod
    def from_parts(
        cls, parts: MessageParts, *, options: TemplateOptions | None = None
    ) -> MessageTemplate:
        """A template built from its parts; store its :attr:`source` like a loaded .eml."""
        return cls(build_eml(parts), options=options)

    def unknown_fields(self, columns: Iterable[str]) -> list[str]:
        """Fields used in the message that no column provides (``email`` always exists)."""
        known = {*columns, EMAIL}
        return sorted(field for field in self.fields if field not in known)

    def render(
        self, fields: Mapping[str, str], *, to: str, message_id: str, date: str
    ) -> RenderedMessage:
        head, body = self._compiled.render(fields, to)
        stamp = _stamp(message_id, date)
        data = b"".join((stamp, head, b"\r\n", body))
        return RenderedMessage(data, not (head.isascii() and stamp.isascii()))

    def render_wire(
        self, fields: Mapping[str, str], *, to: str, message_id: str, date: str
    ) -> WireMessage:
        """What :meth:`render` gives, ending in CRLF, for the send path: with whether its
        lines are proven short and whether any may start with ".", decided from the
        rendered values alone (``core.smtp.body.Body.from_checked`` takes such bytes
        without a pass over the whole message; others need ``Body.from_bytes``)."""
        return self._compiled.wire(fields, to, _stamp(message_id, date))

    def preview(
        self,
        fields: Mapping[str, str],
        *,
        to: str,
        message_id: str = PREVIEW_MESSAGE_ID,
        date: str | None = None,
    ) -> RenderedMessage:
        """The message ``to`` would get, stamped with a fixed Message-ID (and now)."""
        return self.render(
            fields, to=to, message_id=message_id, date=date or date_header(time.time())
        )


def _stamp(message_id: str, date: str) -> bytes:
    """The header lines set per recipient, first in every message."""
    if has_unsafe(message_id + date):
        message_id, date = neutralise(message_id), neutralise(date)
    return f"Message-ID: {message_id}\r\nDate: {date}\r\n".encode()


def new_message_id(sender: str) -> str:
    """A unique Message-ID at the sender's domain (RFC 5322 §3.6.4): 128 random bits.

    Uniqueness is all a Message-ID needs, not secrecy: a generator seeded once from the
    system's entropy avoids a system call per message (it was 3 % of the engine's time).
    An internationalised domain is given in its A-label form, keeping the header ASCII.
    """
    return f"<{_ID_BITS.randbytes(16).hex()}{_id_domain(sender)}"


_ID_BITS = random.Random(secrets.randbits(256))


@functools.lru_cache(maxsize=16)
def _id_domain(sender: str) -> str:
    """``@domain>`` for a Message-ID of ``sender``: a campaign has one sender."""
    domain = sender.rpartition("@")[2] if "@" in sender else ""
    if not domain.isascii():
        domain = a_label(domain) or ""
    return f"@{domain or 'localhost.invalid'}>"


def date_header(at: float) -> str:
    """An RFC 5322 Date (UTC offset included) for the second ``at`` falls in."""
    return _date_of_second(int(at))


@functools.lru_cache(maxsize=4)
def _date_of_second(second: int) -> str:
    # Formatting a date costs ~10 µs; a campaign stamps thousands per second.
    return format_datetime(datetime.fromtimestamp(second, UTC).astimezone())
