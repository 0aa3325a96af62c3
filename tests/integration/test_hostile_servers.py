"""Servers that misbehave: each gives the right outcome, inside its timeout, with bounded
memory, and never an exception out of the driver."""

from __future__ import annotations

import time

import pytest

from core.connection import ConnectionConfig, ConnectionReport, deliver
from core.lab import Act, Behaviour, Hostile, LabServer, Stage
from core.smtp import Body, FailureKind, Outcome, Phase, TLSPolicy, Transaction
from tests.integration.support import SENDER, config, outcomes, target, transactions

SHORT = 0.5  # seconds: every phase timeout in these tests


def short_config() -> ConnectionConfig:
    return config(
        TLSPolicy.OFF,
        greeting=SHORT,
        command=SHORT,
        data=SHORT,
        body_block=SHORT,
        end_of_data=SHORT,
        quit=SHORT,
    )


async def run_against(
    behaviour: Behaviour, txns: list[Transaction] | None = None
) -> tuple[ConnectionReport, float, LabServer]:
    async with LabServer(behaviour) as server:
        started = time.monotonic()
        report = await deliver(target(server), txns or transactions(2), short_config())
        elapsed = time.monotonic() - started
    return report, elapsed, server


@pytest.mark.parametrize(
    ("stage", "act", "kind", "phase"),
    [
        (Stage.GREETING, Act.SILENCE, FailureKind.TIMEOUT, Phase.GREETING),
        (Stage.GREETING, Act.DRIP, FailureKind.TIMEOUT, Phase.GREETING),
        (Stage.GREETING, Act.GARBAGE, FailureKind.PROTOCOL, Phase.GREETING),
        (Stage.GREETING, Act.LONG_LINE, FailureKind.PROTOCOL, Phase.GREETING),
        (Stage.GREETING, Act.TALK_AHEAD, FailureKind.PROTOCOL, Phase.GREETING),
        (Stage.GREETING, Act.CLOSE, FailureKind.CLOSED, Phase.GREETING),
        (Stage.EHLO, Act.ENDLESS, FailureKind.PROTOCOL, Phase.EHLO),
        (Stage.EHLO, Act.SILENCE, FailureKind.TIMEOUT, Phase.EHLO),
        (Stage.MAIL, Act.GARBAGE, FailureKind.PROTOCOL, Phase.MAIL),
        (Stage.RCPT, Act.SILENCE, FailureKind.TIMEOUT, Phase.RCPT),
    ],
)
async def test_misbehaviour_before_any_rcpt_reply_leaves_recipients_unattempted(
    stage: Stage, act: Act, kind: FailureKind, phase: Phase
) -> None:
    behaviour = Behaviour(hostile=(Hostile(stage, act),), drip_interval=0.1)
    report, elapsed, server = await run_against(behaviour)
    assert report.failure is not None
    assert (report.failure.kind, report.failure.phase) == (kind, phase)
    assert outcomes(report.results) == [Outcome.UNATTEMPTED] * 2
    assert server.messages == []
    # Inside its timeout (plus the polite QUIT's), not after some longer default.
    assert elapsed < 4 * SHORT + 1.0


async def test_silence_after_data_is_a_data_timeout() -> None:
    report, _, _ = await run_against(Behaviour(hostile=(Hostile(Stage.DATA, Act.SILENCE),)))
    assert report.failure is not None
    assert (report.failure.kind, report.failure.phase) == (FailureKind.TIMEOUT, Phase.DATA)
    # The RCPT was accepted but no body went out: not delivered, safe to retry.
    assert outcomes(report.results) == [Outcome.TRANSIENT, Outcome.UNATTEMPTED]


async def test_no_reply_to_end_of_data_is_ambiguous() -> None:
    behaviour = Behaviour(hostile=(Hostile(Stage.END_OF_DATA, Act.SILENCE),))
    report, _, server = await run_against(behaviour)
    assert report.failure is not None
    assert (report.failure.kind, report.failure.phase) == (FailureKind.TIMEOUT, Phase.END_OF_DATA)
    assert outcomes(report.results) == [Outcome.AMBIGUOUS, Outcome.UNATTEMPTED]
    assert len(server.unanswered) == 1  # the server did get the whole message


async def test_close_after_end_of_data_is_ambiguous() -> None:
    behaviour = Behaviour(hostile=(Hostile(Stage.END_OF_DATA, Act.CLOSE),))
    report, _, _ = await run_against(behaviour)
    assert report.failure is not None and report.failure.kind is FailureKind.CLOSED
    assert outcomes(report.results) == [Outcome.AMBIGUOUS, Outcome.UNATTEMPTED]


async def test_close_in_the_middle_of_a_large_body_is_transient() -> None:
    chunk = (b"x" * 76 + b"\r\n") * 1000
    body = Body.from_chunks(
        lambda: (chunk for _ in range(200)), size=len(chunk) * 200, eight_bit=False
    )
    txn = Transaction(SENDER, ("big@lab.test",), body)
    behaviour = Behaviour(hostile=(Hostile(Stage.BODY, Act.CLOSE),), size_limit=64 << 20)
    report, _, server = await run_against(behaviour, [txn, *transactions(1)])
    assert report.failure is not None and report.failure.kind is FailureKind.CLOSED
    # The end marker never went out: the message was certainly not taken.
    assert outcomes(report.results) == [Outcome.TRANSIENT, Outcome.UNATTEMPTED]
    assert server.messages == []


async def test_endless_continuation_does_not_grow_memory() -> None:
    import tracemalloc

    behaviour = Behaviour(hostile=(Hostile(Stage.EHLO, Act.ENDLESS),))
    tracemalloc.start()
    try:
        report, _, _ = await run_against(behaviour)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.failure is not None and report.failure.kind is FailureKind.PROTOCOL
    assert "200 lines" in report.failure.detail
    # Client and server share this process; the whole exchange stays well under a few MB.
    assert peak < 8 * 1024 * 1024


async def test_the_session_watchdog_ends_a_server_that_answers_just_in_time() -> None:
    # Every reply drips out a byte every 0.05 s: each phase moves on in time, so only the
    # watchdog on the whole connection can end it.
    behaviour = Behaviour(
        hostile=tuple(Hostile(stage, Act.DRIP) for stage in (Stage.MAIL, Stage.RCPT)),
        drip_interval=0.05,
    )
    cfg = config(TLSPolicy.OFF, command=5.0, session=1.0, quit=0.5)
    async with LabServer(behaviour) as server:
        started = time.monotonic()
        report = await deliver(target(server), transactions(20), cfg)
        elapsed = time.monotonic() - started
    assert report.failure is not None and report.failure.kind is FailureKind.TIMEOUT
    assert Outcome.UNATTEMPTED in outcomes(report.results)
    assert elapsed < 5.0
