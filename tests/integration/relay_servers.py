"""Relays for the relay-mode tests: an aiosmtpd submission server that requires AUTH, and
a private Postfix that relays to a lab server.

:class:`SubmissionServer` is what a mail provider's submission port looks like from the
client: STARTTLS (or TLS from the first byte), then AUTH, then mail. It records every AUTH
command it saw (mechanism, and whether the connection was encrypted at that moment) and
every message with the login of the session that sent it, so a test can prove that the
password only ever travelled inside verified TLS and that each message came through an
authenticated session. It listens on loopback only and never connects anywhere.

:class:`PostfixRelay` is :class:`~tests.integration.mta.PostfixMX` turned into a smarthost:
it accepts mail for any domain from 127.0.0.0/8 (no AUTH) and hands it all to one
``relayhost`` on loopback, the lab server playing the final destination. Its SMTP client
binds to 127.0.0.1 and knows no other next hop, so nothing leaves the machine.

:class:`LabKeyring` is a ``keyring`` backend for subprocesses (``PYTHON_KEYRING_BACKEND``)
whose passwords come from the environment, so a test can give ``mxmailer`` a keyring entry
without touching the machine's real keyring.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import ssl
import warnings
from dataclasses import dataclass
from typing import Any, cast

import keyring.backend
import keyring.errors
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from core.lab import LabTLS
from core.lab.loopback import EPHEMERAL_PORT, require_loopback
from core.lab.service import LoopbackService
from tests.integration.mta import PostfixMX

#: ``PYTHON_KEYRING_BACKEND`` value selecting :class:`LabKeyring`.
LAB_KEYRING = "tests.integration.relay_servers.LabKeyring"
#: The environment variable :class:`LabKeyring` reads: JSON ``{"service|user": password}``.
LAB_KEYRING_ENV = "MXMAILER_TEST_KEYRING"
#: ``PYTHON_KEYRING_BACKEND`` value for a keyring that has no entries at all.
NO_KEYRING = "keyring.backends.null.Keyring"


@dataclass(frozen=True, slots=True)
class AuthCommand:
    """An AUTH command as it arrived: before the server judged the credentials."""

    mechanism: str
    encrypted: bool


@dataclass(frozen=True, slots=True)
class Login:
    """Credentials the server judged: who, by which mechanism, and the verdict."""

    mechanism: str
    user: str
    accepted: bool


@dataclass(frozen=True, slots=True)
class RelayedMessage:
    """A message the server accepted, and the session it came through."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    encrypted: bool
    login: str | None


class _Handler:
    def __init__(self, server: SubmissionServer) -> None:
        self._server = server

    async def handle_AUTH(
        self, smtp: SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> object:
        self._server.auth_commands.append(AuthCommand(args[0].upper(), _encrypted(smtp)))
        return MISSING  # aiosmtpd goes on with its own AUTH mechanisms

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if self._server.data_delay:  # a busy relay: connections stay in use a while
            await asyncio.sleep(self._server.data_delay)
        auth = session.auth_data
        self._server.messages.append(
            RelayedMessage(
                sender=envelope.mail_from or "",
                recipients=tuple(envelope.rcpt_tos),
                data=envelope.original_content or b"",
                encrypted=_encrypted(smtp),
                login=auth.login.decode() if session.authenticated and auth else None,
            )
        )
        return "250 2.0.0 Ok: queued"


def _encrypted(smtp: SMTP) -> bool:
    transport = smtp.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _SubmissionSMTP(SMTP):
    def __init__(self, owner: SubmissionServer, **kwargs: Any) -> None:
        super().__init__(owner.handler, **kwargs)
        self._owner = owner
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._counted:  # called again with the TLS transport after STARTTLS
            self._counted = True
            self._owner.connections += 1
            self._owner.live.add(self)
            self._owner.peak = max(self._owner.peak, len(self._owner.live))
            task = self._handler_coroutine
            if task is not None:
                task.add_done_callback(lambda _: self._owner.live.discard(self))


class SubmissionServer(LoopbackService):
    """aiosmtpd requiring AUTH with one ``user``/``password`` on loopback.

    ``security``: ``"starttls"`` offers STARTTLS and offers and accepts AUTH only after it
    (aiosmtpd's ``auth_require_tls``); ``"tls"`` wraps the listening socket in TLS from the
    first byte; ``"none"`` offers AUTH on a plain connection (a server a client must refuse
    to send its password to). ``mechanisms`` limits the AUTH mechanisms offered.
    ``tls`` defaults to a fresh CA and a certificate for 127.0.0.1. ``data_delay`` holds
    each end-of-data reply back that many seconds.
    """

    def __init__(
        self,
        user: str,
        password: str,
        *,
        security: str = "starttls",
        tls: LabTLS | None = None,
        mechanisms: tuple[str, ...] = ("LOGIN", "PLAIN"),
        host: str = "127.0.0.1",
        data_delay: float = 0.0,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown security {security!r}")
        self.host = require_loopback(host)
        self.user = user
        self.password = password
        self.security = security
        self.data_delay = data_delay
        self.tls = tls if tls is not None else LabTLS((host,))
        self.handler = _Handler(self)
        self.auth_commands: list[AuthCommand] = []
        self.logins: list[Login] = []
        self.messages: list[RelayedMessage] = []
        self.connections = 0
        #: The most connections open at once.
        self.peak = 0
        self.live: set[_SubmissionSMTP] = set()
        self._mechanisms = mechanisms
        self._server: asyncio.Server | None = None

    def _authenticate(
        self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        user = data.login.decode(errors="replace")
        accepted = user == self.user and data.password == self.password.encode()
        self.logins.append(Login(mechanism, user, accepted))
        if not accepted:  # not handled: aiosmtpd answers its 535 5.7.8
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=data)

    async def start(self) -> SubmissionServer:
        loop = asyncio.get_running_loop()
        offered = self._mechanisms
        options: dict[str, Any] = {
            "hostname": "submission.lab.test",
            "ident": "aiosmtpd submission (MX Mailer relay lab)",
            "authenticator": self._authenticate,
            "auth_required": True,
            # An implicit-TLS socket is encrypted although aiosmtpd did not do STARTTLS;
            # with "none" AUTH is offered in the clear on purpose.
            "auth_require_tls": self.security == "starttls",
            "auth_exclude_mechanism": [m for m in ("LOGIN", "PLAIN") if m not in offered],
            "tls_context": self.tls.server_context() if self.security == "starttls" else None,
            "timeout": 30.0,
            "loop": loop,
        }
        wrap: ssl.SSLContext | None = None
        if self.security == "tls":
            wrap = self.tls.server_context()

        def factory() -> _SubmissionSMTP:
            with warnings.catch_warnings():  # "AUTH without TLS": meant, for "tls"/"none"
                warnings.simplefilter("ignore", UserWarning)
                return _SubmissionSMTP(self, **options)

        self._server = await loop.create_server(factory, self.host, EPHEMERAL_PORT, ssl=wrap)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks: list[asyncio.Task[None]] = []
        for protocol in list(self.live):
            if protocol.transport is not None:
                cast(asyncio.Transport, protocol.transport).abort()
            task = protocol._handler_coroutine
            if task is not None:
                task.cancel()
                tasks.append(task)
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()


class PostfixRelay(PostfixMX):
    """A private Postfix relaying everything from 127.0.0.0/8 to ``final`` (a loopback
    ``(address, port)``), offering STARTTLS with a certificate for ``mx.<domain>`` and
    127.0.0.1 (``relay.tls.write_ca(path)`` for the client), no AUTH, and speaking plain
    SMTP (no TLS) to ``final``."""

    def __init__(self, final: tuple[str, int], domain: str = "relay.test") -> None:
        super().__init__(domain, greylist_delay=None, tls=True)
        self.final = (require_loopback(final[0]), final[1])

    def _main_cf(self, mailbox_user: pwd.struct_passwd) -> str:
        settings: dict[str, str] = {}
        for line in super()._main_cf(mailbox_user).splitlines():
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
        address, port = self.final
        settings |= {
            "relayhost": f"[{address}]:{port}",
            "mynetworks": "127.0.0.0/8",
            "default_transport": "smtp",
            "relay_transport": "smtp",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject",
            "smtp_bind_address": "127.0.0.1",
            "smtp_tls_security_level": "none",
            "smtp_connect_timeout": "5s",
            # Should the first hand-over fail, the next try comes within seconds.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        return "".join(f"{key} = {value}".rstrip() + "\n" for key, value in settings.items())

    def _master_cf(self) -> str:
        services = ["smtp unix - - n - - smtp", "scache unix - - n - 1 scache"]
        return super()._master_cf() + "\n".join(services) + "\n"


class LabKeyring(keyring.backend.KeyringBackend):
    """Passwords from ``$MXMAILER_TEST_KEYRING`` (JSON ``{"service|user": password}``);
    read-only."""

    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        entries = json.loads(os.environ.get(LAB_KEYRING_ENV, "{}"))
        value = entries.get(f"{service}|{username}")
        return value if isinstance(value, str) else None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("the lab keyring is read-only")

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.PasswordDeleteError("the lab keyring is read-only")
