"""Which context each merge field of a text sits in: plain text, HTML, or a URL.

Decided once, when the template is compiled, from the text around the fields:

- in an HTML part, a field inside the value of a URL attribute (``href``, ``src``…) is a
  URL component, percent-encoded; when it starts the value it is the whole URL (its
  reserved characters kept, so ``href="{{link}}"`` stays a link);
- anywhere (HTML, plain text, header text), a field inside an ``http(s)://`` URL is a URL
  component: ``https://x.test/u?e={{email}}`` gets ``e=ann%40x.test``;
- in a header such as ``List-Unsubscribe``, a field inside ``<…>`` is a URL component;
- everything else is HTML text (escaped) in HTML, and text elsewhere.
"""

from __future__ import annotations

import re

from core.message.fields import FIELD, Context

# One private-use character stands for each field while the text is scanned, so that a
# default with spaces or quotes cannot change where a URL or an attribute ends.
_MARK = "\ue000"
_HTTP_URL = re.compile(r"https?://[^\s<>\"']*", re.IGNORECASE)
_BRACKETED = re.compile(r"<[^<>]*>")
_TAG = re.compile(r"<[A-Za-z][^<>]*>")
_ATTRIBUTE = re.compile(
    r"""([^\s"'<>/=]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>`]+))""", re.IGNORECASE
)
# HTML attributes whose value is a URL (HTML Living Standard, those a mail may use).
_URL_ATTRIBUTES = frozenset(
    {"href", "src", "action", "formaction", "background", "cite", "poster", "longdesc"}
)


def _marked(text: str) -> tuple[str, list[int]]:
    """The text with each field replaced by one mark, and the marks' positions."""
    out: list[str] = []
    marks: list[int] = []
    position = 0
    length = 0
    for match in FIELD.finditer(text):
        literal = text[position : match.start()]
        out.append(literal)
        length += len(literal)
        marks.append(length)
        out.append(_MARK)
        length += 1
        position = match.end()
    out.append(text[position:])
    return "".join(out), marks


def _in_spans(marks: list[int], spans: list[tuple[int, int]], contexts: list[Context]) -> None:
    for index, mark in enumerate(marks):
        if contexts[index] is Context.TEXT and any(start < mark < end for start, end in spans):
            contexts[index] = Context.URL


def text_contexts(text: str) -> list[Context]:
    """Plain text: URL components inside http(s) URLs, the rest text."""
    marked, marks = _marked(text)
    contexts = [Context.TEXT] * len(marks)
    _in_spans(marks, [m.span() for m in _HTTP_URL.finditer(marked)], contexts)
    return contexts


def header_contexts(text: str, *, bracketed_urls: bool = False) -> list[Context]:
    """Header text: like plain text; with ``bracketed_urls`` (List-* headers, RFC 2369)
    every ``<…>`` holds a URL."""
    marked, marks = _marked(text)
    contexts = [Context.TEXT] * len(marks)
    spans = [m.span() for m in _HTTP_URL.finditer(marked)]
    if bracketed_urls:
        spans += [m.span() for m in _BRACKETED.finditer(marked)]
    _in_spans(marks, spans, contexts)
    return contexts


def html_contexts(text: str) -> list[Context]:
    """HTML: URL attributes first, then http(s) URLs anywhere, then escaped text."""
    marked, marks = _marked(text)
    contexts = [Context.TEXT] * len(marks)
    position_of = {mark: index for index, mark in enumerate(marks)}
    for tag in _TAG.finditer(marked):
        for attribute in _ATTRIBUTE.finditer(marked, tag.start() + 1, tag.end() - 1):
            if attribute.group(1).lower() not in _URL_ATTRIBUTES:
                continue
            group = next(g for g in (2, 3, 4) if attribute.group(g) is not None)
            start, end = attribute.span(group)
            first = start + len(marked[start:end]) - len(marked[start:end].lstrip())
            for mark in range(start, end):
                if mark in position_of:
                    index = position_of[mark]
                    contexts[index] = Context.URL_WHOLE if mark == first else Context.URL
    _in_spans(marks, [m.span() for m in _HTTP_URL.finditer(marked)], contexts)
    return [Context.HTML if context is Context.TEXT else context for context in contexts]
