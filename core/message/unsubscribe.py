"""List-Unsubscribe (RFC 2369) with one-click (RFC 8058), per recipient.

Configured with the template, not per render: the URLs are templates whose fields (the
recipient's ``{{email}}``, a per-recipient ``{{token}}`` column) are percent-encoded.
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` is added when an https URL is
given, which is what Gmail and Yahoo ask of bulk senders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.message.errors import TemplateError
from core.message.fields import Context, Segments, Slot, segments
from core.message.headers import Piece
from core.message.words import fold

#: RFC 8058 §3.1, exactly.
ONE_CLICK = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
# What a URL template may hold outside its fields: printable ASCII, no <, >, quotes.
_URL_TEXT = re.compile(r"[!#-;=?-~]*")


@dataclass(frozen=True, slots=True)
class TemplateOptions:
    """How the template is completed for each recipient.

    ``list_unsubscribe_mailto``: ``mailto:unsubscribe@example.com?subject=unsubscribe``
    (or just the address); ``list_unsubscribe_url``: ``https://…`` receiving the RFC 8058
    POST, e.g. ``https://example.com/u?e={{email}}&t={{token}}``.
    """

    list_unsubscribe_mailto: str | None = None
    list_unsubscribe_url: str | None = None

    @property
    def list_unsubscribe(self) -> bool:
        return bool(self.list_unsubscribe_mailto or self.list_unsubscribe_url)


@dataclass(frozen=True, slots=True)
class ListUnsubscribe:
    urls: tuple[Segments, ...]

    def __call__(self, values: Mapping[str, str]) -> bytes:
        tokens = [f"<{url.fill(values)}>," for url in self.urls]
        tokens[-1] = tokens[-1][:-1]
        return fold("List-Unsubscribe", tokens)


def _url(text: str, what: str) -> Segments:
    parts = segments(text.strip(), Context.URL, f"the List-Unsubscribe {what}")
    for part in parts:
        if isinstance(part, str) and not _URL_TEXT.fullmatch(part):
            raise TemplateError(
                f"the List-Unsubscribe {what} {text!r} is not a URL: it may hold no spaces, "
                "quotes, <, > or non-ASCII characters (percent-encode them)"
            )
    return parts


def unsubscribe_headers(options: TemplateOptions, names: set[str]) -> list[Piece]:
    urls: list[Segments] = []
    mailto = (options.list_unsubscribe_mailto or "").strip()
    if mailto:
        if not mailto.lower().startswith("mailto:"):
            if "@" not in mailto:
                raise TemplateError(
                    f"the List-Unsubscribe address {mailto!r} is neither an address nor a "
                    "mailto: URL"
                )
            mailto = "mailto:" + mailto
        urls.append(_url(mailto, "mailto: URL"))
    url = (options.list_unsubscribe_url or "").strip()
    if url:
        if not url.lower().startswith("https://"):
            raise TemplateError(
                f"the List-Unsubscribe URL {url!r} must start with https:// "
                "(one-click unsubscribe, RFC 8058, requires HTTPS)"
            )
        urls.append(_url(url, "URL"))
    if not urls:
        return []
    for parts in urls:
        names.update(part.name for part in parts if isinstance(part, Slot))
    header = ListUnsubscribe(tuple(urls))
    dynamic = any(isinstance(part, Slot) for parts in urls for part in parts)
    pieces: list[Piece] = [header if dynamic else header({})]
    if url:
        pieces.append(ONE_CLICK)
    return pieces
