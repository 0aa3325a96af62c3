"""The whole engine against a real MTA: Postfix with postgrey as the MX of a lab domain
(found through the lab's DNS). Greylisted first, delivered on the retry, content intact."""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
from email.message import EmailMessage
from pathlib import Path

from core.connection import Timeouts
from core.engine import Engine, EngineConfig
from core.events import Event, EventBus, RecipientWaiting
from core.lab import LabDNS, LabZone
from core.retry import RetryPolicy
from core.store import CampaignStore, NewRecipient, Status
from tests.integration.mta import PostfixMX, split_prepended

DOMAIN = "interop.test"
MESSAGE = (
    "From: News <news@sender.test>\r\nSubject: Hello {{name}}\r\n\r\n"
    "Grüße, {{name}}.\r\n.a line that starts with a dot\r\n"
).encode()


async def test_greylisted_by_postgrey_then_delivered_intact(tmp_path: Path) -> None:
    zone = LabZone().mx_for(DOMAIN, {f"mx.{DOMAIN}": "127.0.0.1"})
    async with PostfixMX(DOMAIN, greylist_delay=2) as postfix, LabDNS(zone) as dns:
        store = CampaignStore.create(
            tmp_path / "c.mxm", sender="news@sender.test", message=MESSAGE, settings={}
        )
        store.add_recipients(
            NewRecipient(f"{name}@{DOMAIN}", DOMAIN, {"name": name}) for name in ("ada", "bob")
        )
        config = EngineConfig(
            helo="client.test",
            port=postfix.port,
            nameservers=(dns.address,),
            timeouts=Timeouts(greeting=10, command=10, data=10, end_of_data=30, quit=2),
            # postgrey gives no hint: the first retry waits greylist_first, just past 2 s.
            retry=RetryPolicy(greylist_first=2.5, greylist_jitter=0.5, backoff_first=1.0),
        )
        events: list[Event] = []
        bus = EventBus(interval=0.05)
        bus.subscribe(events.extend)
        summary = await asyncio.wait_for(Engine(store, config, bus, rng=random.Random(5)).run(), 60)
        stored = await postfix.wait_for_messages(2)
        states = [store.get(n) for n in (1, 2)]
        store.close()
    assert summary.counts == {Status.DELIVERED: 2}
    greylisted = [e for e in events if isinstance(e, RecipientWaiting)]
    assert sorted(e.recipient_id for e in greylisted) == [1, 2]
    assert {e.reason for e in greylisted} == {"greylisted"}
    assert all(state.attempts == 2 for state in states)
    contents = [split_prepended(message)[1] for message in stored]
    for state in states:
        name = state.email.split("@")[0]
        [content] = [c for c in contents if state.message_id.encode() in c]
        head, _, _ = content.partition(b"\n\n")
        assert f"Subject: Hello {name}".encode() in head
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        # The 8-bit template went out quoted-printable (7-bit safe); decoded, it is intact.
        assert message["Content-Transfer-Encoding"] == "quoted-printable"
        assert message.get_content() == f"Grüße, {name}.\n.a line that starts with a dot\n"
