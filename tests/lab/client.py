"""A bare SMTP client over asyncio streams, for poking lab servers in tests.

It parses nothing but reply lines (``NNN-`` / ``NNN ``) and never interprets them, so a
test sees exactly what a server put on the wire. Every read is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from types import TracebackType

TIMEOUT = 5.0


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def first(self) -> str:
        return f"{self.code} {self.lines[0]}"


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> RawClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), TIMEOUT)
        return cls(reader, writer)

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, timeout: float = TIMEOUT) -> Reply:
        """Read one whole reply, however many lines."""
        lines: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.reader.readline()
                if not raw:
                    raise EOFError(f"connection closed after {lines!r}")
                assert raw.endswith(b"\r\n"), raw
                code, sep, text = raw[:3], raw[3:4], raw[4:-2]
                lines.append(text.decode())
                if sep == b" ":
                    return Reply(int(code), tuple(lines))
                assert sep == b"-", raw

    async def replies(self, count: int) -> list[Reply]:
        return [await self.reply() for _ in range(count)]

    async def command(self, line: str) -> Reply:
        await self.send(line.encode() + b"\r\n")
        return await self.reply()

    async def hello(self, name: str = "client.lab.test") -> Reply:
        """Read the greeting and say EHLO; return the EHLO reply."""
        greeting = await self.reply()
        assert greeting.code == 220, greeting
        return await self.command(f"EHLO {name}")

    async def send_mail(self, sender: str, recipients: list[str], body: bytes) -> Reply:
        """One transaction, lock-step; ``body`` is already dot-stuffed and ends in CRLF."""
        assert (await self.command(f"MAIL FROM:<{sender}>")).code == 250
        for recipient in recipients:
            assert (await self.command(f"RCPT TO:<{recipient}>")).code == 250
        assert (await self.command("DATA")).code == 354
        await self.send(body + b".\r\n")
        return await self.reply()

    async def read_some(self, timeout: float = TIMEOUT) -> bytes:
        """Whatever bytes arrive next (b"" at EOF)."""
        return await asyncio.wait_for(self.reader.read(65536), timeout)

    async def read_to_eof(self, limit: int, timeout: float = TIMEOUT) -> bytes:
        """Everything until the server closes, refusing to hold more than ``limit`` bytes."""
        data = bytearray()
        async with asyncio.timeout(timeout):
            while chunk := await self.reader.read(65536):
                data += chunk
                assert len(data) <= limit, "the server sent more than the test allows"
        return bytes(data)

    async def starttls(self, context: ssl.SSLContext, server_hostname: str = "localhost") -> None:
        await asyncio.wait_for(
            self.writer.start_tls(context, server_hostname=server_hostname), TIMEOUT
        )

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
        except (OSError, TimeoutError):
            self.writer.transport.abort()
