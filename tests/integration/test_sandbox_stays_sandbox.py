"""A campaign made in the window's sandbox (perhaps from a real list, with the demo
message) is never sent for real by the command line, and has no pre-flight checks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from core.lab.world import sandbox_world
from core.store import CampaignStore, Status
from gui.importing import ImportChoices, import_campaign
from tests.integration.test_cli_send import lab_args, mxmailer, write_csv


async def test_a_sandbox_campaign_goes_only_to_a_lab(tmp_path: Path) -> None:
    listed = write_csv(tmp_path / "list.csv", ["ada@plain.test", "someone@nowhere.test"])
    campaign = import_campaign(ImportChoices(listed), tmp_path / "data").path
    base = ["send", "--state", campaign, "--progress", "none", "--timeout", "2"]
    for elsewhere in (
        [],  # the system's DNS: the real internet
        ["--nameserver", "192.0.2.53"],  # a nameserver that is not on this computer
        ["--relay", "127.0.0.1:2525"],  # a relay sends for real
        # ... refused before its password is looked for (none is to be found here)
        ["--relay", "127.0.0.1:2525", "--relay-user", "ada"],
    ):
        code, _, err = await mxmailer(*base, *elsewhere)
        assert code == 2, err
        assert "was made in the window's sandbox" in err and "password" not in err
    with CampaignStore.open(campaign)[0] as store:
        assert store.counts()[Status.QUEUED] == 2  # untouched

    code, _, err = await mxmailer("preflight", "--state", campaign)
    assert code == 2 and "the pre-flight checks are for real sending" in err

    async with sandbox_world(greylist_seconds=1) as world:  # the lab: that is allowed
        code, _, err = await mxmailer("send", *lab_args(world, campaign))
        delivered = Counter(world.delivered_to())
    assert code == 1, err  # nowhere.test does not exist, in the lab either
    assert delivered == {"ada@plain.test": 1}
