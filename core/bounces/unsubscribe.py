"""Unsubscribe requests that arrive as mail, through the campaign's List-Unsubscribe mailto.

Owns the matching rule. The campaign's ``list_unsubscribe_mailto`` setting is a template
(``core.message.unsubscribe``): ``mailto:unsubscribe@sender.test?subject=unsubscribe``, or
with merge fields that make each recipient's URL their own, in the address
(``mailto:unsub+{{token}}@sender.test``) or in the subject
(``mailto:unsubscribe@sender.test?subject=unsubscribe%20{{token}}``). A mail client
turns the URL into a mail: To is the address, Subject the ``subject`` value, both
percent-decoded (RFC 6068).

A mail is an unsubscribe request when one of the addresses it was delivered to
(``Delivered-To``, ``X-Original-To``, ``To``, ``Cc``) has the template's address form,
and it is not machine-made (``Auto-Submitted`` other than ``no``: an out-of-office
reply or a bounce never unsubscribes anyone). Its recipient is then found by

1. the merge-field values the template put in the address and subject (the *token*):
   the mail names the one recipient whose values they are (compared ignoring case);
2. else, when the template has no fields or the mail lost them (a client that drops the
   subject), the mail's ``From`` address, which must be a campaign recipient's.

The token is the stronger evidence: ``From`` can be forged, a token comes only from the
message we sent. Pure: it reads mails and names values, it changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from urllib.parse import unquote

from core.bounces.dsn import envelope_addresses
from core.message.errors import TemplateError
from core.message.fields import Context, Slot, segments
from core.outgoing import template_options

#: What mail clients put before a subject they reply with or forward (English, German,
#: Nordic, Dutch, French): "Re: ", "AW: ", "Fwd: "...
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|fwd?|aw|wg|sv|vs|antw|tr)\s*:)+\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A template part (address or subject) as a regex: literal text percent-decoded,
    each field a capture group, in order."""

    regex: re.Pattern[str]
    names: tuple[str, ...]

    @classmethod
    def compile(cls, template: str, what: str) -> _Pattern:
        parts = segments(template, Context.URL, f"the List-Unsubscribe {what}").parts
        regex = []
        names = []
        for part in parts:
            if isinstance(part, Slot):
                regex.append(r"\s*(.+?)\s*")
                names.append(part.name)
            else:
                regex.append(re.escape(unquote(part)))
        return cls(re.compile("".join(regex), re.IGNORECASE | re.DOTALL), tuple(names))

    def capture(self, text: str) -> tuple[str, ...] | None:
        """The fields' values if ``text`` is the template filled in, else None."""
        match = self.regex.fullmatch(text.strip())
        return None if match is None else tuple(group.strip() for group in match.groups())


@dataclass(frozen=True, slots=True)
class Request:
    """An unsubscribe request: the token values it carried (in :attr:`UnsubscribeRule.names`
    order; () when it carried none) and its ``From`` address."""

    token: tuple[str, ...]
    sender: str


@dataclass(frozen=True, slots=True)
class UnsubscribeRule:
    """The matching rule of one campaign's List-Unsubscribe mailto (see the module)."""

    address: _Pattern
    subject: _Pattern | None

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> UnsubscribeRule | None:
        """The rule of a campaign's settings; None when it has no mailto (then no mail
        can be an unsubscribe request). Raises TemplateError for a mailto the campaign
        could not have sent."""
        mailto = (template_options(settings).list_unsubscribe_mailto or "").strip()
        if not mailto:
            return None
        if mailto.lower().startswith("mailto:"):
            mailto = mailto[len("mailto:") :]
        address, _, query = mailto.partition("?")
        if "@" not in address:
            raise TemplateError(f"the List-Unsubscribe mailto {mailto!r} has no address")
        subject = None
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            if name.lower() == "subject" and value:
                subject = _Pattern.compile(value, "mailto: subject")
        return cls(_Pattern.compile(address, "mailto: address"), subject)

    @property
    def names(self) -> tuple[str, ...]:
        """The merge fields of the token: the address's, then the subject's."""
        return self.address.names + (self.subject.names if self.subject else ())

    def key(self, values: Mapping[str, str]) -> tuple[str, ...]:
        """A recipient's token, as :meth:`read` captures it (``values``: its merge
        fields and ``email``)."""
        return tuple(values.get(name, "").strip().casefold() for name in self.names)

    def read(self, mail: Message) -> Request | None:
        """The request ``mail`` is, or None if it is not one."""
        automatic = str(mail.get("Auto-Submitted", "no")).strip().lower()
        if not automatic.startswith("no"):
            return None
        address_token: tuple[str, ...] | None = None
        for address in envelope_addresses(mail):
            address_token = self.address.capture(address)
            if address_token is not None:
                break
        if address_token is None:
            return None
        subject_token: tuple[str, ...] | None = ()
        if self.subject is not None and self.subject.names:
            subject = _REPLY_PREFIX.sub("", _decoded(mail.get("Subject", "")))
            subject_token = self.subject.capture(subject)
        senders = getaddresses([str(value) for value in mail.get_all("From", [])])
        sender = next((address for _, address in senders if "@" in address), "")
        if subject_token is None:
            return Request((), sender)  # the token is incomplete: From alone decides
        token = tuple(value.casefold() for value in address_token + subject_token)
        return Request(token, sender)


def _decoded(value: object) -> str:
    """A header's text with its RFC 2047 words decoded; never raises."""
    try:
        return str(make_header(decode_header(str(value))))
    except (MessageError, LookupError, ValueError, UnicodeError):  # a broken word
        return str(value)

