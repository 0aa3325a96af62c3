"""A big campaign loads a slice at a time: the event loop (the window's) keeps turning,
sending begins before the load ends, and a run never ends before every recipient is in."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from core import engine as engine_module
from core.engine import Engine
from core.events import EventBus
from core.lab.world import sandbox_world
from core.store import Status
from tests.integration.test_engine import campaign, config


async def test_the_loop_turns_while_a_campaign_loads_and_everyone_is_sent_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "LOAD_SLICE", 5)
    # Null-MX recipients first: they end without a connection, so the count of recipients
    # still to do falls to zero early and often while the others are still loading.
    addresses = [f"n{n}@nullmx.test" for n in range(10)]
    addresses += [f"p{n}@plain.test" for n in range(40)]
    async with sandbox_world() as world:
        store = campaign(tmp_path, addresses)
        engine = Engine(store, config(world), EventBus())
        loaded_when_the_loop_turned: list[int] = []

        def turned() -> None:
            loaded_when_the_loop_turned.append(engine._unfinished)

        asyncio.get_running_loop().call_soon(turned)
        run = asyncio.ensure_future(engine.run())
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_soon(turned)
        summary = await asyncio.wait_for(run, 60)
        delivered = Counter(world.delivered_to())
    assert summary.counts == {Status.DELIVERED: 40, Status.BOUNCED: 10}
    assert all(n < len(addresses) for n in loaded_when_the_loop_turned)
    assert sorted(delivered) == sorted(addresses[10:])
    assert set(delivered.values()) == {1}
    store.close()
