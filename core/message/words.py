"""Header text on the wire: RFC 2047 encoded words, display-name phrases, and folding.

Everything here returns 7-bit text unless handed raw UTF-8 to keep (an address's local
part). Lines are folded at 78 characters where the text allows (RFC 5322 §2.1.1) and
never exceed 998; a header that could only be longer is folded by force (``hard_fold``),
which is the lesser harm than a message the SMTP layer must refuse.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import TypeVar

#: RFC 5322 §2.1.1: lines SHOULD be at most 78 characters, MUST be at most 998.
LINE = 78
MAX_LINE = 998
#: RFC 2047 §2: an encoded word is at most 75 characters.
WORD = 75
#: Encoded words in a display name are kept shorter, so one fits after "Reply-To: ".
PHRASE_WORD = 60
# "=?utf-8?q?" + "?=": what an encoded word costs besides its text.
_OVERHEAD = 12
# Room for the longest character (4 UTF-8 bytes, 12 characters in Q) in one word.
_MIN_WORD = _OVERHEAD + 12

# RFC 2047 §5(3): the characters a Q-encoded word may carry as they are in any position
# (a phrase allows the fewest); space is "_", everything else =XX.
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_TABLE = {
    byte: chr(byte) if byte in _Q_SAFE else "_" if byte == 0x20 else f"={byte:02X}"
    for byte in range(256)
}
# Text that may stay as it is in an unstructured header: printable ASCII and tabs, and
# nothing a decoder would take for an encoded word.
_NEEDS_WORDS = re.compile(r"[^\x20-\x7e\t]|=\?")
_CHUNK = re.compile(r"[ \t]*[^ \t]+")
_BLANKS = re.compile(r"[ \t]+")
_BLANK_BYTES = re.compile(rb"[ \t]+")
# RFC 5322 §3.2.3 atext, for a display name that can go out as atoms.
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")
_QUOTABLE = re.compile(r"[\x20-\x7e]*")
_Text = TypeVar("_Text", str, bytes)


def _q(data: bytes) -> str:
    return data.decode("latin-1").translate(_Q_TABLE)


def _at_space(text: _Text, space: _Text, start: int, end: int) -> int:
    """Where to cut a word: before a space in its second half if there is one, so that
    the space opens the next word. RFC 2047 §6.2 readers drop the whitespace between
    words, but some readers (Python's address parser until 3.14) keep it; with the cut
    at a space they show at most a doubled space, not a space inside a word."""
    found = text.rfind(space, start + (end - start) // 2, end)
    return found if found > start else end


def _split_q(encoded: str, first: int, rest: int) -> list[str]:
    """Q text cut into words: never inside an =XX, never inside a UTF-8 sequence."""
    words: list[str] = []
    position = 0
    room = first
    while position < len(encoded):
        end = min(position + room - _OVERHEAD, len(encoded))
        if end < len(encoded):
            if encoded[end - 1] == "=":
                end -= 1
            elif encoded[end - 2] == "=":
                end -= 2
            # =80..=BF continue a character: cut before the character's first byte.
            while encoded[end] == "=" and encoded[end + 1] in "89AB":
                end -= 3
            end = _at_space(encoded, "_", position, end)
        words.append(f"=?utf-8?q?{encoded[position:end]}?=")
        position = end
        room = rest
    return words


def _split_b(data: bytes, first: int, rest: int) -> list[str]:
    words: list[str] = []
    position = 0
    room = first
    while position < len(data):
        end = min(position + (room - _OVERHEAD) // 4 * 3, len(data))
        while end < len(data) and 0x80 <= data[end] < 0xC0:
            end -= 1
        if end < len(data):
            end = _at_space(data, b" ", position, end)
        chunk = base64.b64encode(data[position:end]).decode("ascii")
        words.append(f"=?utf-8?b?{chunk}?=")
        position = end
        room = rest
    return words


def encoded_words(text: str, first: int = WORD, rest: int = WORD) -> list[str]:
    """``text`` as encoded words, the first at most ``first`` characters long, the others
    ``rest``. Q or B, whichever is shorter (Q keeps Latin text readable)."""
    data = text.encode("utf-8")
    first = max(first, _MIN_WORD)
    encoded = _q(data)
    if len(encoded) <= (len(data) + 2) // 3 * 4:
        return _split_q(encoded, first, rest)
    return _split_b(data, first, rest)


def unstructured(name: str, value: str) -> bytes:
    """A whole header line (CRLF included) for unstructured text such as Subject.

    Leading and trailing spaces are dropped (readers drop them too); printable ASCII is
    folded at its spaces; anything else becomes encoded words, one per line.
    """
    value = value.strip(" \t")
    if not value:
        return f"{name}:\r\n".encode("ascii")
    plain = _NEEDS_WORDS.search(value) is None
    if plain and len(name) + 2 + len(value) <= LINE:
        return f"{name}: {value}\r\n".encode("ascii")  # the usual Subject
    prefix = f"{name}: "
    if plain:
        folded = _fold_text(prefix, value)
        if max(map(len, folded)) <= MAX_LINE:
            return ("\r\n".join(folded) + "\r\n").encode("ascii")
    words = encoded_words(value, LINE - len(prefix))
    return (prefix + "\r\n ".join(words) + "\r\n").encode("ascii")


def _fold_text(prefix: str, value: str) -> list[str]:
    """Folded before whitespace, so that unfolding gives the value back exactly."""
    chunks = _CHUNK.findall(value)
    lines = [prefix + chunks[0]]
    for chunk in chunks[1:]:
        if len(lines[-1]) + len(chunk) > LINE:
            lines.append(chunk)
        else:
            lines[-1] += chunk
    return lines


def phrase(display: str) -> list[str]:
    """A display name as tokens for :func:`fold`: atoms, one quoted string, or encoded
    words (RFC 2047 §5(3)). Runs of spaces and tabs become one space, as readers show
    them, and none is kept at either end; an empty name gives no tokens."""
    display = _BLANKS.sub(" ", display).strip(" ")
    if not display:
        return []
    if "=?" not in display:
        atoms = display.split(" ")
        if _ATOMS.fullmatch(display) and max(map(len, atoms)) <= PHRASE_WORD:
            return atoms
        if _QUOTABLE.fullmatch(display) and len(display) < LINE:
            return ['"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return encoded_words(display, PHRASE_WORD, PHRASE_WORD)


def fold(name: str, tokens: Sequence[str]) -> bytes:
    """``Name: t1 t2…`` with CRLF SP in place of a space wherever a line would pass 78.

    Tokens never hold whitespace that matters, so a fold never changes the value.
    """
    lines = [f"{name}:"]
    for index, token in enumerate(tokens):
        if index and len(lines[-1]) + 1 + len(token) > LINE:
            lines.append(" " + token)
        else:
            lines[-1] += " " + token
    data = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    return hard_fold(data)


def hard_fold(header: bytes) -> bytes:
    """A header whose lines all fit in 998 octets and none is blank (a reader may take a
    blank line for the end of the header section). Only values no sane template produces
    get here: a longer line has its runs of spaces and tabs made one space (in the headers
    that come here they mean one), then is folded before a space where it has one, else
    cut (never inside a UTF-8 sequence) and continued on a line of its own."""
    if len(header) <= MAX_LINE:  # the usual header, checked without a split
        return header
    lines = header.split(b"\r\n")
    if max(map(len, lines)) <= MAX_LINE:
        return header
    out: list[bytes] = []
    for line in lines:
        if len(line) > MAX_LINE:
            line = _BLANK_BYTES.sub(b" ", line).rstrip(b" ")
        while len(line) > MAX_LINE:
            # From 2: what stays on the line holds more than a fold's leading space.
            cut = line.rfind(b" ", 2, MAX_LINE + 1)
            if cut > 0:
                out.append(line[:cut])
                line = line[cut:]
                continue
            cut = MAX_LINE
            while 0x80 <= line[cut] < 0xC0:
                cut -= 1
            out.append(line[:cut])
            line = b" " + line[cut:]
        out.append(line)
    return b"\r\n".join(out)


def fold_text(name: str, value: str) -> bytes:
    """``Name: value`` folded at its whitespace, nothing encoded: for headers where
    encoded words have no meaning (List-*, References); raw UTF-8 stays raw."""
    value = value.strip(" \t")
    if not value:
        return f"{name}:\r\n".encode("ascii")
    lines = _fold_text(f"{name}: ", value)
    return hard_fold(("\r\n".join(lines) + "\r\n").encode("utf-8"))
