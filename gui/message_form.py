"""The Message editor's logic, without Qt: the form, what is wrong with it, its preview.

Owns turning what the user typed (From, Reply-To, Subject, text, HTML, attachments) into
:class:`core.template.MessageParts` and a compiled template, the inline problems in the
user's words (a From missing or without a domain, fields no column provides, what the
template compiler refused), reading a loaded .eml back into a form, the preview of the
message recipient N gets, and the campaign file the edited message becomes.

It never touches a widget, and it never changes a campaign file: a campaign that has
started keeps its message (retries must send the same bytes), so the edited message goes
into a *new* sandbox campaign holding the same recipients.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path
from typing import Final

from core.outgoing import MESSAGE_DRAFT, template_options
from core.recipients import ImportSummary
from core.store import CampaignStore, NewRecipient, RecipientState, Status
from core.template import (
    Attachment,
    MessageParts,
    MessagePreview,
    MessageTemplate,
    TemplateError,
    describe,
)
from gui.campaign_build import build_campaign
from gui.sandbox import SampleCampaign, build_sandbox_campaign, is_sandbox

#: The field every recipient has, whatever the CSV's columns (core.message.fields.EMAIL).
EMAIL_FIELD: Final = "email"
#: Statuses a recipient may have before anything was sent: set by the import itself.
UNSENT: Final = frozenset({Status.QUEUED, Status.INVALID, Status.SUPPRESSED})


@dataclass(frozen=True, slots=True)
class MessageForm:
    """What the editor's fields hold. An empty ``html`` is "no HTML part"."""

    from_: str = ""
    subject: str = ""
    text: str = ""
    html: str = ""
    reply_to: str = ""
    attachments: tuple[Attachment, ...] = ()

    def parts(self) -> MessageParts:
        return MessageParts(
            from_=self.from_.strip(),
            subject=self.subject,
            text=self.text,
            html=self.html if self.html.strip() else None,
            reply_to=self.reply_to.strip() or None,
            attachments=self.attachments,
        )


@dataclass(frozen=True, slots=True)
class Checked:
    """The form compiled, or the problems that keep it from being saved."""

    template: MessageTemplate | None
    problems: tuple[str, ...] = ()

    @property
    def saveable(self) -> bool:
        return self.template is not None and not self.problems


def merge_fields(columns: Iterable[str]) -> list[str]:
    """The fields the "Insert merge field" menu offers: the columns, then ``email``."""
    names = list(dict.fromkeys(columns))
    if EMAIL_FIELD not in names:
        names.append(EMAIL_FIELD)
    return names


def placeholder(name: str) -> str:
    return "{{" + name + "}}"


def address_problem(label: str, value: str, *, required: bool) -> str | None:
    """Why ``value`` (a From or Reply-To as written in a header) cannot be used."""
    if not value.strip():
        return f"{label} is missing: give the address the message is from." if required else None
    addresses = [address for _, address in getaddresses([value]) if address]
    if len(addresses) != 1:
        return f"{label} must hold one address, like “Club <news@example.com>”."
    local, at, domain = addresses[0].rpartition("@")
    if not at or not local or "." not in domain.strip("."):
        return f"{label} “{addresses[0]}” has no domain: write it as name@example.com."
    return None


def check(
    form: MessageForm, columns: Sequence[str], settings: Mapping[str, object] | None = None
) -> Checked:
    """Compile the form as the campaign would (its List-Unsubscribe settings included)
    and list what is wrong, in the user's words."""
    from_problem = address_problem("From", form.from_, required=True)
    reply_problem = address_problem("Reply-To", form.reply_to, required=False)
    problems = [problem for problem in (from_problem, reply_problem) if problem is not None]
    if not form.subject.strip():
        problems.append("The Subject is empty.")
    try:
        template = MessageTemplate.from_parts(
            form.parts(), options=template_options(settings or {})
        )
    except TemplateError as error:
        if not problems:  # else it repeats an address problem said above
            problems.append(f"The message cannot be built: {error}.")
        return Checked(None, tuple(problems))
    unknown = template.unknown_fields(columns)
    if unknown:
        known = ", ".join(merge_fields(columns))
        problems.extend(
            f"Unknown field {placeholder(name)}: the campaign's columns are {known}."
            for name in unknown
        )
    return Checked(template, tuple(problems))


def preview_for(template: MessageTemplate, recipient: RecipientState) -> MessagePreview:
    """What ``recipient`` would read: the template merged with that row's fields."""
    data = template.preview(recipient.fields, to=recipient.email).data
    return describe(data)


def preview_bytes(template: MessageTemplate, recipient: RecipientState) -> bytes:
    return template.preview(recipient.fields, to=recipient.email).data


def headers_text(preview: MessagePreview) -> str:
    """The decoded headers a reader sees, one per line."""
    shown = ("From", "Reply-To", "To", "Subject")
    return "\n".join(
        f"{name}: {value}" for name in shown if (value := preview.header(name)) is not None
    )


def form_from_eml(data: bytes) -> MessageForm:
    """The form a loaded .eml fills: headers decoded, bodies, attachments with data.

    Raises TemplateError when the file is not a message the campaign could send.
    """
    try:
        message = BytesParser(policy=policy.default).parsebytes(data)
        if not isinstance(message, EmailMessage) or not message.keys():
            raise TemplateError("the file is not an e-mail message")
        text_part = message.get_body(("plain",))
        html_part = message.get_body(("html",))
        attachments = tuple(_attachments(message, text_part, html_part))
        return MessageForm(
            from_=str(message.get("From", "")),
            subject=str(message.get("Subject", "")),
            text=_body(text_part),
            html=_body(html_part),
            reply_to=str(message.get("Reply-To", "")),
            attachments=attachments,
        )
    except (LookupError, ValueError) as error:  # unknown charset, broken encoded word
        if isinstance(error, TemplateError):
            raise
        raise TemplateError(f"the file cannot be read as a message: {error}") from error


def _body(part: object) -> str:
    if not isinstance(part, EmailMessage):
        return ""
    content = part.get_content()
    return content.replace("\r\n", "\n") if isinstance(content, str) else ""


def _attachments(
    message: EmailMessage, text_part: object, html_part: object
) -> Iterator[Attachment]:
    for part in message.walk():
        if part.is_multipart() or part is text_part or part is html_part:
            continue
        if part is message and part.get_content_maintype() == "text":
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        name = part.get_filename() or "attachment"
        yield Attachment(name, data, part.get_content_type())


def campaign_columns(store: CampaignStore) -> list[str]:
    """The campaign's columns (its first row's merge fields; one import, one layout)."""
    first = next(iter(store.states()), None)
    return list(first.fields) if first is not None else []


def nothing_sent(store: CampaignStore) -> bool:
    """No recipient was tried yet: every status is one the import set."""
    return all(count == 0 for status, count in store.counts().items() if status not in UNSENT)


def campaign_with_message(
    store: CampaignStore, message: bytes, folder: Path, *, now: float | None = None
) -> SampleCampaign:
    """A new campaign in ``folder``: ``store``'s recipients (statuses as imported) with
    ``message``, of the same kind as ``store`` (a sandbox campaign stays one; a real
    one keeps its sender and settings, and is a draft no more). The old file is left as
    it is."""
    summary = ImportSummary()

    def rows() -> Iterator[NewRecipient]:
        for state in store.states():
            status = state.status if state.status in UNSENT else Status.QUEUED
            summary.rows += 1
            if status is Status.QUEUED:
                summary.valid += 1
            elif status is Status.INVALID:
                summary.invalid += 1
            else:
                summary.suppressed += 1
            yield NewRecipient(state.email, state.domain, state.fields, status, state.reason)

    if is_sandbox(store):
        return build_sandbox_campaign(
            folder, rows, summary, message, stem="sandbox-edited", now=now
        )
    settings = {k: v for k, v in store.settings.items() if k != MESSAGE_DRAFT}
    path = build_campaign(
        folder, rows, message, sender=store.sender, settings=settings, stem="campaign", now=now
    )
    return SampleCampaign(path, summary)
