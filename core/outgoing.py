"""What the engine sends each recipient: the campaign's template rendered, then signed.

One place turns a campaign file's message and settings into messages, so that the
engine, ``mxmailer preview`` and the window build the very same bytes. The settings keep
only the DKIM key's *path*, selector and domain (never the key), and the List-Unsubscribe
templates; the key is read and checked when the campaign is opened.

A retry must send the same bytes as the first attempt (rspamd's greylisting keys on a
hash of the body): Message-ID and Date are fixed at the first attempt by the engine, and
the DKIM ``t=`` tag is taken from that Date, so a re-signed retry is identical.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

from core.dkim import DKIMSigner
from core.smtp.body import Body
from core.template import MessageTemplate, RenderedMessage, TemplateError, TemplateOptions

#: The campaign settings this module reads (``core.store.CampaignStore.settings``).
LIST_UNSUBSCRIBE_MAILTO: Final = "list_unsubscribe_mailto"
LIST_UNSUBSCRIBE_URL: Final = "list_unsubscribe_url"
DKIM_KEY: Final = "dkim_key"
DKIM_SELECTOR: Final = "dkim_selector"
DKIM_DOMAIN: Final = "dkim_domain"
#: Set on a real campaign the window made from a CSV before its message was written:
#: nothing is built from it (so nothing is sent, by the window or ``mxmailer send``)
#: until the message editor saves the written message as a new campaign.
MESSAGE_DRAFT: Final = "message_draft"
#: Set on a campaign the window made for its sandbox lab: it is only ever sent to a lab
#: on loopback (the window's own, or ``mxmailer lab``), never for real.
SANDBOX: Final = "sandbox"
DRAFT_REFUSED: Final = (
    "the campaign's message is not written yet: open the campaign in MX Mailer's window "
    "and write it (Campaign > Edit message), then send the campaign the editor saves"
)


@dataclass(frozen=True, slots=True)
class DKIMSettings:
    key_file: str
    selector: str
    domain: str


def template_options(settings: Mapping[str, object]) -> TemplateOptions:
    """The List-Unsubscribe options a campaign's settings hold."""
    return TemplateOptions(
        list_unsubscribe_mailto=_text(settings, LIST_UNSUBSCRIBE_MAILTO),
        list_unsubscribe_url=_text(settings, LIST_UNSUBSCRIBE_URL),
    )


def dkim_settings(settings: Mapping[str, object]) -> DKIMSettings | None:
    key, selector, domain = (
        _text(settings, name) for name in (DKIM_KEY, DKIM_SELECTOR, DKIM_DOMAIN)
    )
    if key is None or selector is None or domain is None:
        return None
    return DKIMSettings(key, selector, domain)


class OutgoingMessages:
    """The template and the optional signer of one campaign.

    Raises :class:`core.template.TemplateError` or :class:`core.dkim.DKIMError` when the
    message or the key cannot be used (or the message is a draft); both say what to do.
    """

    def __init__(self, message: bytes, settings: Mapping[str, object]) -> None:
        if settings.get(MESSAGE_DRAFT) is True:
            raise TemplateError(DRAFT_REFUSED)
        self.template = MessageTemplate(message, options=template_options(settings))
        dkim = dkim_settings(settings)
        self.signer = (
            None
            if dkim is None
            else DKIMSigner(dkim.key_file, selector=dkim.selector, domain=dkim.domain)
        )

    def render(
        self, fields: Mapping[str, str], *, to: str, message_id: str, date: str
    ) -> RenderedMessage:
        rendered = self.template.render(fields, to=to, message_id=message_id, date=date)
        if self.signer is None:
            return rendered
        signed = self.signer.sign(rendered.data, at=_timestamp(date))
        return RenderedMessage(signed, rendered.needs_smtputf8)

    def render_body(
        self, fields: Mapping[str, str], *, to: str, message_id: str, date: str
    ) -> tuple[Body, bool]:
        """What the session sends for :meth:`render`'s message, and whether it needs
        SMTPUTF8. Raises :class:`core.smtp.BodyLineTooLongError` for a line over 998.

        An unsigned message whose lines the template proves short skips the pass of
        ``Body.from_bytes`` over every byte (half the cost of building a message); a
        signed one, or one whose values may have made a long line, gets the full pass.
        """
        if self.signer is None:
            message = self.template.render_wire(fields, to=to, message_id=message_id, date=date)
            if message.short_lines:
                body = Body.from_checked(message.data, dots=message.dots)
            else:
                body = Body.from_bytes(message.data, crlf_only=True)
            return body, message.needs_smtputf8
        rendered = self.render(fields, to=to, message_id=message_id, date=date)
        return Body.from_bytes(rendered.data, crlf_only=True), rendered.needs_smtputf8


def _text(settings: Mapping[str, object], name: str) -> str | None:
    value = settings.get(name)
    return value if isinstance(value, str) and value else None


@functools.lru_cache(maxsize=4)
def _timestamp(date: str) -> float:
    # A campaign stamps thousands of messages with the same Date second.
    return parsedate_to_datetime(date).timestamp()
