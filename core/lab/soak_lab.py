"""A hostile lab world served from a process of its own, so that a soak's sender has the
other core to itself and its file descriptors and memory are its own to measure.

The child, ``python -m core.lab.soak_lab --recipients N --domains D --seed S --pace JSON``,
builds the world of :mod:`core.lab.hostile_world` from those numbers, starts it, prints
one JSON line (``{"nameserver": …, "port": …}``) and waits for a line on its stdin: then
it waits (bounded) until its servers are idle, prints its :class:`LabRecord` as one JSON
line, stops and exits. EOF on stdin (its parent died) or ``--max-seconds`` stop it too.
:class:`LabProcess` is the parent's side. Nothing here decides what a soak expects: the
record is what the lab saw, the script (rebuilt in the parent) what it was told to do.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import select
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from core.lab.hostile_world import Kind, Pace, hostile_script, hostile_world
from core.lab.world import LabWorld

#: Seconds the child waits for its servers to go idle before recording anyway.
IDLE_WAIT = 30.0
#: Seconds the parent waits for the child to start, or to record and exit.
START_TIMEOUT = 120.0
RECORD_TIMEOUT = 60.0
_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class LabRecord:
    """What the lab saw: copies accepted and left unanswered per recipient, connections
    per host, MX queries per SERVFAIL domain, and connections still open when asked."""

    accepted: dict[str, int]
    unanswered: dict[str, int]
    connections: dict[str, int]
    mx_queries: dict[str, int]
    active: int

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> LabRecord:
        return cls(**json.loads(text))


def record_of(world: LabWorld, servfail_domains: list[str]) -> LabRecord:
    """The record of a running world."""
    assert world.dns is not None
    servers = [host.server for host in world.hosts.values() if host.server is not None]
    return LabRecord(
        dict(Counter(world.delivered_to())),
        dict(Counter(r.lower() for m in world.unanswered() for r in m.recipients)),
        {server.behaviour.hostname: server.stats.connections for server in servers},
        {domain: world.dns.queries(domain, "MX") for domain in servfail_domains},
        sum(server.stats.active for server in servers),
    )


# ---- the child -----------------------------------------------------------------------------


async def serve(recipients: int, domains: int, seed: int, pace: Pace, max_seconds: float) -> int:
    script = hostile_script(recipients, domains, seed, pace)
    async with hostile_world(script) as world:
        print(json.dumps({"nameserver": world.nameserver, "port": world.port}), flush=True)
        stdin = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin
        )
        try:
            line = await asyncio.wait_for(stdin.readline(), max_seconds)
        except TimeoutError:
            return 1
        if not line:
            return 1  # the parent is gone
        servers = [host.server for host in world.hosts.values() if host.server is not None]
        try:
            async with asyncio.timeout(IDLE_WAIT):
                for server in servers:
                    await server.wait_until_idle(IDLE_WAIT)
        except TimeoutError:
            pass  # recorded with its count of connections still open
        print(record_of(world, script.domains(Kind.SERVFAIL)).to_json(), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.lab.soak_lab")
    parser.add_argument("--recipients", type=int, required=True)
    parser.add_argument("--domains", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--pace", default="{}", help="Pace fields as a JSON object")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)
    pace = Pace(**json.loads(args.pace))
    return asyncio.run(serve(args.recipients, args.domains, args.seed, pace, args.max_seconds))


# ---- the parent ----------------------------------------------------------------------------


class LabProcess:
    """The child, from the parent: ``with LabProcess(…) as lab: … lab.record()``.

    Every wait on it is bounded; leaving the ``with`` block ends the child for sure.
    """

    def __init__(
        self, recipients: int, domains: int, seed: int, pace: Pace, max_seconds: float
    ) -> None:
        self._command = [
            sys.executable,
            "-m",
            "core.lab.soak_lab",
            "--recipients",
            str(recipients),
            "--domains",
            str(domains),
            "--seed",
            str(seed),
            "--pace",
            json.dumps(dataclasses.asdict(pace)),
            "--max-seconds",
            str(max_seconds),
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self._pending = b""
        self.nameserver = ""
        self.port = 0

    def __enter__(self) -> LabProcess:
        env = {**os.environ, "PYTHONPATH": str(_ROOT)}
        self._process = subprocess.Popen(
            self._command, cwd=_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            ready = json.loads(self._line(START_TIMEOUT))
        except BaseException:
            self._end()
            raise
        self.nameserver, self.port = ready["nameserver"], int(ready["port"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._end()

    def record(self) -> LabRecord:
        """Ask the lab what it saw (once its servers are idle); the child then exits."""
        process = self._running()
        assert process.stdin is not None
        process.stdin.write(b"record\n")
        process.stdin.flush()
        return LabRecord.from_json(self._line(RECORD_TIMEOUT))

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the lab process is not running")
        return self._process

    def _line(self, timeout: float) -> str:
        """The child's next stdout line; ``TimeoutError`` or ``EOFError`` otherwise."""
        process = self._running()
        assert process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the lab process said nothing in {timeout:g} s")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise EOFError(f"the lab process ended (exit {process.poll()})")
                self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def _end(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        try:
            process.wait(RECORD_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(RECORD_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
