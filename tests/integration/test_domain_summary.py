"""``mxmailer export-domains``: the per-domain summary of a campaign sent to the lab."""

from __future__ import annotations

import csv
from pathlib import Path

from core.domain_summary import HEADER, export_domain_summary, summarize
from core.lab.world import sandbox_world
from core.store import Status
from tests.integration.test_cli_send import lab_args, mxmailer, send_args, write_csv, write_message
from tests.integration.test_store import reported

ADDRESSES = [
    "ada@plain.test",
    "alan@plain.test",
    "grace@grey.test",
    "guido@grey.test",
    "nobody@bounce.test",
    "unknown@bounce.test",
    "fine@bounce.test",
    "someone@nullmx.test",
]


async def test_the_summary_counts_each_domain_as_the_lab_treated_it(tmp_path: Path) -> None:
    state, output = tmp_path / "campaign.mxm", tmp_path / "domains.csv"
    async with sandbox_world(greylist_seconds=1) as world:
        recipients = write_csv(tmp_path / "list.csv", ADDRESSES)
        message = write_message(tmp_path / "m.eml")
        code, _, err = await mxmailer(*send_args(recipients, message), *lab_args(world, state))
    assert code == 1, err  # some bounced
    code, _, err = await mxmailer("export-domains", "--state", state, "--output", output)
    assert code == 0, err
    assert "4 domain(s) summarized" in err
    with output.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = {row["domain"]: row for row in reader}
    assert tuple(reader.fieldnames or ()) == HEADER

    grey = rows["grey.test"]
    assert (grey["recipients"], grey["delivered"], grey["greylisted"]) == ("2", "2", "2")
    assert float(grey["median_delivery_seconds"]) >= 1.0  # waited out the greylisting
    plain = rows["plain.test"]
    assert (plain["delivered"], plain["greylisted"], plain["bounced"]) == ("2", "0", "0")
    bounce = rows["bounce.test"]
    assert (bounce["recipients"], bounce["delivered"], bounce["bounced"]) == ("3", "1", "2")
    reason, _, count = bounce["top_bounce_reasons"].rpartition(" (x")
    assert reason.startswith("550 5.1.1") and count == "2)"  # one reason for both addresses
    assert "nobody@" not in reason and "unknown@" not in reason
    assert rows["nullmx.test"]["bounced"] == "1"


def test_invalid_and_suppressed_rows_are_left_out_and_replies_are_spreadsheet_safe(
    tmp_path: Path,
) -> None:
    output = tmp_path / "domains.csv"
    with reported(tmp_path / "c.mxm") as store:  # 9 rows: one invalid, one suppressed
        summaries = summarize(store.states(), set())
        state = store.get(2)
        formula = state.to_update(status=Status.BOUNCED, code=None, text="=HYPERLINK(1)")
        store.record(formula)
        store.flush()
        export_domain_summary(store, output)
    assert [s.domain for s in summaries] == ["example.test"]
    assert summaries[0].recipients == 7
    assert (summaries[0].not_delivered, summaries[0].possibly_delivered) == (4, 1)
    with output.open(newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert any("=HYPERLINK" in cell for cell in cells)
    assert not any(cell.startswith(("=", "+", "@", "-")) for cell in cells)
