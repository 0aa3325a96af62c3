"""Where a field sits decides how its value is encoded: text, HTML, or a URL."""

from __future__ import annotations

import pytest

from core.message.context import header_contexts, html_contexts, text_contexts
from core.message.fields import Context, segments

T, H, U, W = Context.TEXT, Context.HTML, Context.URL, Context.URL_WHOLE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {{name}}", [T]),
        ("https://x.test/u?e={{email}}&t={{token}}", [U, U]),
        ("see http://x.test/{{path}}. Bye {{name}}", [U, T]),
        ("HTTPS://X.TEST/?a={{a|b c}} {{name}}", [U, T]),  # a default with a space
        ("{{site}}/path and www.x.test/{{a}}", [T, T]),  # no scheme: not a URL
        ("mailto:{{email}}", [T]),  # only http(s) URLs in text
    ],
)
def test_text(text: str, expected: list[Context]) -> None:
    assert text_contexts(text) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Hi {{name}}</p>", [H]),
        ('<a href="https://x.test/u?e={{email}}">', [U]),
        ("<a href='https://x.test/{{a}}/{{b}}'>", [U, U]),
        ("<a href=https://x.test/?u={{email}}>", [U]),
        ('<a href="{{link}}">go</a>', [W]),
        ('<a href=" {{link}}?x={{y}}">', [W, U]),
        ('<img SRC="https://x.test/p.gif?id={{id}}" alt="{{name}}">', [U, H]),
        ('<a title="{{name}}" href="mailto:{{email}}">', [H, U]),
        ('<td style="background:url(https://x.test/{{img}})">', [U]),
        ("<p>Visit https://x.test/?r={{ref}} today, {{name}}</p>", [U, H]),
        ('<a href="https://x.test/?u={{email|a b"c}}">', [U]),
    ],
)
def test_html(html: str, expected: list[Context]) -> None:
    assert html_contexts(html) == expected


def test_headers() -> None:
    assert header_contexts("Hello {{name}}") == [T]
    assert header_contexts("see https://x.test/{{a}}") == [U]
    value = "<mailto:u@x.test?subject={{email}}>, <https://x.test/{{token}}> {{note}}"
    assert header_contexts(value, bracketed_urls=True) == [U, U, T]
    assert header_contexts(value) == [T, U, T]


@pytest.mark.parametrize(
    ("context", "value", "encoded"),
    [
        (T, "A&B <c>", "A&B <c>"),
        (H, "A&B <c> \"d\" 'e'", "A&amp;B &lt;c&gt; &quot;d&quot; &#x27;e&#x27;"),
        (U, "a&b= ?#/ +@\u00e9~", "a%26b%3D%20%3F%23%2F%20%2B%40%C3%A9~"),
        (W, 'https://x.test/a b?q="1"&r=\u00e9', "https://x.test/a%20b?q=%221%22&amp;r=%C3%A9"),
    ],
)
def test_values_are_encoded_for_their_context(context: Context, value: str, encoded: str) -> None:
    parts = segments("{{v}}", context)
    assert parts.fill({"v": value}) == encoded


def test_defaults_are_template_text_inserted_as_written() -> None:
    parts = segments("{{v|<b>friend</b>}}", H)
    assert parts.fill({"v": ""}) == "<b>friend</b>"
    assert parts.fill({"v": "<i>"}) == "&lt;i&gt;"
