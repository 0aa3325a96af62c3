"""The IMAP password: from the OS keyring, else the environment, else a prompt.

Owns where the password comes from, and nothing else: it is never printed, logged,
stored in the campaign file or taken from the command line (where ``ps`` and shell
history would show it). The ``keyring`` package is optional and imported only when
asked: without it, or without a keyring backend (a headless server), the environment
variable :data:`PASSWORD_ENV` or an interactive prompt are used.
"""

from __future__ import annotations

import getpass
import importlib
import os
import sys
from collections.abc import Callable
from typing import Final

#: The keyring entry: service name, and ``user@host`` as the user name.
KEYRING_SERVICE: Final = "MX Mailer IMAP"
PASSWORD_ENV: Final = "MXMAILER_IMAP_PASSWORD"


class PasswordError(RuntimeError):
    """No password could be found; the message says how to give one."""


def keyring_password(user: str, host: str) -> str | None:
    """The keyring's password for ``user@host``, or None: no ``keyring`` package, no
    backend (``keyring.errors.NoKeyringError``), a locked keyring, no entry."""
    try:
        keyring = importlib.import_module("keyring")
    except ImportError:
        return None
    try:
        password = keyring.get_password(KEYRING_SERVICE, f"{user}@{host}")
    except Exception:  # keyring.errors.KeyringError and backends' own errors
        return None
    return password if isinstance(password, str) and password else None


def imap_password(
    user: str, host: str, *, prompt: Callable[[str], str] | None = None
) -> str:
    """The password for ``user`` on ``host``: keyring, then :data:`PASSWORD_ENV`, then
    ``prompt`` (default: ``getpass`` when stdin is a terminal)."""
    found = keyring_password(user, host) or os.environ.get(PASSWORD_ENV)
    if found:
        return found
    if prompt is None and sys.stdin.isatty():
        prompt = getpass.getpass
    if prompt is not None:
        found = prompt(f"IMAP password for {user} at {host}: ")
        if found:
            return found
    raise PasswordError(
        f"no IMAP password for {user} at {host}: store it in the system keyring "
        f"(keyring set '{KEYRING_SERVICE}' {user}@{host}), or set {PASSWORD_ENV}, "
        "or run the command in a terminal to be asked"
    )
