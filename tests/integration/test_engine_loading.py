"""A big campaign loads a slice at a time: the event loop (the window's) keeps turning,
sending begins before the load ends, and a run never ends before every recipient is in."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import engine as engine_module
from core.engine import Engine
from core.events import EventBus
from core.lab.world import sandbox_world
from core.store import RecipientState, Status, StoreError
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


async def test_a_load_that_fails_half_way_settles_what_it_started_before_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file cannot be read past row 10: run() raises only once what the first
    slices put in flight has finished and is saved, so a second run sends no one twice."""
    monkeypatch.setattr(engine_module, "LOAD_SLICE", 5)
    addresses = [f"p{n}@plain.test" for n in range(20)]
    async with sandbox_world() as world:
        store = campaign(tmp_path, addresses)
        readable = store.pending

        def failing() -> Iterator[RecipientState]:
            for number, state in enumerate(readable(), 1):
                if number == 11:
                    raise StoreError("disk I/O error while reading (simulated)")
                yield state

        monkeypatch.setattr(store, "pending", failing)
        engine = Engine(store, config(world), EventBus())
        with pytest.raises(StoreError, match="simulated"):
            await asyncio.wait_for(engine.run(), 60)
        assert not engine._tasks and store.queued_updates == 0  # settled and saved
        first = Counter(world.delivered_to())
        monkeypatch.setattr(store, "pending", readable)
        summary = await asyncio.wait_for(Engine(store, config(world), EventBus()).run(), 60)
        delivered = Counter(world.delivered_to())
    assert summary.counts == {Status.DELIVERED: 20}
    assert sum(first.values()) <= 10 and set(delivered.values()) == {1}
    store.close()
