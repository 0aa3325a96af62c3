"""MIME header values with parameters (Content-Type, Content-Disposition), written so
that any file name or charset arrives intact: quoted when it is printable ASCII, else
RFC 2231 ``name*=utf-8''…`` with continuations, never raw 8-bit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from core.message.words import LINE, fold

# RFC 2231 §7 attribute-char: what needs no percent-encoding (quote keeps "_.-~" too).
_ATTRIBUTE_SAFE = "!#$&+^`|"
_QUOTABLE = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but " and \\


def _param(key: str, value: str) -> list[str]:
    # Quoted when that is plain; quotes and backslashes, whose escaping readers get wrong,
    # go percent-encoded like non-ASCII.
    if _QUOTABLE.fullmatch(value) and len(f' {key}="{value}";') <= LINE:
        return [f'{key}="{value}"']
    encoded = quote(value, safe=_ATTRIBUTE_SAFE)
    if len(f" {key}*=utf-8''{encoded};") <= LINE:
        return [f"{key}*=utf-8''{encoded}"]
    # Each section on a line of its own: " key*N*=…;" within 78 characters.
    room = LINE - len(f" {key}*99*=utf-8'';")
    sections: list[str] = []
    position = 0
    while position < len(encoded):
        end = min(position + room, len(encoded))
        # Never inside a %XX.
        if encoded[end - 1 : end] == "%":
            end -= 1
        elif encoded[end - 2 : end - 1] == "%":
            end -= 2
        sections.append(encoded[position:end])
        position = end
    first = f"{key}*0*=utf-8''{sections[0]}"
    return [first] + [f"{key}*{n}*={section}" for n, section in enumerate(sections[1:], 1)]


def mime_header(name: str, value: str, params: Mapping[str, str]) -> bytes:
    """``Name: value; key="…"; …`` folded between parameters."""
    tokens = [value]
    for key, param in params.items():
        tokens += _param(key, param)
    return fold(name, [token + ";" for token in tokens[:-1]] + tokens[-1:])
