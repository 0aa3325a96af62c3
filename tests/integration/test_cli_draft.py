"""A real campaign the window made before its message was written is refused by
``mxmailer send`` too: exit 2, the reason, and nothing sent."""

from __future__ import annotations

from pathlib import Path

from core.lab.world import sandbox_world
from core.outgoing import DRAFT_REFUSED
from core.store import CampaignStore, Status
from gui.importing import ImportChoices, import_campaign
from gui.settings_model import AppSettings, Delivery
from tests.integration.test_cli_send import lab_args, mxmailer, write_csv

REAL = AppSettings(sender="news@sender.test", delivery=Delivery.REAL, real_acknowledged=True)


async def test_a_draft_campaign_is_not_sent_by_the_cli(tmp_path: Path) -> None:
    recipients = write_csv(tmp_path / "list.csv", ["ada@plain.test", "alan@plain.test"])
    draft = import_campaign(ImportChoices(recipients), tmp_path, real=REAL).path
    async with sandbox_world(greylist_seconds=1) as world:
        code, _, err = await mxmailer("send", *lab_args(world, draft))
        delivered = world.delivered_to()
    assert code == 2, err
    assert DRAFT_REFUSED in err
    assert delivered == []
    with CampaignStore.open(draft)[0] as store:
        assert store.counts()[Status.QUEUED] == 2  # untouched, still waiting for its message
