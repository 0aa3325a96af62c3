"""Passwords (the bounce mailbox's, a relay's): from the OS keyring, else the
environment, else a prompt.

Owns where a password comes from, and nothing else: it is never printed, logged,
stored in the campaign file or taken from the command line (where ``ps`` and shell
history would show it). The ``keyring`` package is imported only when asked: without a
keyring backend (a headless server) the environment variable or an interactive prompt
are used.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass


class PasswordError(RuntimeError):
    """No password could be found; the message says how to give one."""


@dataclass(frozen=True, slots=True)
class PasswordSource:
    """Where one kind of password is looked for: a keyring service (entries named
    ``user@host``) and an environment variable."""

    what: str  # "IMAP", "relay": for the prompt and the error
    service: str
    env: str

    def keyring_password(self, user: str, host: str) -> str | None:
        """The keyring's password for ``user@host``, or None: no ``keyring`` package, no
        backend (``keyring.errors.NoKeyringError``), a locked keyring, no entry."""
        try:
            keyring = importlib.import_module("keyring")
        except ImportError:
            return None
        try:
            password = keyring.get_password(self.service, f"{user}@{host}")
        except Exception:  # keyring.errors.KeyringError and backends' own errors
            return None
        return password if isinstance(password, str) and password else None

    def password(
        self, user: str, host: str, *, prompt: Callable[[str], str] | None = None
    ) -> str:
        """The password for ``user`` on ``host``: keyring, then the environment, then
        ``prompt`` (default: ``getpass`` when stdin is a terminal)."""
        found = self.keyring_password(user, host) or os.environ.get(self.env)
        if found:
            return found
        if prompt is None and sys.stdin.isatty():
            import getpass  # imported here: it loads termios, which only a prompt needs

            prompt = getpass.getpass
        if prompt is not None:
            try:
                found = prompt(f"{self.what} password for {user} at {host}: ")
            except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C at the prompt
                found = ""
            if found:
                return found
        raise PasswordError(
            f"no {self.what} password for {user} at {host}: store it in the system keyring "
            f"(keyring set '{self.service}' {user}@{host}), or set {self.env}, "
            "or run the command in a terminal to be asked"
        )


IMAP = PasswordSource("IMAP", "MX Mailer IMAP", "MXMAILER_IMAP_PASSWORD")
RELAY = PasswordSource("relay", "MX Mailer relay", "MXMAILER_RELAY_PASSWORD")
