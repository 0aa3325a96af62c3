"""What the integration tests share: a sender, numbered messages, configs, targets."""

from __future__ import annotations

from collections.abc import Iterable

from core.connection import ConnectionConfig, Target, Timeouts
from core.lab import Act, Behaviour, Hostile, LabServer, Stage
from core.lab.aiosmtpd_server import AiosmtpdServer
from core.lab.world import LabWorld
from core.smtp import Body, Outcome, RecipientResult, SessionConfig, TLSPolicy, Transaction

SENDER = "news@sender.test"


def message(number: int, extra: bytes = b"") -> bytes:
    return (
        f"From: <{SENDER}>\r\nTo: <r{number}@lab.test>\r\nSubject: message {number}\r\n\r\n"
        f"Hello {number}.\r\n".encode()
        + b".a line that starts with a dot\r\n"
        + extra
    )


def transactions(count: int, *, per_message: int = 1) -> list[Transaction]:
    return [
        Transaction(
            SENDER,
            tuple(f"r{n}-{k}@lab.test" for k in range(per_message)),
            Body.from_bytes(message(n)),
        )
        for n in range(count)
    ]


def config(tls: TLSPolicy = TLSPolicy.OFF, **timeouts: float) -> ConnectionConfig:
    return ConnectionConfig(SessionConfig("client.test", tls), Timeouts(**timeouts))


def target(server: LabServer | AiosmtpdServer) -> Target:
    return Target("mx.lab.test", "127.0.0.1", server.port)


def outcomes(results: Iterable[RecipientResult]) -> list[Outcome]:
    return [result.outcome for result in results]


def slow_world(act: Act = Act.DRIP, drip_interval: float = 0.003) -> LabWorld:
    """``slow.test``, whose one MX answers each end of data slowly (``Act.DRIP``) or never
    (``Act.SILENCE``): a run lasts long enough to be interrupted mid-way, and sometimes
    between an end of data and its reply."""
    behaviour = Behaviour(
        hostname="mx.slow.test",
        hostile=(Hostile(Stage.END_OF_DATA, act),),
        drip_interval=drip_interval,
    )
    world = LabWorld().host("mx.slow.test", behaviour)
    return world.domain("slow.test", "mx.slow.test")
