"""``LabServer``: a scriptable SMTP server on loopback, for tests, benchmarks and sandbox mode.

Owns a listening socket on 127.0.0.1 or ::1 (ephemeral port), one task per accepted
connection (each runs a :class:`~core.lab.conversation.Conversation`), and their end:
``stop()`` closes the listener, every connection and every task, so nothing leaks. What
the server does is its :class:`~core.lab.behaviour.Behaviour`; what it saw is its
:class:`~core.lab.records.Recorder`. It never listens anywhere but loopback and never
connects anywhere at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from core.lab.behaviour import Behaviour, TLSMode
from core.lab.conversation import Conversation, ServerState
from core.lab.loopback import EPHEMERAL_PORT, LISTEN_BACKLOG, require_loopback
from core.lab.records import ReceivedMessage, Recorder
from core.lab.service import Connections, RecordingService, close_connections
from core.lab.tls import LabTLS, default_tls


class LabServer(RecordingService):
    """A lab SMTP server. ``async with LabServer(Behaviour(...)) as server: ...``

    ``tls`` is the certificate for STARTTLS (the process-wide lab one by default, made only
    if the behaviour offers STARTTLS); ``clock`` is what greylisting measures delays with.
    """

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = EPHEMERAL_PORT,
        tls: LabTLS | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.behaviour = behaviour if behaviour is not None else Behaviour()
        self.host = require_loopback(host)
        self._wanted_port = port
        if tls is None and self.behaviour.tls is not TLSMode.NONE:
            tls = default_tls()
        self.tls = tls
        self.recorder = Recorder()
        self._state = ServerState(
            self.behaviour, self.recorder, tls.server_context() if tls else None, clock
        )
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        # Each connection's task and stream, so that stop() can end both.
        self._connections: Connections = {}

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> LabServer:
        """Listen; afterwards ``port`` is known. A server starts once."""
        if self._server is not None or self._state.stopping:
            raise RuntimeError("a LabServer starts once")
        self._server = await asyncio.start_server(
            self._accepted, self.host, self._wanted_port, backlog=LISTEN_BACKLOG
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Stop listening, drop every connection, and wait for their tasks to end."""
        self._state.stopping = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await close_connections(self._connections, server)

    @property
    def unanswered(self) -> list[ReceivedMessage]:
        """Messages received whole whose end of data was never answered."""
        return self.recorder.unanswered

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback (not a coroutine) so that the task is known from its first moment.
        if self._state.stopping:
            writer.transport.abort()
            return
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._connections[task] = writer
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._connections.pop(task, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        record = self.recorder.connection_opened(f"{peer[0]}:{peer[1]}" if peer else "?")
        try:
            await Conversation(self._state, reader, writer, record).run()
        finally:
            self.recorder.connection_closed(record)
