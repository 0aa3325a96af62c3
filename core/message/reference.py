"""The slow, obviously correct way to personalise a template: the stdlib ``email``
package parses it, values are substituted into the decoded texts, and the stdlib writes
the message again. About a millisecond a message, a hundred times the compiled path.

Never used to send. Tests compare the fast path's messages with these (same decoded
headers, same decoded parts), and ``bench/message_build.py`` measures both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser

from core.message.address import addr_spec
from core.message.context import header_contexts, html_contexts, text_contexts
from core.message.fields import EMAIL, ENCODERS, FIELD, Context, neutralise
from core.message.headers import ADDRESS_HEADERS, DROPPED, RAW_HEADERS, URL_LIST_HEADERS
from core.message.unsubscribe import TemplateOptions


def personalise(
    text: str, values: Mapping[str, str], contexts: Callable[[str], list[Context]]
) -> str:
    """``text`` with every field replaced by its value encoded for its context."""
    found = contexts(text)
    index = iter(range(len(found)))

    def value(match: object) -> str:
        assert hasattr(match, "group")
        context = found[next(index)]
        given = values.get(match.group(1), "")
        return ENCODERS[context](given) if given else match.group(2) or ""

    return FIELD.sub(value, text)


def _all_urls(text: str) -> list[Context]:
    return [Context.URL] * len(FIELD.findall(text))


def _all_ascii(text: str) -> list[Context]:
    return [Context.ASCII] * len(FIELD.findall(text))


def _url_list(text: str) -> list[Context]:
    """RFC 2369: URLs in <…>; a value anywhere else made ASCII."""
    contexts = header_contexts(text, bracketed_urls=True)
    return [Context.ASCII if context is Context.TEXT else context for context in contexts]


def _attachment(part: EmailMessage) -> bool:
    return (
        part.get_content_disposition() == "attachment"
        or part.get_param("filename", header="content-disposition") is not None
        or part.get_param("name") is not None
    )


def _address(display: str, spec: str) -> Address:
    local, at, domain = addr_spec(spec).rpartition("@")
    if not at:
        local, domain = addr_spec(spec), ""
    return Address(display_name=display.strip(" \t"), username=local.strip('"'), domain=domain)


def render_reference(
    raw: bytes,
    fields: Mapping[str, str],
    *,
    to: str,
    message_id: str,
    date: str,
    options: TemplateOptions | None = None,
) -> bytes:
    """What the compiled template's ``render`` must be equivalent to."""
    options = options or TemplateOptions()
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    values = {name: neutralise(value) for name, value in fields.items()}
    values[EMAIL] = neutralise(to)

    def text(value: str) -> str:
        return personalise(value, values, header_contexts)

    headers = list(message.items())
    for name in {name for name, _ in headers}:
        del message[name]
    message["Message-ID"] = message_id
    message["Date"] = date
    if not any(name.lower() == "to" for name, _ in headers):
        message["To"] = _address("", to)
    unsubscribe = {"list-unsubscribe", "list-unsubscribe-post"}
    if not options.list_unsubscribe:
        unsubscribe = set()
    for name, value in headers:
        key = name.lower()
        if key in DROPPED or key in unsubscribe:
            continue
        if key == "to":
            [mailbox] = value.addresses
            message[name] = _address(text(mailbox.display_name), to)
        elif key in ADDRESS_HEADERS:
            message[name] = [
                _address(text(a.display_name), text(a.addr_spec)) for a in value.addresses
            ]
        elif key in URL_LIST_HEADERS:
            message[name] = personalise(str(value), values, _url_list)
        elif key in RAW_HEADERS:
            message[name] = personalise(str(value), values, _all_ascii)
        elif key == "list-id":
            message[name] = personalise(
                str(value), values, lambda v: header_contexts(v, bracketed_urls=True)
            )
        elif key.startswith("content-") or key == "mime-version":
            message[name] = value
        else:
            message[name] = text(str(value)).strip(" \t")
    urls = [url for url in (options.list_unsubscribe_mailto, options.list_unsubscribe_url) if url]
    if urls:
        filled = [personalise(url.strip(), values, _all_urls) for url in urls]
        filled = [
            url if url.lower().startswith(("mailto:", "https:")) else f"mailto:{url}"
            for url in filled
        ]
        message["List-Unsubscribe"] = ", ".join(f"<{url}>" for url in filled)
        if options.list_unsubscribe_url:
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for part in message.walk():
        if part.get_content_maintype() != "text" or part.is_multipart() or _attachment(part):
            continue
        content = part.get_content()
        if not FIELD.search(content):
            continue
        contexts = html_contexts if part.get_content_subtype() == "html" else text_contexts
        part.set_content(
            personalise(content, values, contexts),
            subtype=part.get_content_subtype(),
            charset="utf-8",
            cte="quoted-printable",
            disposition=part.get_content_disposition(),
            filename=part.get_filename(),
        )
    return message.as_bytes(policy=policy.SMTP)
