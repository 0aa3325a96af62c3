"""The sandbox demo's campaign and lab settings (gui.sandbox), without Qt."""

from __future__ import annotations

import csv
from pathlib import Path

from core.store import CampaignStore, Status
from gui.sandbox import (
    HELO,
    LAB_TIMEOUTS,
    SAMPLE_RECIPIENTS,
    SANDBOX_SETTING,
    SandboxLab,
    create_sample_campaign,
    expected_outcome,
    is_sandbox,
    lab_retry_policy,
)


def test_the_sample_becomes_a_sandbox_campaign_file(tmp_path: Path) -> None:
    sample = create_sample_campaign(tmp_path / "data", now=0)
    assert sample.path.parent == tmp_path / "data"
    assert sample.path.suffix == ".mxm"
    assert sample.summary.valid == 23 and sample.summary.invalid == 1
    with CampaignStore.open(sample.path)[0] as store:
        assert is_sandbox(store)
        assert store.settings[SANDBOX_SETTING] is True
        counts = store.counts()
        assert counts[Status.QUEUED] == 23 and counts[Status.INVALID] == 1
    again = create_sample_campaign(tmp_path / "data", now=0)  # the same second
    assert again.path != sample.path
    assert not list((tmp_path / "data").glob("*.importing"))


def test_the_sample_covers_every_lab_domain() -> None:
    with SAMPLE_RECIPIENTS.open(encoding="utf-8") as handle:
        emails = [row["email"] for row in csv.DictReader(handle)]
    domains = {email.rpartition("@")[2] for email in emails if "@" in email}
    assert {
        "plain.test",
        "grey.test",
        "equal.test",
        "failover.test",
        "tarpit.test",
        "bounce.test",
        "nullmx.test",
    } <= domains
    assert "nobody@bounce.test" in emails
    assert 20 <= len(emails) <= 30
    assert all(domain.endswith(".test") for domain in domains)
    outcomes = {expected_outcome(email) for email in emails}
    assert outcomes == {"delivered", "bounced", "invalid"}


def test_a_campaign_not_made_here_is_not_a_sandbox_campaign(tmp_path: Path) -> None:
    with CampaignStore.create(
        tmp_path / "real.mxm",
        sender="news@example.test",
        message=b"Subject: x\n\nhi\n",
        settings={"helo": "example.test"},
    ) as store:
        assert not is_sandbox(store)


def test_lab_timing_makes_the_demo_quick_but_honest() -> None:
    policy = lab_retry_policy(15)
    assert policy.hint_min <= 15 <= policy.hint_max  # the lab's "try again in 15 s" is kept
    assert LAB_TIMEOUTS.greeting <= 3  # the tarpit fails over within seconds


async def test_the_lab_config_reaches_only_the_lab() -> None:
    lab = SandboxLab(greylist_seconds=1)
    await lab.start()
    try:
        config = lab.engine_config()
        assert config.nameservers is not None
        assert all(host.startswith("127.") for host, _ in config.nameservers)
        assert config.port == lab.world.port
        assert config.helo == HELO
    finally:
        await lab.stop()
    assert not lab.running
