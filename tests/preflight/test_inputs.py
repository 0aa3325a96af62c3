"""What a preflight is asked about, read from a campaign file or a CSV, and the table."""

from __future__ import annotations

from pathlib import Path

from core.preflight import CheckResult, Report, Status
from core.preflight.command import render
from core.preflight.inputs import from_csv, from_domain_of, from_store
from core.store import CampaignStore, NewRecipient
from core.store import Status as RecipientStatus


def test_the_from_domain_is_the_messages_else_the_senders() -> None:
    assert from_domain_of(b"From: News <news@Brand.test>\n\nHi\n", "sender.test") == "brand.test"
    assert from_domain_of(b"Subject: no From\n\nHi\n", "sender.test") == "sender.test"


def test_a_campaign_file_gives_its_unfinished_recipients_and_settings(tmp_path: Path) -> None:
    with CampaignStore.create(
        tmp_path / "c.mxm", sender="news@sender.test",
        message=b"From: news@brand.test\nSubject: Hi\n\nHi\n",
        settings={"helo": "mail.sender.test", "list_unsubscribe_mailto": "u@sender.test"},
    ) as store:
        store.add_recipients([
            NewRecipient("a@x.test", "x.test", {}), NewRecipient("b@x.test", "x.test", {}),
            NewRecipient("c@y.test", "y.test", {}),
            NewRecipient("bad", "", {}, RecipientStatus.INVALID, "not an address"),
        ])
        campaign = from_store(store)
    assert campaign.domains == {"x.test": 2, "y.test": 1} and campaign.recipients == 3
    assert (campaign.helo, campaign.from_domain) == ("mail.sender.test", "brand.test")
    assert campaign.list_unsubscribe_mailto == "u@sender.test"
    assert campaign.list_unsubscribe_url is None and campaign.dkim is None


def test_a_csv_gives_its_valid_recipients_by_domain(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email\na@x.test\nA@x.test\nb@y.test\nnot-an-address\n")
    campaign = from_csv(path, "news@sender.test")
    assert campaign.domains == {"x.test": 1, "y.test": 1}  # the duplicate counted once
    assert (campaign.helo, campaign.from_domain) == ("sender.test", "sender.test")


def test_the_table_says_each_light_in_words_and_colours_only_a_terminal() -> None:
    report = Report((
        CheckResult("a", "First", Status.PASS, "fine"),
        CheckResult("b", "Second", Status.FAIL, "broken", "mend it"),
        CheckResult("c", "Third", Status.UNKNOWN, "no idea"),
    ))
    plain = render(report)
    assert plain.splitlines()[:5] == [
        "[PASS] First", "       fine", "[FAIL] Second", "       broken", "       fix: mend it",
    ]
    assert plain.rstrip().endswith("1 pass, 0 warn, 1 fail, 1 unknown")
    assert "\x1b[" not in plain and "\x1b[31m[FAIL]\x1b[0m Second" in render(report, colour=True)
    assert report.exit_code == 1
