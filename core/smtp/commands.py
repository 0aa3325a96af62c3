"""SMTP commands, built as bytes (RFC 5321 §4.1), refusing anything that could inject one.

Every argument passes through :func:`_safe` which refuses CR, LF and NUL, so that no
value taken from data (an address from a CSV, a HELO name from settings) can end a
command early and start another. Addresses are also refused when they hold ``<`` or
``>``, which would break out of the angle-bracket path syntax.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable

from core.smtp.errors import UnsafeArgumentError

_UNSAFE_PATH = re.compile("[\r\n\0<>]")
_UNSAFE_NAME = re.compile(r"[\r\n\0\s]")

DATA = b"DATA\r\n"
RSET = b"RSET\r\n"
QUIT = b"QUIT\r\n"
STARTTLS = b"STARTTLS\r\n"
END_OF_DATA = b".\r\n"
AUTH_LOGIN = b"AUTH LOGIN\r\n"
#: What a transcript shows in place of a line that carries a credential.
HIDDEN = b"<hidden>\r\n"


def _safe(pattern: re.Pattern[str], what: str, value: str) -> bytes:
    if pattern.search(value) is not None:
        raise UnsafeArgumentError(what, value)
    return value.encode("utf-8")


def auth_plain(user: str, password: str) -> bytes:
    """``AUTH PLAIN`` with its initial response (RFC 4954, RFC 4616): no authorization
    identity, then the user and the password, NUL-separated and base64-encoded; a NUL
    inside either would shift the fields, so it is refused."""
    secret = b"\0" + credential("user name", user) + b"\0" + credential("password", password)
    return b"AUTH PLAIN " + base64.b64encode(secret) + b"\r\n"


def auth_login_answer(what: str, value: str) -> bytes:
    """One answer to an ``AUTH LOGIN`` challenge: the user name or the password, base64."""
    return base64.b64encode(credential(what, value)) + b"\r\n"


def credential(what: str, value: str) -> bytes:
    """A user name or password as UTF-8 bytes, refused (without ever quoting it: the
    error could reach a log or a report) when it holds a NUL or is not text."""
    try:
        if "\0" not in value:
            return value.encode("utf-8")
    except UnicodeEncodeError:
        pass
    raise UnsafeArgumentError(what, "<hidden>")


def ehlo(name: str) -> bytes:
    """``EHLO name``. The name may hold no white space (RFC 5321 §4.1.1.1)."""
    if not name:
        raise UnsafeArgumentError("HELO name", name)
    return b"EHLO " + _safe(_UNSAFE_NAME, "HELO name", name) + b"\r\n"


def helo(name: str) -> bytes:
    if not name:
        raise UnsafeArgumentError("HELO name", name)
    return b"HELO " + _safe(_UNSAFE_NAME, "HELO name", name) + b"\r\n"


def _params(params: Iterable[str]) -> bytes:
    out = b""
    for param in params:
        out += b" " + _safe(_UNSAFE_NAME, "parameter", param)
    return out


@functools.lru_cache(maxsize=256)
def mail_from(sender: str, params: tuple[str, ...] = ()) -> bytes:
    """``MAIL FROM:<sender>``; the empty string gives the null sender ``<>``.

    Cached: a campaign sends thousands of transactions from one sender with the same
    parameters. A refused argument raises, and exceptions are never cached."""
    path = _safe(_UNSAFE_PATH, "sender address", sender)
    return b"MAIL FROM:<" + path + b">" + _params(params) + b"\r\n"


def rcpt_to(recipient: str, params: Iterable[str] = ()) -> bytes:
    if not recipient:
        raise UnsafeArgumentError("recipient address", recipient)
    path = _safe(_UNSAFE_PATH, "recipient address", recipient)
    return b"RCPT TO:<" + path + b">" + _params(params) + b"\r\n"
