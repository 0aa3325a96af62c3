"""The hostile world of soaks: its script follows from its numbers and seed alone, has the
shares it claims, and the world built from it plays exactly that script."""

from __future__ import annotations

import ipaddress
from collections import Counter

import dns.message
import dns.rcode
import pytest

from core.lab import Act, Behaviour, HangUp, Stage
from core.lab.hostile_world import (
    MIN_DOMAINS,
    SHARES,
    Expect,
    HostileScript,
    Kind,
    Pace,
    hostile_script,
    hostile_world,
)
from core.lab.world import LabWorld, host_address
from tests.lab.client import RawClient


def behaviour(world: LabWorld, host: str) -> Behaviour:
    found = world.hosts[host].behaviour
    assert found is not None
    return found


def mx_rcode(world: LabWorld, domain: str) -> int:
    response = world.zone.respond(dns.message.make_query(domain, "MX"))
    assert response is not None
    return response.rcode()


def test_the_same_numbers_make_the_same_script_and_another_seed_another() -> None:
    first, again = hostile_script(2000, 100, seed=5), hostile_script(2000, 100, seed=5)
    assert first == again
    assert first.expected() == again.expected()
    other = hostile_script(2000, 100, seed=6)
    assert other.kinds != first.kinds
    assert other.hung_up_before_body != first.hung_up_before_body


def test_a_thousand_domains_have_the_issues_shares() -> None:
    script = hostile_script(10_000, 1000, seed=1)
    kinds = Counter(script.kinds.values())
    for kind, share in SHARES:
        assert kinds[kind] == round(1000 * share), kind
    assert kinds[Kind.GREYLIST_HINT] + kinds[Kind.GREYLIST_SILENT] == 100
    assert kinds[Kind.DRIP] == 1
    assert sum(kinds.values()) == 1000
    assert len(script.recipients) == len(set(script.recipients)) == 10_000


def test_the_smallest_world_has_every_kind() -> None:
    script = hostile_script(MIN_DOMAINS, MIN_DOMAINS, seed=3)
    assert set(script.kinds.values()) == set(Kind)
    with pytest.raises(ValueError, match="at least"):
        hostile_script(100, MIN_DOMAINS - 1, seed=3)


def test_expectations_follow_the_script() -> None:
    script = hostile_script(5000, 50, seed=1)
    expected = script.expected()
    null_mx = {a for d in script.domains(Kind.NULL_MX) for a in script.recipients_of(d)}
    assert {a for a, e in expected.items() if e is Expect.NULL_MX} == null_mx
    assert {a for a, e in expected.items() if e is Expect.UNKNOWN_USER} == script.unknown
    assert {a for a, e in expected.items() if e is Expect.AMBIGUOUS} == (script.hung_up_after_body)
    assert script.hung_up_before_body.isdisjoint(script.hung_up_after_body)
    plain = set(script.domains(Kind.PLAIN))
    hung_up = script.hung_up_before_body | script.hung_up_after_body
    assert hung_up and all(a.rpartition("@")[2] in plain for a in hung_up)
    unknown_domains = {a.rpartition("@")[2] for a in script.unknown}
    assert unknown_domains == set(script.domains(Kind.UNKNOWN_USERS))
    assert sum(script.counts().values()) == 5000


def test_the_world_plays_the_script() -> None:
    pace = Pace(greeting_421_times=2, servfail_times=3, drip_interval=0.01)
    script = hostile_script(400, 40, seed=9, pace=pace)
    world = hostile_world(script)
    first = {kind: script.domains(kind)[0] for kind in Kind}
    assert all(script.domains(kind) for kind in Kind)

    assert f"mx.{first[Kind.NULL_MX]}" not in world.hosts
    tarpit = first[Kind.TARPIT]
    assert behaviour(world, f"mx-tarpit.{tarpit}").hostile[0].act is Act.SILENCE
    assert behaviour(world, f"mx.{tarpit}") == Behaviour(
        hostname=f"mx.{tarpit}", idle_timeout=pace.idle_timeout
    )
    busy = behaviour(world, f"mx.{first[Kind.GREETING_421]}").faults[0]
    assert (busy.stage, busy.code, busy.times) == (Stage.GREETING, 421, 2)
    hinted = behaviour(world, f"mx.{first[Kind.GREYLIST_HINT]}").greylist
    silent = behaviour(world, f"mx.{first[Kind.GREYLIST_SILENT]}").greylist
    assert hinted is not None and hinted.hint and silent is not None and not silent.hint
    unknown = first[Kind.UNKNOWN_USERS]
    rejects = behaviour(world, f"mx.{unknown}").faults[0]
    assert all(rejects.matches(a) == (a in script.unknown) for a in script.recipients_of(unknown))
    dripping = behaviour(world, f"mx.{first[Kind.DRIP]}")
    assert {rule.act for rule in dripping.hostile} == {Act.DRIP}
    assert dripping.drip_interval == 0.01
    hang_ups = [
        rule
        for domain in script.domains(Kind.PLAIN)
        for rule in behaviour(world, f"mx.{domain}").hang_ups
    ]
    assert set().union(*(r.recipients for r in hang_ups if r.stage is Stage.DATA)) == (
        script.hung_up_before_body
    )
    assert all(isinstance(rule, HangUp) for rule in hang_ups)

    servfail = first[Kind.SERVFAIL]
    assert [mx_rcode(world, servfail) for _ in range(4)] == [dns.rcode.SERVFAIL] * 3 + [
        dns.rcode.NOERROR
    ]


def test_a_world_takes_more_hosts_than_one_slash_24() -> None:
    addresses = [host_address(n) for n in range(1200)]
    assert addresses[0] == "127.0.0.2"
    assert addresses[252] == "127.0.0.254"
    assert addresses[253] == "127.0.1.1"
    assert len(set(addresses)) == 1200
    for text in addresses:
        address = ipaddress.ip_address(text)
        assert address.is_loopback
        assert text.rpartition(".")[2] not in ("0", "255")
    with pytest.raises(ValueError):
        host_address(-1)


async def test_a_world_of_300_hosts_serves_each_on_its_own_address() -> None:
    world = LabWorld()
    for n in range(300):
        world.host(f"mx{n}.many.test")
        world.domain(f"d{n}.many.test", f"mx{n}.many.test")
    async with world:
        last = world.hosts["mx299.many.test"]
        assert last.address == host_address(299) == "127.0.1.47"
        async with await RawClient.connect((last.address, world.port)) as client:
            greeting = await client.reply()
            assert greeting.first.startswith("220 mx299.many.test")
        assert world.server("mx299.many.test").stats.connections == 1


def test_a_script_is_a_value() -> None:
    script = hostile_script(100, 20, seed=1)
    assert isinstance(script, HostileScript)
    assert script.recipients_of("d0.test") == [f"u{i}@d0.test" for i in range(0, 100, 20)]
