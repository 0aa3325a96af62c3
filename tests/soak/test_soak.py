"""The CI soak: ``mxmailer send`` to 5,000 recipients over 50 domains of the hostile lab
world (``core/lab/hostile_world.py``), run once for the module, then checked recipient by
recipient against the world's script. ``bench/soak.py`` is the full 100,000 version.

Short network timeouts and retry delays keep it well under a minute on two cores; the
send is interrupted after ``TIMEOUT`` s and recipients expire after ``LIFETIME`` s, so it
cannot hang. Every expectation is read from the script, none is written here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.lab.hostile_world import Expect, Kind
from core.lab.soak import Figures, SoakOptions, SoakRun, figures, run_soak
from core.store import Status

SEED = 20261125
TIMEOUT = 50.0
LIFETIME = 40.0
OPTIONS = SoakOptions(recipients=5000, domains=50, seed=SEED, timeout=TIMEOUT, lifetime=LIFETIME)


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> tuple[SoakRun, Figures]:
    run = run_soak(OPTIONS, Path(tmp_path_factory.mktemp("soak")))
    return run, figures(run)


def addresses(run: SoakRun, expect: Expect) -> list[str]:
    return [a for a, e in run.script.expected().items() if e is expect]


def test_it_finished_on_its_own_with_every_recipient_final(soak: tuple[SoakRun, Figures]) -> None:
    run, result = soak
    assert not run.interrupted, f"the send needed the watchdog after {run.wall:.1f} s"
    assert result.stuck == 0
    assert [a for a, row in run.rows.items() if not row.status.final] == []
    assert len(run.rows) == OPTIONS.recipients


def test_each_deliverable_recipient_was_accepted_exactly_once(
    soak: tuple[SoakRun, Figures],
) -> None:
    run, result = soak
    deliverable = addresses(run, Expect.DELIVERED)
    assert deliverable
    copies = {a: run.record.accepted.get(a, 0) for a in deliverable}
    assert {a: n for a, n in copies.items() if n != 1} == {}
    assert all(run.rows[a].status is Status.DELIVERED for a in deliverable)
    assert (result.duplicates, result.missing, result.stray) == (0, 0, 0)
    assert result.accepted == len(deliverable)


def test_unknown_users_bounced_with_550(soak: tuple[SoakRun, Figures]) -> None:
    run, _ = soak
    unknown = addresses(run, Expect.UNKNOWN_USER)
    assert unknown
    assert {(run.rows[a].status, run.rows[a].code) for a in unknown} == {(Status.BOUNCED, 550)}
    assert not any(a in run.record.accepted for a in unknown)


def test_null_mx_bounced_without_connecting(soak: tuple[SoakRun, Figures]) -> None:
    run, _ = soak
    null_mx = addresses(run, Expect.NULL_MX)
    assert null_mx
    rows = [run.rows[a] for a in null_mx]
    assert {(row.status, row.mx, row.code) for row in rows} == {(Status.BOUNCED, "", None)}
    assert all("null MX" in row.text for row in rows)


def test_servfail_domains_delivered_after_healing(soak: tuple[SoakRun, Figures]) -> None:
    run, _ = soak
    domains = run.script.domains(Kind.SERVFAIL)
    assert domains
    for domain in domains:
        assert run.record.mx_queries[domain] > run.script.pace.servfail_times, domain
        recipients = run.script.recipients_of(domain)
        assert all(run.record.accepted.get(a) == 1 for a in recipients)
        assert all(run.rows[a].attempts >= 2 for a in recipients)  # not before it healed


def test_hung_up_on_before_the_body_retried_and_after_it_never_resent(
    soak: tuple[SoakRun, Figures],
) -> None:
    run, result = soak
    before, after = run.script.hung_up_before_body, run.script.hung_up_after_body
    assert before and after
    assert all(run.rows[a].attempts >= 2 and run.record.accepted.get(a) == 1 for a in before)
    assert set(run.record.unanswered) == after
    assert {run.rows[a].status for a in after} == {Status.AMBIGUOUS}
    assert not any(a in run.record.accepted for a in after)
    assert result.resent == 0


def test_every_misbehaviour_was_met(soak: tuple[SoakRun, Figures]) -> None:
    _, result = soak
    assert result.met
    assert {what: n for what, n in result.met.items() if n[0] != n[1]} == {}


def test_file_descriptors_back_to_baseline_and_the_lab_idle(soak: tuple[SoakRun, Figures]) -> None:
    run, result = soak
    assert run.fds_after == run.fds_before
    assert result.lab_connections_open == 0


def test_nothing_else_went_wrong(soak: tuple[SoakRun, Figures]) -> None:
    _, result = soak
    assert result.problems == []
