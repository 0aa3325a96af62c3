"""A 20 MB message is streamed, never held whole a second time by the client.

The client runs in a child process so that its memory is measured alone (the lab server,
which keeps what it receives, stays in this one)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

from core.lab import Behaviour, LabServer

CHUNK = (b"x" * 76 + b"\n") * 1000  # 77 KB of LF-ended lines; the wire gets CRLF
CHUNKS = 270  # about 21 MB on the wire

_CLIENT = textwrap.dedent(
    f"""
    import asyncio, sys, tracemalloc
    from core.connection import ConnectionConfig, Target, deliver
    from core.smtp import Body, SessionConfig, TLSPolicy, Transaction

    chunk = (b"x" * 76 + b"\\n") * 1000
    body = Body.from_chunks(
        lambda: (chunk for _ in range({CHUNKS})), size=78 * 1000 * {CHUNKS}, eight_bit=False
    )
    txn = Transaction("big@sender.test", ("a@lab.test",), body)
    config = ConnectionConfig(SessionConfig("client.test", TLSPolicy.OFF))
    tracemalloc.start()
    target = Target("mx.lab.test", "127.0.0.1", int(sys.argv[1]))
    report = asyncio.run(deliver(target, [txn], config))
    print(report.results[0].outcome.value, tracemalloc.get_traced_memory()[1])
    """
)


async def test_streamed_20_mb_body_keeps_client_memory_small() -> None:
    root = Path(__file__).resolve().parents[2]
    async with LabServer(Behaviour(size_limit=64 << 20)) as server:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CLIENT,
            str(server.port),
            cwd=root,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(child.communicate(), 120)
        messages = await server.wait_for_messages(1)
    assert child.returncode == 0, err.decode()
    outcome, peak = out.decode().split()
    assert outcome == "accepted"
    assert messages[0].data == CHUNK.replace(b"\n", b"\r\n") * CHUNKS
    # The message is 21 MB; the client's peak is a few chunks and the transport's buffer.
    assert int(peak) < 4 * 1024 * 1024, f"client peak {int(peak) / 1e6:.1f} MB"
    print(f"client peak for a 21 MB message: {int(peak) / 1e6:.2f} MB")
