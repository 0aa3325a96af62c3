"""How a hostile lab server puts bytes on the wire (or withholds them), each act bounded.

Owns the mechanics of :class:`~core.lab.behaviour.Act`: dripping, endless continuation
lines, long lines, garbage, silence. Every loop here ends on a byte bound, a time bound,
or the client leaving, and writes wait for the socket to drain so a client that stops
reading cannot make the server buffer without limit. It never decides *when* to
misbehave (the conversation does) and never talks to anything but the stream it is given.
"""

from __future__ import annotations

import asyncio

#: Not SMTP: NULs, high bytes, an escape sequence, a bell, every byte value, then CRLF so
#: that a line-based reader gets a whole line and must reject it.
GARBAGE = (
    b"\x00\xff\xfe\x80\x1b[2J\x07\xc3(\x9c not smtp \x00" + bytes(range(256)) + b"\x00\x00\r\n"
)
#: What :attr:`~core.lab.behaviour.Act.TALK_AHEAD` appends: a reply to nothing.
UNSOLICITED = b"250 2.0.0 Ok\r\n"
#: Size of each write of the long and endless acts.
WRITE_CHUNK = 64 * 1024
#: Size of each read while silent.
READ_CHUNK = 64 * 1024


async def drip(writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
    """Send ``data`` one byte at a time, ``interval`` seconds apart."""
    for index in range(len(data)):
        if writer.is_closing():
            return
        if index:
            await asyncio.sleep(interval)
        writer.write(data[index : index + 1])
        await writer.drain()


async def silence(reader: asyncio.StreamReader, timeout: float) -> None:
    """Say nothing; read and throw away what comes until the client leaves or ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(READ_CHUNK):
                pass
    except TimeoutError:
        return


async def answer_with_garbage(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
) -> None:
    """Wait for the client's next bytes (a TLS ClientHello), answer them with garbage, and
    then say nothing more. Waiting first makes sure the garbage reaches the client's TLS
    layer rather than the plaintext it read before starting its handshake."""
    try:
        async with asyncio.timeout(timeout):
            if not await reader.read(READ_CHUNK):
                return
    except TimeoutError:
        return
    writer.write(GARBAGE)
    await writer.drain()
    await silence(reader, timeout)


async def long_line(writer: asyncio.StreamWriter, code: int, size: int, timeout: float) -> None:
    """Send ``code`` and a space, then filler up to ``size`` bytes in all, and no newline."""
    head = f"{code} ".encode("ascii")
    remaining = max(size - len(head), 0)
    writer.write(head)
    filler = b"x" * WRITE_CHUNK
    try:
        async with asyncio.timeout(timeout):
            while remaining > 0 and not writer.is_closing():
                piece = filler[: min(remaining, WRITE_CHUNK)]
                writer.write(piece)
                remaining -= len(piece)
                await writer.drain()
    except TimeoutError:
        return


async def endless(
    writer: asyncio.StreamWriter, code: int, max_bytes: int, max_seconds: float
) -> int:
    """Send ``NNN-`` continuation lines until the client leaves or a bound; return bytes sent.

    A client that stops reading makes ``drain`` wait, which the time bound ends; a client
    that closes makes the write fail, which ends it at once.
    """
    line = f"{code}-ENDLESS continuation line, the last one never comes\r\n".encode("ascii")
    chunk = line * (WRITE_CHUNK // len(line))
    sent = 0
    try:
        async with asyncio.timeout(max_seconds):
            while sent < max_bytes and not writer.is_closing():
                writer.write(chunk)
                sent += len(chunk)
                await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    return sent
