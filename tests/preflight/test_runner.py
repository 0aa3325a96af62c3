"""The runner: a check that hangs or raises is an unknown light, never a hang or a crash,
and nothing it started outlives the run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.lab.world import LabWorld
from core.preflight import CHECKS, Check, CheckResult, Preflight, Status, run_preflight
from core.preflight.facts import Facts
from tests.preflight.support import campaign, network


async def test_a_hanging_check_is_unknown_after_its_time(world: LabWorld, key: Path) -> None:
    never = asyncio.Event()

    async def hang(facts: Facts) -> list[CheckResult]:
        await never.wait()
        return []

    async def boom(facts: Facts) -> list[CheckResult]:
        raise RuntimeError("surprise")

    checks = (Check("hang", "Hangs", hang), Check("boom", "Raises", boom), CHECKS[0])
    preflight = Preflight(campaign(key), network(world, check_timeout=0.3))
    async with asyncio.timeout(10):
        report = await run_preflight(preflight, checks)
    assert [result.key for result in report.results] == ["hang", "boom", "port25"]
    hung, raised, port25 = report.results
    assert hung.status is Status.UNKNOWN and "0.3 s" in hung.result
    assert raised.status is Status.UNKNOWN and "surprise" in raised.result
    assert port25.status is Status.PASS
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert not [task for task in others if "Facts" in repr(task.get_coro())]


async def test_a_probe_slower_than_the_check_time_is_unknown_and_cancelled(
    world: LabWorld, key: Path
) -> None:
    preflight = Preflight(campaign(key, domains={"tarpit.test": 1}),
                          network(world, check_timeout=0.5, probe_timeout=5.0))
    async with asyncio.timeout(10):
        report = await run_preflight(preflight, (CHECKS[0],))
    (result,) = report.results
    assert result.status is Status.UNKNOWN and "did not finish" in result.result
    assert report.exit_code == 0
