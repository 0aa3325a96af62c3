"""A rehearsal internet for preflight tests: lab DNS (MX, A/AAAA, PTR, TXT: SPF, DKIM,
DMARC, a DNSBL zone) and lab MX servers on loopback. Every name ends in .test; the
checks are pointed at the lab's nameserver, port and blocklist zone, never the internet.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from core.dkim import DKIMSigner
from core.dns import parse_nameserver
from core.lab import Act, Behaviour, Hostile, Stage, TLSMode
from core.lab.world import LabWorld
from core.outgoing import DKIMSettings
from core.preflight import Campaign, Network, Preflight, Report, run_preflight

SENDER = "news@sender.test"
HELO = "mail.sender.test"
SOURCE = "127.0.0.1"
BLOCKLIST = "bl.test"
SELECTOR = "mx1"


def write_key(path: Path) -> Path:
    """An Ed25519 DKIM key file (quick to make; the signer reads it as any other)."""
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    path.chmod(0o600)
    return path


def public_record(key: Path) -> str:
    return DKIMSigner(key, selector=SELECTOR, domain="sender.test").public_txt_record()


def lab_world(key: Path) -> LabWorld:
    """Destinations (each its own provider):

    - good.test: a well-behaved MX offering STARTTLS;
    - plain.test: no STARTTLS;
    - proxied.test: its MX greets with an ISP's proxy name;
    - down.test: its MX refuses connections; tarpit.test: its MX never greets.

    The sender: sender.test with SPF for 127.0.0.1 and ::1, a DKIM key at mx1, DMARC
    p=none; 127.0.0.1 and ::1 have reverse DNS mail.sender.test, which resolves back.
    """
    offer = TLSMode.OFFER
    world = LabWorld()
    world.host("mx.good.test", Behaviour(hostname="mx.good.test", tls=offer))
    world.host("mx.plain.test")
    world.host("mx.proxied.test", Behaviour(hostname="smtp-proxy.isp.test", tls=offer))
    world.host("mx.down.test", listening=False)
    silent = (Hostile(Stage.GREETING, Act.SILENCE),)
    world.host("mx.tarpit.test", Behaviour(hostname="mx.tarpit.test", hostile=silent,
                                           idle_timeout=5.0))
    for name in ("good", "plain", "proxied", "down", "tarpit"):
        world.domain(f"{name}.test", f"mx.{name}.test")
    zone = world.zone
    zone.add_a(HELO, SOURCE).add_aaaa(HELO, "::1")
    zone.add_ptr(SOURCE, HELO).add_ptr("::1", HELO)
    zone.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 ip6:::1 -all")
    zone.add_txt(f"{SELECTOR}._domainkey.sender.test", public_record(key))
    zone.add_txt("_dmarc.sender.test", "v=DMARC1; p=none")
    zone.add_domain(BLOCKLIST)
    return world


def campaign(key: Path, **changes: object) -> Campaign:
    base = Campaign(
        sender=SENDER, helo=HELO, from_domain="sender.test", domains={"good.test": 3},
        dkim=DKIMSettings(str(key), SELECTOR, "sender.test"),
        list_unsubscribe_url="https://sender.test/unsubscribe",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def network(world: LabWorld, **changes: object) -> Network:
    base = Network(
        nameservers=(parse_nameserver(world.nameserver),), port=world.port,
        source_addresses=(SOURCE, "::1"), dnsbl_zones=(BLOCKLIST,), dns_timeout=2.0,
        probe_timeout=3.0, check_timeout=10.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def preflight(world: LabWorld, key: Path, *, net: dict[str, object] | None = None,
                    **changes: object) -> Report:
    return await run_preflight(Preflight(campaign(key, **changes), network(world, **(net or {}))))
