from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.lab.world import LabWorld
from tests.preflight.support import lab_world, write_key


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return write_key(tmp_path / "dkim.pem")


@pytest.fixture
async def world(key: Path) -> AsyncIterator[LabWorld]:
    async with lab_world(key) as started:
        yield started
