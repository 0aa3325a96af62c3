"""A destination that never comes back: its recipients expire when their lifetime is
over, even while the destination is paused again and again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from core.engine import Engine
from core.events import EventBus
from core.lab.world import LabWorld
from core.store import Status
from tests.integration.test_engine import campaign, config


async def test_recipients_of_a_dead_destination_expire_on_time(tmp_path: Path) -> None:
    world = LabWorld().host("mx.alive.test").host("mx.dead.test", listening=False)
    world.domain("dead.test", "mx.dead.test")
    addresses = [f"u{n}@dead.test" for n in range(6)]
    async with world:
        store = campaign(tmp_path, addresses)
        started = time.monotonic()
        engine = Engine(store, config(world, backoff=0.5, lifetime=3.0), EventBus())
        summary = await asyncio.wait_for(engine.run(), 30)
        took = time.monotonic() - started
    assert summary.counts == {Status.EXPIRED: 6}
    assert took < 15  # the lifetime (3 s) and one pause or backoff, not forever
    rows = {row.email: row for row in store.report_rows()}
    assert all("refused" in row.response.lower() or "connect" in row.response.lower()
               for row in rows.values()), rows
    store.close()
