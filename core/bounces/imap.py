"""The bounce mailbox, read over IMAP with TLS: which mails are new, their bytes, \\Seen.

Owns the conversation with the IMAP server (stdlib ``imaplib``): implicit TLS (port 993)
or STARTTLS (port 143), certificate and host name always verified, LOGIN, SELECT, the
UIDs above the last one processed, fetching with ``BODY.PEEK`` (reading never marks a
mail read), and ``\\Seen`` set only on the UIDs the caller names. It never deletes or
moves a mail, and never sends the password anywhere but inside the TLS session's LOGIN.

Blocking: the CLI calls it directly; the window must call it from a worker thread
(``asyncio.to_thread``), never on the event loop. Every network wait has a timeout.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import re
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

#: RFC 8314 §3.3: implicit TLS on 993; STARTTLS on 143 (RFC 3501).
IMAPS_PORT: Final = 993
IMAP_PORT: Final = 143
#: A bounce is read this far: its report and the returned headers come first, and a
#: returned message can be as large as the original with attachments.
FETCH_LIMIT: Final = 2 * 1024 * 1024
#: UIDs per FETCH command.
FETCH_BATCH: Final = 50
#: Mails read per run at most; the next run goes on from there.
RUN_LIMIT: Final = 20_000

_UID = re.compile(rb"\bUID (\d+)")


class MailboxError(RuntimeError):
    """The mailbox cannot be read; the message says why and what to do (never the
    password)."""


@dataclass(frozen=True, slots=True)
class MailboxConfig:
    host: str
    user: str
    port: int = IMAPS_PORT
    mailbox: str = "INBOX"
    starttls: bool = False
    cafile: Path | None = None  # a CA bundle to trust instead of the system's
    timeout: float = 30.0

    @property
    def name(self) -> str:
        """What the position is kept under: the user's mailbox on that server, however
        it is reached (implicit TLS or STARTTLS)."""
        return f"{self.user}@{self.host}/{self.mailbox}"


@dataclass(frozen=True, slots=True)
class Position:
    """How far a mailbox was processed: UIDs are only comparable under one UIDVALIDITY
    (RFC 3501 §2.3.1.1); when it changes, every mail is new again."""

    uidvalidity: int
    last_uid: int


def mailbox_utf7(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 §5.1.3): printable ASCII as
    itself (``&`` as ``&-``), other runs as ``&`` + base64 of UTF-16BE with ``,`` for
    ``/`` + ``-``. ``Entwürfe`` is ``Entw&APw-rfe``."""
    out: list[str] = []
    run: list[str] = []

    def shift() -> None:
        if run:
            encoded = base64.b64encode("".join(run).encode("utf-16-be")).decode("ascii")
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            run.clear()

    for char in name:
        if " " <= char <= "~":
            shift()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    shift()
    return "".join(out)


def _quoted(name: str) -> str:
    """A mailbox name as an IMAP quoted string (imaplib sends arguments as given)."""
    name = mailbox_utf7(name)
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: Sequence[object]) -> str:
    return " ".join(
        item.decode(errors="replace") if isinstance(item, bytes) else str(item) for item in data
    )


class BounceMailbox:
    """One IMAP session on one mailbox; a context manager that logs out on exit."""

    def __init__(self, config: MailboxConfig) -> None:
        self.config = config
        self._imap: imaplib.IMAP4 | None = None
        self.uidvalidity = 0

    def open(self, password: str) -> None:
        """Connect, verify the certificate, log in, select the mailbox (read-write, so
        that \\Seen can be set)."""
        config = self.config
        where = f"{config.host}:{config.port}"
        try:
            context = ssl.create_default_context(
                cafile=str(config.cafile) if config.cafile else None
            )
        except (OSError, ssl.SSLError) as error:
            raise MailboxError(f"cannot read the CA file {config.cafile}: {error}") from error
        try:
            if config.starttls:
                imap = imaplib.IMAP4(config.host, config.port, timeout=config.timeout)
                self._imap = imap
                imap.starttls(ssl_context=context)
            else:
                imap = imaplib.IMAP4_SSL(
                    config.host, config.port, ssl_context=context, timeout=config.timeout
                )
                self._imap = imap
        except ssl.SSLCertVerificationError as error:
            self.close()
            raise MailboxError(
                f"the IMAP server {where} has a certificate that cannot be trusted "
                f"({error.verify_message}): give its CA with --cafile if it is a private "
                "one; the connection was not used"
            ) from error
        except (OSError, imaplib.IMAP4.error) as error:
            self.close()
            raise MailboxError(f"cannot connect to the IMAP server {where}: {error}") from error
        try:
            imap.login(config.user, password)
        except imaplib.IMAP4.error as error:
            self.close()
            raise MailboxError(
                f"the IMAP server {where} refused the login of {config.user} ({error}): "
                "check the user name and the password"
            ) from None  # the chained exception would hold the LOGIN arguments' context
        except OSError as error:
            self.close()
            raise MailboxError(f"the IMAP server {where} failed during login: {error}") from None
        self._select()

    def _select(self) -> None:
        imap = self._session()
        kind, data = imap.select(_quoted(self.config.mailbox))
        if kind != "OK":
            raise MailboxError(
                f"the IMAP server has no mailbox {self.config.mailbox!r} ({_text(data)})"
            )
        _, values = imap.response("UIDVALIDITY")
        try:
            self.uidvalidity = int(values[0]) if values and values[0] else 0
        except (TypeError, ValueError):
            self.uidvalidity = 0

    def new_uids(self, position: Position | None, limit: int = RUN_LIMIT) -> list[int]:
        """UIDs above the position (all of them under a new UIDVALIDITY), ascending, at
        most ``limit``."""
        after = 0
        if position is not None and position.uidvalidity == self.uidvalidity:
            after = position.last_uid
        # "N:*" always includes the highest UID, even when it is below N (RFC 3501 §6.4.8).
        data = self._command("SEARCH", f"UID {after + 1}:*")
        uids = sorted(
            {int(token) for line in data if isinstance(line, bytes) for token in line.split()}
        )
        return [uid for uid in uids if uid > after][:limit]

    def fetch(self, uids: Sequence[int]) -> Iterator[tuple[int, bytes]]:
        """(uid, the mail's first :data:`FETCH_LIMIT` bytes), without setting \\Seen."""
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]
            data = self._command(
                "FETCH", ",".join(map(str, batch)), f"(UID BODY.PEEK[]<0.{FETCH_LIMIT}>)"
            )
            found: dict[int, bytes] = {}
            for item in data:
                if isinstance(item, tuple) and len(item) == 2:
                    match = _UID.search(item[0])
                    if match is not None and isinstance(item[1], bytes):
                        found[int(match.group(1))] = item[1]
            for uid in batch:
                if uid in found:  # a mail expunged meanwhile is simply gone
                    yield uid, found[uid]

    def mark_seen(self, uids: Sequence[int]) -> None:
        for start in range(0, len(uids), FETCH_BATCH):
            batch = ",".join(map(str, uids[start : start + FETCH_BATCH]))
            self._command("STORE", batch, "+FLAGS.SILENT", "(\\Seen)")

    def _command(self, *args: str) -> list[object]:
        """One ``UID`` command (SEARCH, FETCH, STORE): its data, or MailboxError."""
        imap = self._session()
        try:
            kind, data = imap.uid(*args)
        except (OSError, imaplib.IMAP4.error) as error:
            raise MailboxError(
                f"the IMAP server {self.config.host}:{self.config.port} failed during "
                f"UID {args[0]}: {error}"
            ) from error
        if kind != "OK":
            raise MailboxError(
                f"the IMAP server {self.config.host}:{self.config.port} refused UID {args[0]}: "
                f"{_text(data)}"
            )
        return list(data)

    def _session(self) -> imaplib.IMAP4:
        if self._imap is None:
            raise MailboxError("the IMAP session is not open")
        return self._imap

    def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        try:
            imap.logout()  # closes the socket too
        except (OSError, imaplib.IMAP4.error):
            with contextlib.suppress(OSError):  # the server or the network is gone
                imap.shutdown()

    def __enter__(self) -> BounceMailbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
