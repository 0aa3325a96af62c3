"""DKIM, DMARC, List-Unsubscribe and the providers check against lab DNS records."""

from __future__ import annotations

from pathlib import Path

from core.lab.world import LabWorld
from core.outgoing import DKIMSettings
from core.preflight import Status
from core.preflight.providers import BULK_THRESHOLD
from tests.preflight.support import SELECTOR, preflight, public_record, write_key

DKIM_NAME = f"{SELECTOR}._domainkey.sender.test"


async def test_a_published_matching_key_passes(world: LabWorld, key: Path) -> None:
    result = (await preflight(world, key)).get("dkim")
    assert result.status is Status.PASS and DKIM_NAME in result.result


async def test_a_missing_selector_fails_with_the_record_to_publish(
    world: LabWorld, key: Path
) -> None:
    world.zone.remove(DKIM_NAME, "TXT")
    result = (await preflight(world, key)).get("dkim")
    assert result.status is Status.FAIL and "No DKIM key is published" in result.result
    assert public_record(key) in result.fix


async def test_a_key_other_than_the_configured_one_fails(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    world.zone.remove(DKIM_NAME, "TXT")
    world.zone.add_txt(DKIM_NAME, public_record(write_key(tmp_path / "old.pem")))
    result = (await preflight(world, key)).get("dkim")
    assert result.status is Status.FAIL and "not the public key" in result.result
    assert public_record(key) in result.fix


async def test_a_revoked_key_fails(world: LabWorld, key: Path) -> None:
    world.zone.remove(DKIM_NAME, "TXT")
    world.zone.add_txt(DKIM_NAME, "v=DKIM1; k=ed25519; p=")
    assert (await preflight(world, key)).get("dkim").status is Status.FAIL


async def test_an_unreadable_key_fails_and_no_dkim_warns(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    missing = DKIMSettings(str(tmp_path / "nowhere.pem"), SELECTOR, "sender.test")
    assert (await preflight(world, key, dkim=missing)).get("dkim").status is Status.FAIL
    unsigned = await preflight(world, key, dkim=None)
    assert unsigned.get("dkim").status is Status.WARN and unsigned.exit_code == 0


async def test_a_dkim_domain_unaligned_with_from_warns(world: LabWorld, key: Path) -> None:
    result = (await preflight(world, key, from_domain="brand.test")).get("dkim")
    assert result.status is Status.WARN and "brand.test" in result.result


async def test_dmarc_missing_fails(world: LabWorld, key: Path) -> None:
    world.zone.remove("_dmarc.sender.test", "TXT")
    report = await preflight(world, key)
    result = report.get("dmarc")
    assert result.status is Status.FAIL and report.exit_code == 1
    assert "_dmarc.sender.test" in result.fix


async def test_dmarc_found_at_the_organisational_domain(world: LabWorld, key: Path) -> None:
    result = (await preflight(world, key, from_domain="news.sender.test")).get("dmarc")
    assert result.status is Status.PASS and "_dmarc.sender.test" in result.result


async def test_dmarc_misaligned_fails(world: LabWorld, key: Path) -> None:
    world.zone.add_txt("_dmarc.brand.test", "v=DMARC1; p=reject")
    result = (await preflight(world, key, from_domain="brand.test")).get("dmarc")
    assert result.status is Status.FAIL and "DMARC will fail" in result.result
    signed = DKIMSettings(str(key), SELECTOR, "brand.test")  # DKIM d= aligns: enough
    aligned = (await preflight(world, key, from_domain="brand.test", dkim=signed)).get("dmarc")
    assert aligned.status is Status.PASS and "DKIM (d=brand.test)" in aligned.result


async def test_strict_spf_alignment_needs_the_exact_domain(world: LabWorld, key: Path) -> None:
    world.zone.remove("_dmarc.sender.test", "TXT")
    world.zone.add_txt("_dmarc.sender.test", "v=DMARC1; p=quarantine; aspf=s")
    result = (await preflight(world, key, sender="bounces@bulk.sender.test", dkim=None)
              ).get("dmarc")
    assert result.status is Status.FAIL
    world.zone.remove("_dmarc.sender.test", "TXT")
    world.zone.add_txt("_dmarc.sender.test", "v=DMARC1; p=quarantine")
    loose = await preflight(world, key, sender="bounces@bulk.sender.test", dkim=None)
    assert loose.get("dmarc").status is Status.PASS


async def test_unsubscribe_lights(world: LabWorld, key: Path) -> None:
    assert (await preflight(world, key)).get("unsubscribe").status is Status.PASS
    mailto = await preflight(world, key, list_unsubscribe_url=None,
                             list_unsubscribe_mailto="unsubscribe@sender.test")
    assert mailto.get("unsubscribe").status is Status.WARN
    small = await preflight(world, key, list_unsubscribe_url=None)
    assert small.get("unsubscribe").status is Status.WARN
    bulk = await preflight(world, key, list_unsubscribe_url=None,
                           domains={"good.test": BULK_THRESHOLD})
    result = bulk.get("unsubscribe")
    assert result.status is Status.FAIL and "5,000 recipients" in result.result


async def test_recipients_are_grouped_by_the_registered_domain_of_their_mx(
    world: LabWorld, key: Path
) -> None:
    world.domain("hosted.test", "mx.good.test")  # hosted by good.test's provider
    domains = {"good.test": 4, "hosted.test": 2, "plain.test": 1, "nowhere.test": 3}
    result = (await preflight(world, key, domains=domains)).get("providers")
    assert result.status is Status.PASS
    assert result.result.startswith("good.test: 6; plain.test: 1; no route: 3 (1 domain)")
    assert "5,000 a day" in result.result


async def test_a_provider_over_the_bulk_threshold_warns(world: LabWorld, key: Path) -> None:
    world.domain("hosted.test", "mx.good.test")
    domains = {"good.test": BULK_THRESHOLD - 1, "hosted.test": 1, "plain.test": 10}
    result = (await preflight(world, key, domains=domains)).get("providers")
    assert result.status is Status.WARN
    assert "good.test: 5,000 (bulk)" in result.result and "; plain.test: 10." in result.result
    assert "Over it at good.test" in result.result
