"""What every lab service shares: where it listens, ``async with``, and how it ends its
connections. Owns no protocol: the SMTP servers and the DNS server build on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Self

from core.lab.records import ConnectionRecord, LabStats, ReceivedMessage, Recorder

#: A service's open connections: the task serving each, and its stream to close.
Connections = dict[asyncio.Task[None], asyncio.StreamWriter]


class AsyncService:
    """Something started and stopped: ``async with`` starts it and always stops it."""

    async def start(self) -> Self:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


class LoopbackService(AsyncService):
    """A service on a loopback ``host`` whose ``port`` is known once it has started.

    Subclasses set ``host``, set ``_port`` in ``start()`` and implement ``stop()``.
    """

    host: str
    _port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} has not started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.host, self.port


class RecordingService(LoopbackService):
    """A lab SMTP server: what it saw, and waiting on it, read from its ``recorder``."""

    recorder: Recorder

    @property
    def messages(self) -> list[ReceivedMessage]:
        return self.recorder.messages

    @property
    def connections(self) -> list[ConnectionRecord]:
        return self.recorder.connections

    @property
    def stats(self) -> LabStats:
        return self.recorder.stats

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        await self.recorder.wait_for(predicate, timeout)

    async def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        return await self.recorder.wait_for_messages(count, timeout)

    async def wait_until_idle(self, timeout: float = 5.0) -> None:
        await self.recorder.wait_until_idle(timeout)


async def close_connections(connections: Connections, server: asyncio.Server | None) -> None:
    """Cancel every connection's task, abort streams whose task never ran, close the
    listener, and give the loop one turn to release the sockets."""
    open_now = list(connections.items())
    for task, _ in open_now:
        task.cancel()
    await asyncio.gather(*(task for task, _ in open_now), return_exceptions=True)
    for _, writer in open_now:  # a task cancelled before it ran never closed its stream
        if not writer.transport.is_closing():
            writer.transport.abort()
    if server is not None:
        await server.wait_closed()
    await asyncio.sleep(0)
