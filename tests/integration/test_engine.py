"""The engine against the lab world: real DNS queries, real SMTP servers on 127.0.0.x, a
real campaign file. Retry delays are seconds instead of minutes; nothing else is faked."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from core import engine as engine_module
from core.connection import Timeouts
from core.dns import MXHost, parse_nameserver
from core.engine import Engine, EngineConfig, Job
from core.events import (
    PER_RECIPIENT,
    CampaignLog,
    Counters,
    DestinationPaused,
    Event,
    EventBus,
    PhaseChanged,
    RecipientFinal,
    RecipientWaiting,
    SenderProblemReported,
)
from core.lab import Act, Behaviour, Fault, Hostile, Stage, TLSMode, unknown_users
from core.lab.world import LabWorld, sandbox_world
from core.relay import Relay, RelayConfig
from core.retry import RetryPolicy
from core.smtp import Body, TLSPolicy, Transaction
from core.store import CampaignStore, NewRecipient, Status, StoreError
from tests.integration.support import slow_world

E = TypeVar("E")
SENDER = "news@sender.test"
MESSAGE = (
    b"From: News <news@sender.test>\r\nSubject: Hello {{name|friend}}\r\n\r\n"
    b"Dear {{name|friend}},\r\n.a dotted line\r\nBye.\r\n"
)
SHORT = Timeouts(
    connect=2.0,
    greeting=1.0,
    command=2.0,
    data=2.0,
    body_block=2.0,
    end_of_data=5.0,
    tls_handshake=2.0,
    quit=1.0,
)


def config(world: LabWorld, **retry: float) -> EngineConfig:
    policy = RetryPolicy(
        greylist_first=retry.pop("greylist", 1.0),
        greylist_jitter=0.2,
        hint_min=0.5,
        hint_max=10.0,
        backoff_first=retry.pop("backoff", 0.5),
        backoff_max=2.0,
        lifetime=retry.pop("lifetime", 120.0),
    )
    assert not retry
    return EngineConfig(
        helo="client.test",
        port=world.port,
        nameservers=(parse_nameserver(world.nameserver),),
        timeouts=SHORT,
        retry=policy,
        dns_timeout=1.0,
        transactions_per_connection=10,
    )


def campaign(tmp_path: Path, addresses: list[str]) -> CampaignStore:
    store = CampaignStore.create(
        tmp_path / "campaign.mxm", sender=SENDER, message=MESSAGE, settings={}
    )
    store.add_recipients(
        NewRecipient(address, address.rpartition("@")[2], {"name": address.split("@")[0]})
        for address in addresses
    )
    return store


class Recorder:
    """Every event the engine published, with the wall time it arrived."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[tuple[float, Event]] = []
        bus.subscribe(self.take)

    def take(self, batch: list[Event]) -> None:
        now = time.time()
        self.events.extend((now, event) for event in batch)

    def of(self, kind: type[E]) -> Iterator[tuple[float, E]]:
        return ((at, event) for at, event in self.events if isinstance(event, kind))


async def run(
    world: LabWorld, store: CampaignStore, cfg: EngineConfig, seed: int = 7
) -> tuple[dict[Status, int], Recorder]:
    bus = EventBus(interval=0.05)
    recorder = Recorder(bus)
    engine = Engine(store, cfg, bus, rng=random.Random(seed))
    summary = await asyncio.wait_for(engine.run(), 60)
    return summary.counts, recorder


def rows(store: CampaignStore) -> dict[str, object]:
    return {row.email: row for row in store.report_rows()}


async def test_greylisting_delays_no_one_else(tmp_path: Path) -> None:
    plain = [f"p{n}@plain.test" for n in range(30)]
    grey = [f"g{n}@grey.test" for n in range(5)]
    async with sandbox_world(greylist_seconds=2) as world:
        store = campaign(tmp_path, grey + plain)  # the greylisted ones come first
        counts, recorder = await run(world, store, config(world, greylist=2.5))
        delivered = Counter(world.delivered_to())
    assert counts == {Status.DELIVERED: 35}
    assert all(delivered[address] == 1 for address in grey + plain)
    first_retry_due = min(
        event.next_attempt_at
        for _, event in recorder.of(RecipientWaiting)
        if event.reason == "greylisted"
    )
    plain_done = max(
        at
        for at, event in recorder.of(RecipientFinal)
        if store.get(event.recipient_id).domain == "plain.test"
    )
    assert plain_done < first_retry_due
    store.close()


async def test_failover_past_a_refusing_host_and_a_silent_tarpit(tmp_path: Path) -> None:
    addresses = ["a@failover.test", "b@failover.test", "c@tarpit.test", "d@tarpit.test"]
    async with sandbox_world() as world:
        store = campaign(tmp_path, addresses)
        counts, _ = await run(world, store, config(world))
        failover_got = world.server("mx2.failover.test").messages
        tarpit_got = world.server("mx2.tarpit.test").messages
    assert counts == {Status.DELIVERED: 4}
    assert len(failover_got) == 2 and len(tarpit_got) == 2
    report = rows(store)
    assert str(report["a@failover.test"].mx).startswith("mx2.failover.test")  # type: ignore[attr-defined]
    assert str(report["c@tarpit.test"].mx).startswith("mx2.tarpit.test")  # type: ignore[attr-defined]
    store.close()


async def test_null_mx_and_nxdomain_bounce_without_a_connection(tmp_path: Path) -> None:
    async with sandbox_world() as world:
        store = campaign(tmp_path, ["x@nullmx.test", "y@nowhere.test", "z@plain.test"])
        counts, _ = await run(world, store, config(world))
        connections = sum(
            host.server.stats.connections for host in world.hosts.values() if host.server
        )
    assert counts == {Status.BOUNCED: 2, Status.DELIVERED: 1}
    assert connections == 1
    report = rows(store)
    assert "null MX" in str(report["x@nullmx.test"].response)  # type: ignore[attr-defined]
    assert "does not exist" in str(report["y@nowhere.test"].response)  # type: ignore[attr-defined]
    store.close()


async def test_servfail_is_retried_and_heals(tmp_path: Path) -> None:
    async with sandbox_world() as world:
        world.zone.servfail("plain.test", times=1, rdtype="MX")
        store = campaign(tmp_path, ["a@plain.test"])
        counts, recorder = await run(world, store, config(world, backoff=0.3))
    assert counts == {Status.DELIVERED: 1}
    waits = [event for _, event in recorder.of(RecipientWaiting)]
    # The resolver remembers a failure for a few seconds, so several quick retries may
    # meet it before the healed answer is asked for.
    assert waits and {w.reason for w in waits} == {"deferred"}
    assert store.get(1).attempts == len(waits) + 1
    store.close()


async def test_implicit_mx_uses_the_domains_own_address(tmp_path: Path) -> None:
    world = LabWorld().host("implicit.test")  # an A record, no MX
    async with world:
        store = campaign(tmp_path, ["a@implicit.test"])
        counts, _ = await run(world, store, config(world))
        got = world.server("implicit.test").messages
    assert counts == {Status.DELIVERED: 1}
    assert [m.recipients for m in got] == [("a@implicit.test",)]
    store.close()


async def test_equal_preference_mx_hosts_are_both_used(tmp_path: Path) -> None:
    addresses = [f"u{n}@equal.test" for n in range(60)]
    async with sandbox_world() as world:
        store = campaign(tmp_path, addresses)
        counts, _ = await run(world, store, config(world))
        first = len(world.server("mx1.equal.test").messages)
        second = len(world.server("mx2.equal.test").messages)
    assert counts == {Status.DELIVERED: 60}
    assert first > 0 and second > 0 and first + second == 60
    store.close()


async def test_421_pauses_the_destination_then_it_resumes(tmp_path: Path) -> None:
    closing = Fault(Stage.GREETING, 421, "4.7.0 Too many connections, slow down", times=1)
    world = LabWorld().host("mx.busy.test", Behaviour(hostname="mx.busy.test", faults=(closing,)))
    world.domain("busy.test", "mx.busy.test")
    async with world:
        store = campaign(tmp_path, [f"u{n}@busy.test" for n in range(3)])
        counts, recorder = await run(world, store, config(world, backoff=0.5))
    assert counts == {Status.DELIVERED: 3}
    paused = [e for _, e in recorder.of(DestinationPaused)]
    assert len(paused) == 1
    reasons = {event.reason for _, event in recorder.of(RecipientWaiting)}
    assert reasons == {"destination paused"}
    store.close()


async def test_lifetime_expiry_keeps_the_last_reply(tmp_path: Path) -> None:
    async with sandbox_world(greylist_seconds=3600) as world:
        store = campaign(tmp_path, ["a@grey.test"])
        counts, _ = await run(world, store, config(world, greylist=0.3, lifetime=1.0))
    assert counts == {Status.EXPIRED: 1}
    row = rows(store)["a@grey.test"]
    assert row.code == "451" and "Greylisted" in str(row.response)  # type: ignore[attr-defined]
    store.close()


async def test_recipient_and_permanent_failures_bounce(tmp_path: Path) -> None:
    async with sandbox_world() as world:
        store = campaign(tmp_path, ["nobody@bounce.test", "somebody@bounce.test"])
        counts, _ = await run(world, store, config(world))
    assert counts == {Status.BOUNCED: 1, Status.DELIVERED: 1}
    row = rows(store)["nobody@bounce.test"]
    assert (row.code, row.enhanced_code, row.fault) == ("550", "5.1.1", "recipient")  # type: ignore[attr-defined]
    bounced = next(n for n in (1, 2) if store.get(n).email == "nobody@bounce.test")
    [attempt] = store.attempts(bounced)
    assert "C: RCPT TO:<nobody@bounce.test>" in attempt.transcript
    assert "S: 550 5.1.1" in attempt.transcript
    assert "Dear" not in attempt.transcript  # the body is never kept
    store.close()


@pytest.mark.parametrize("seed", [1])
async def test_the_message_is_personalised_and_identical_on_retry(
    tmp_path: Path, seed: int
) -> None:
    async with sandbox_world(greylist_seconds=1) as world:
        store = campaign(tmp_path, ["ada@grey.test"])
        counts, _ = await run(world, store, config(world, greylist=1.2), seed)
        [message] = world.server("mx.grey.test").messages
    assert counts == {Status.DELIVERED: 1}
    assert b"Subject: Hello ada\r\n" in message.data
    assert b"\r\n.a dotted line\r\n" in message.data
    state = store.get(1)
    assert state.message_id.encode() in message.data
    assert state.attempts == 2
    store.close()


async def test_a_sender_fault_pauses_the_provider_and_bounces_no_one(tmp_path: Path) -> None:
    blocked = Fault(
        Stage.RCPT,
        550,
        "5.7.1 Service unavailable, Client host [127.0.0.1] blocked using Spamhaus",
        times=2,
    )
    world = LabWorld().host(
        "mx.strict.test", Behaviour(hostname="mx.strict.test", faults=(blocked,))
    )
    world.domain("strict.test", "mx.strict.test")
    async with world:
        store = campaign(tmp_path, ["a@strict.test", "b@strict.test"])
        counts, recorder = await run(world, store, config(world, backoff=0.5))
    assert counts == {Status.DELIVERED: 2}  # once the sender problem is gone: no bounce
    [problem] = [event for _, event in recorder.of(SenderProblemReported)]
    assert problem.kind == "blocklist" and "Spamhaus" in problem.reply
    assert problem.provider == "strict.test"
    reasons = {event.reason for _, event in recorder.of(RecipientWaiting)}
    assert "sender problem" in reasons
    store.close()


async def test_pacing_spaces_the_messages_of_a_provider(tmp_path: Path) -> None:
    async with sandbox_world() as world:
        store = campaign(tmp_path, [f"u{n}@plain.test" for n in range(4)])
        paced = dataclasses.replace(config(world), rate=120.0)  # one every 0.5 s
        started = time.monotonic()
        counts, _ = await run(world, store, paced)
        elapsed = time.monotonic() - started
        connections = world.server("mx.plain.test").stats.connections
    assert counts == {Status.DELIVERED: 4}
    assert elapsed >= 1.5  # three gaps of 0.5 s between four messages
    assert connections <= 4  # a paced provider gets one connection at a time, per slot
    store.close()


async def test_pause_resume_and_stop(tmp_path: Path) -> None:
    world = slow_world()
    async with world:
        server = world.server("mx.slow.test")
        store = campaign(tmp_path, [f"u{n}@slow.test" for n in range(40)])
        engine = Engine(store, config(world), EventBus(interval=0.05), rng=random.Random(3))
        running = asyncio.ensure_future(engine.run())
        await server.wait_for(lambda: server.stats.messages >= 5, 20)
        engine.pause()
        await server.wait_until_idle(20)  # open connections finish, none are opened
        paused_at = server.stats.messages
        assert paused_at < 40
        engine.resume()
        await server.wait_for(lambda: server.stats.messages >= paused_at + 5, 20)
        engine.stop()
        summary = await asyncio.wait_for(running, 30)
        stopped_at = server.stats.messages
    assert summary.stopped
    assert stopped_at < 40
    assert summary.counts[Status.DELIVERED] == stopped_at
    assert summary.counts[Status.QUEUED] == 40 - stopped_at
    store.close()


async def test_a_server_that_cannot_rset_loses_no_one(tmp_path: Path) -> None:
    behaviour = Behaviour(
        hostname="mx.norset.test",
        faults=(
            unknown_users("bad@norset.test"),
            Fault(Stage.RSET, 502, "5.5.2 RSET not implemented"),
        ),
    )
    world = LabWorld().host("mx.norset.test", behaviour)
    world.domain("norset.test", "mx.norset.test")
    addresses = [f"u{n}@norset.test" for n in range(3)] + ["bad@norset.test"]
    addresses += [f"v{n}@norset.test" for n in range(3)]
    async with world:
        store = campaign(tmp_path, addresses)
        counts, _ = await run(world, store, config(world))
        received = Counter(world.delivered_to())
    assert counts == {Status.DELIVERED: 6, Status.BOUNCED: 1}
    assert set(received.values()) == {1} and len(received) == 6
    store.close()


async def test_a_provider_pause_strands_no_other_destination(tmp_path: Path) -> None:
    blocked = Fault(Stage.RCPT, 554, "5.7.1 Client host blocked using zen.spamhaus.org")
    world = LabWorld()
    world.host("mx1.p.test", Behaviour(hostname="mx1.p.test", faults=(blocked,)))
    world.host("mx2.p.test")
    world.domain("a.test", "mx1.p.test").domain("b.test", "mx2.p.test")
    async with world:
        store = campaign(tmp_path, ["x@a.test"] + [f"y{n}@b.test" for n in range(6)])
        cfg = dataclasses.replace(config(world, backoff=0.5, lifetime=0.2), per_destination=1)
        counts, _ = await run(world, store, cfg)
    assert counts == {Status.EXPIRED: 1, Status.DELIVERED: 6}
    store.close()


async def test_stop_before_run_ends_at_once(tmp_path: Path) -> None:
    async with sandbox_world() as world:
        store = campaign(tmp_path, ["a@plain.test"])
        engine = Engine(store, config(world), EventBus())
        engine.stop()
        summary = await asyncio.wait_for(engine.run(), 5)
        sent = len(world.messages())
    assert summary.stopped and summary.counts == {Status.QUEUED: 1} and sent == 0
    store.close()


async def test_when_progress_cannot_be_saved_sending_stops_and_nothing_goes_unrecorded(
    tmp_path: Path,
) -> None:
    world = slow_world()
    addresses = [f"u{n}@slow.test" for n in range(40)]
    async with world:
        server = world.server("mx.slow.test")
        store = campaign(tmp_path, addresses)
        engine = Engine(store, config(world), EventBus(), rng=random.Random(2))
        running = asyncio.ensure_future(engine.run())
        await server.wait_for(lambda: server.stats.messages >= 8, 20)
        # The file turns read-only under the running engine, as a full disk would make it.
        connection = store._connection
        assert connection is not None
        connection.execute("PRAGMA query_only = ON")
        with pytest.raises(StoreError):
            await asyncio.wait_for(running, 30)
        received = set(world.delivered_to())
    assert 8 <= len(received) < len(addresses)
    store.close()
    reopened, recovery = CampaignStore.open(tmp_path / "campaign.mxm")
    with reopened:
        by_email = {reopened.get(n).email: reopened.get(n) for n in range(1, 41)}
    for address in received:  # everything that went out is on record
        assert by_email[address].status in (Status.DELIVERED, Status.AMBIGUOUS)
    unsent = [a for a in addresses if a not in received]
    assert all(by_email[a].status is Status.QUEUED for a in unsent)
    assert recovery.ambiguous == sum(
        state.status is Status.AMBIGUOUS for state in by_email.values()
    )


async def test_a_mark_made_for_one_attempt_never_lets_a_later_marker_out_unrecorded(
    tmp_path: Path,
) -> None:
    async with sandbox_world() as world:
        store = campaign(tmp_path, ["a@plain.test"])
        engine = Engine(store, config(world), EventBus())
        job = Job.from_state(store.get(1))
        job.attempts = 1  # counted as take() counts it
        txn = Transaction(SENDER, ("a@plain.test",), Body.from_bytes(MESSAGE), tag=job)
        resumed: list[str] = []
        assert engine._on_end_of_data(txn, lambda: resumed.append("first")) is False
        await asyncio.sleep(0)  # the loop turn ends: one commit for every marker asked
        assert resumed == ["first"]
        assert [(m.id, m.attempt) for m in store.journaled()] == [(1, 1)]
        engine.forget_mark(job)  # that connection died before its marker went out
        # A later attempt must be recorded again before its marker may go out.
        assert engine._on_end_of_data(txn, lambda: resumed.append("second")) is False
        await asyncio.sleep(0)
        assert resumed == ["first", "second"]
        assert engine._on_end_of_data(txn, lambda: None) is True
    store.close()


async def test_a_broken_tls_handshake_falls_back_to_plaintext_and_is_remembered(
    tmp_path: Path,
) -> None:
    broken = Behaviour(hostname="mx.oldtls.test", tls=TLSMode.BROKEN)
    world = LabWorld().host("mx.oldtls.test", broken).domain("oldtls.test", "mx.oldtls.test")
    async with world:
        store = campaign(tmp_path, [f"u{n}@oldtls.test" for n in range(12)])
        counts, _ = await run(world, store, dataclasses.replace(config(world), tls=TLSPolicy.MAY))
        server = world.server("mx.oldtls.test")
        starttls_tries = sum("STARTTLS" in record.commands for record in server.connections)
        messages = server.messages
    assert counts == {Status.DELIVERED: 12}
    assert not any(message.tls for message in messages)
    # Remembered: only the first connections, opened together, try; later ones do not.
    assert 1 <= starttls_tries <= 2
    assert server.stats.connections > starttls_tries
    store.close()


async def test_counters_show_each_providers_budget(tmp_path: Path) -> None:
    async with sandbox_world() as world:
        store = campaign(tmp_path, ["a@plain.test", "b@equal.test", "c@equal.test"])
        counts, recorder = await run(world, store, config(world))
    assert counts == {Status.DELIVERED: 3}
    seen = {name for _, event in recorder.of(Counters) for name in event.providers}
    assert seen == {"plain.test", "equal.test"}
    [*_, (_, last)] = recorder.of(Counters)
    assert all(load.connections == 0 and load.limit == 5 for load in last.providers.values())
    store.close()


async def test_a_domain_that_moves_its_mx_is_followed_on_retry(tmp_path: Path) -> None:
    busy = Fault(Stage.RCPT, 451, "4.3.0 Try again later")
    world = LabWorld()
    world.host("mx1.move.test", Behaviour(hostname="mx1.move.test", faults=(busy,)))
    world.host("mx2.move.test")
    world.zone.add_mx("move.test", [(10, "mx1.move.test")], ttl=1)
    async with world:
        store = campaign(tmp_path, ["a@move.test"])
        bus = EventBus(interval=0.05)

        def move(batch: list[Event]) -> None:  # after the first deferral, the MX moves
            if any(isinstance(event, RecipientWaiting) for event in batch):
                world.zone.remove("move.test", "MX").add_mx("move.test", [(10, "mx2.move.test")])

        bus.subscribe(move)
        cfg = dataclasses.replace(config(world, backoff=1.5), route_refresh=0.5)
        summary = await asyncio.wait_for(Engine(store, cfg, bus).run(), 30)
        moved = world.server("mx2.move.test").messages
    assert summary.counts == {Status.DELIVERED: 1}
    assert [m.recipients for m in moved] == [("a@move.test",)]
    store.close()


class PublishedEvents(EventBus):
    """Every event as published, before the bus coalesces a recipient's phases."""

    def __init__(self, *, per_recipient: bool = True) -> None:
        super().__init__(interval=0.05)
        self.published: list[Event] = []
        # Someone must listen: with no subscriber the engine makes no per-recipient events.
        self.subscribe(lambda batch: None, per_recipient=per_recipient)

    def publish(self, event: Event) -> None:
        self.published.append(event)
        super().publish(event)


def smtp_steps(bus: PublishedEvents, recipient_id: int) -> list[str]:
    steps = ("mail", "rcpt", "data", "end-of-data")
    return [
        e.phase
        for e in bus.published
        if isinstance(e, PhaseChanged) and e.recipient_id == recipient_id and e.phase in steps
    ]


@pytest.mark.parametrize("smtp_phases", [True, False])
async def test_smtp_phases_are_published_per_recipient_only_when_asked(
    tmp_path: Path, smtp_phases: bool
) -> None:
    addresses = [f"p{n}@plain.test" for n in range(6)]
    async with sandbox_world() as world:
        store = campaign(tmp_path, addresses)
        bus = PublishedEvents()
        cfg = dataclasses.replace(config(world), smtp_phases=smtp_phases)
        summary = await asyncio.wait_for(Engine(store, cfg, bus).run(), 60)
        store.close()
    assert summary.counts[Status.DELIVERED] == 6
    for recipient_id in range(1, 7):
        # A step is shown when the conversation waits on it; a fast server's pipelined
        # replies leave only the end of data, announced when its marker goes out.
        expected = ["end-of-data"] if smtp_phases else []
        assert smtp_steps(bus, recipient_id)[-1:] == expected


async def test_no_per_recipient_events_are_made_when_no_subscriber_wants_them(
    tmp_path: Path,
) -> None:
    """A progress bar reads only the counters: the engine then skips the several event
    objects a message it would make for a window (measured: ~10 % of its CPU)."""
    addresses = [f"q{n}@plain.test" for n in range(6)]
    async with sandbox_world() as world:
        store = campaign(tmp_path, addresses)
        bus = PublishedEvents(per_recipient=False)
        summary = await asyncio.wait_for(Engine(store, config(world), bus).run(), 60)
        store.close()
    assert summary.counts[Status.DELIVERED] == 6
    assert not [e for e in bus.published if isinstance(e, PER_RECIPIENT)]
    final = [e for e in bus.published if isinstance(e, Counters)][-1]
    assert final.counts == {Status.DELIVERED: 6}


async def test_a_server_slow_to_answer_rcpt_shows_its_recipients_at_rcpt(
    tmp_path: Path,
) -> None:
    behaviour = Behaviour(
        hostname="mx.slow.test", hostile=(Hostile(Stage.RCPT, Act.DRIP),), drip_interval=0.002
    )
    world = LabWorld().host("mx.slow.test", behaviour).domain("slow.test", "mx.slow.test")
    async with world:
        store = campaign(tmp_path, [f"s{n}@slow.test" for n in range(3)])
        bus = PublishedEvents()
        cfg = dataclasses.replace(config(world), smtp_phases=True)
        summary = await asyncio.wait_for(Engine(store, cfg, bus).run(), 60)
        store.close()
    assert summary.counts[Status.DELIVERED] == 3
    for recipient_id in range(1, 4):
        steps = smtp_steps(bus, recipient_id)
        assert "rcpt" in steps and steps[-1] == "end-of-data", steps
        assert steps.index("rcpt") < steps.index("end-of-data")


async def test_the_domains_routed_together_share_one_lookup_of_the_relays_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relay mode: ten domains routed at once wait for one lookup of the relays' names,
    and a name that does not resolve is said once, not once per domain."""
    lookups: list[RelayConfig] = []

    async def unresolved(relay: RelayConfig) -> tuple[tuple[MXHost, ...], list[str]]:
        lookups.append(relay)
        await asyncio.sleep(0.05)  # the other domains are routed meanwhile
        return (), ["relay nowhere.test:587: no such name"]

    monkeypatch.setattr(engine_module, "relay_hosts", unresolved)
    store = campaign(tmp_path, [f"u@d{n}.test" for n in range(10)])
    cfg = EngineConfig(helo="client.test", relay=RelayConfig((Relay("nowhere.test", 587),)))
    bus = EventBus(interval=0.05)
    recorder = Recorder(bus)
    engine = Engine(store, cfg, bus)
    running = asyncio.ensure_future(engine.run())
    await asyncio.sleep(0.5)
    engine.stop()
    summary = await asyncio.wait_for(running, 10)
    said = [e.text for _, e in recorder.of(CampaignLog) if "nowhere.test" in e.text]
    assert len(lookups) == 1 and len(said) == 1, (lookups, said)
    assert summary.counts == {Status.DEFERRED: 10}
    store.close()
