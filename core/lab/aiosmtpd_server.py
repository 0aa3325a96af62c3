"""``AiosmtpdServer``: aiosmtpd, a server we did not write, accepting mail on loopback.

Owns running ``aiosmtpd.smtp.SMTP`` on the caller's event loop (no thread, no
``Controller``) on 127.0.0.1 or ::1 at an ephemeral port, optionally with STARTTLS
(offered or required), and recording what it accepted in the same
:class:`~core.lab.records.Recorder` as :class:`~core.lab.LabServer`. It is always a
well-behaved server: misbehaviour is ``LabServer``'s job. It never listens beyond
loopback and never connects anywhere.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiosmtpd.smtp import SMTP, Envelope, Session

from core.lab.behaviour import DEFAULT_SIZE_LIMIT
from core.lab.loopback import EPHEMERAL_PORT, LISTEN_BACKLOG, require_loopback
from core.lab.records import ConnectionRecord, ReceivedMessage, Recorder
from core.lab.service import RecordingService
from core.lab.tls import LabTLS, default_tls

#: Seconds aiosmtpd waits for a silent client before it hangs up (its own idle timeout).
IDLE_TIMEOUT = 30.0


class _Handler:
    """aiosmtpd's handler hook: record each message, accept it."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        record = server.lab_record if isinstance(server, _RecordingSMTP) else None
        self.recorder.message(
            ReceivedMessage(
                sender=envelope.mail_from or "",
                recipients=tuple(envelope.rcpt_tos),
                data=envelope.original_content or b"",
                tls=session.ssl is not None,
                helo=session.host_name or "",
                mail_options=tuple(envelope.mail_options),
                connection=record.number if record is not None else 0,
            )
        )
        return "250 2.0.0 Ok: queued"


class _RecordingSMTP(SMTP):
    """aiosmtpd's protocol, telling our recorder when a connection starts, upgrades, ends."""

    def __init__(
        self,
        recorder: Recorder,
        live: set[_RecordingSMTP],
        handler: _Handler,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.lab_recorder = recorder
        self.lab_record: ConnectionRecord | None = None
        self._lab_live = live

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.lab_record is None:
            peer = transport.get_extra_info("peername")
            self.lab_record = self.lab_recorder.connection_opened(
                f"{peer[0]}:{peer[1]}" if peer else "?"
            )
            super().connection_made(transport)
            # Live from here until the task that runs the conversation has ended.
            self._lab_live.add(self)
            task = self.handler_task
            if task is not None:
                task.add_done_callback(lambda _: self._lab_live.discard(self))
        else:  # aiosmtpd calls it again with the TLS transport once STARTTLS succeeded
            super().connection_made(transport)
            self.lab_recorder.tls(self.lab_record, ok=True)

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            if self.lab_record is not None:
                self.lab_recorder.connection_closed(self.lab_record)

    @property
    def handler_task(self) -> asyncio.Task[None] | None:
        # aiosmtpd keeps the task that runs the conversation here; nothing public names it.
        return self._handler_coroutine


class AiosmtpdServer(RecordingService):
    """aiosmtpd on loopback. ``async with AiosmtpdServer(tls=...) as server: ...``

    ``tls`` offers STARTTLS with that certificate (``starttls=True`` uses the process-wide
    lab one); ``require_starttls`` makes aiosmtpd answer 530 to anything but EHLO, NOOP,
    QUIT and STARTTLS before TLS.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        hostname: str = "aiosmtpd.lab.test",
        starttls: bool = False,
        tls: LabTLS | None = None,
        require_starttls: bool = False,
        size_limit: int = DEFAULT_SIZE_LIMIT,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.host = require_loopback(host)
        if tls is None and (starttls or require_starttls):
            tls = default_tls()
        self.tls = tls
        self.recorder = Recorder()
        self._smtp_options: dict[str, Any] = {
            "hostname": hostname,  # else aiosmtpd asks the resolver for our FQDN
            "ident": "aiosmtpd (MX Mailer lab)",
            "data_size_limit": size_limit,
            "enable_SMTPUTF8": True,
            "tls_context": tls.server_context() if tls else None,
            "require_starttls": require_starttls and tls is not None,
            "timeout": idle_timeout,
        }
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._stopping = False
        self._protocols: set[_RecordingSMTP] = set()

    async def start(self) -> AiosmtpdServer:
        """Listen; afterwards ``port`` is known. A server starts once."""
        if self._server is not None or self._stopping:
            raise RuntimeError("an AiosmtpdServer starts once")
        loop = asyncio.get_running_loop()
        handler = _Handler(self.recorder)

        def factory() -> _RecordingSMTP:
            return _RecordingSMTP(
                self.recorder, self._protocols, handler, loop=loop, **self._smtp_options
            )

        self._server = await loop.create_server(
            factory, self.host, EPHEMERAL_PORT, backlog=LISTEN_BACKLOG
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Stop listening, drop every connection, and wait for aiosmtpd's tasks to end."""
        self._stopping = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        protocols = list(self._protocols)
        tasks: list[asyncio.Task[None]] = []
        for protocol in protocols:
            transport = protocol.transport
            if transport is not None:
                cast(asyncio.Transport, transport).abort()
            task = protocol.handler_task
            if task is not None:
                task.cancel()
                tasks.append(task)
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        await asyncio.sleep(0)  # let the aborted transports release their sockets
