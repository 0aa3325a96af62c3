"""``mxmailer preflight`` in its own process against the lab: the table and exit codes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from core.lab import LabTLS
from core.lab.world import LabWorld
from core.relay import ROUTE, CampaignRoute
from core.store import CampaignStore, NewRecipient
from tests.integration.relay_servers import NO_KEYRING, SubmissionServer
from tests.preflight.support import BLOCKLIST, SELECTOR, SENDER

ROOT = Path(__file__).resolve().parents[2]


async def mxmailer(*args: str | Path, timeout: float = 60,
                   env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli", *map(str, args), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def lab(world: LabWorld) -> list[str]:
    return ["--nameserver", world.nameserver, "--port", str(world.port),
            "--source-address", "127.0.0.1", "--dnsbl", BLOCKLIST]


def recipients(tmp_path: Path, *addresses: str) -> Path:
    path = tmp_path / "list.csv"
    path.write_text("email\n" + "".join(f"{address}\n" for address in addresses))
    return path


async def test_a_good_setup_exits_0_with_a_light_per_check(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    code, out, err = await mxmailer(
        "preflight", "--recipients", recipients(tmp_path, "ada@good.test", "bob@good.test"),
        "--sender", SENDER, "--helo", "mail.sender.test", "--dkim-key", key,
        "--dkim-selector", SELECTOR, "--list-unsubscribe-url", "https://sender.test/u",
        *lab(world),
    )
    assert code == 0, out + err
    assert "[PASS] Outbound port 25" in out and "[PASS] Reverse DNS (IPv4)" in out
    assert "[  ? ] Reverse DNS (IPv6)" in out  # no IPv6 address given: not checked
    assert "[PASS] DKIM key published" in out and "\x1b[" not in out  # no colour in a pipe
    assert out.rstrip().endswith("10 pass, 0 warn, 0 fail, 1 unknown")


async def test_a_failing_check_exits_1_and_says_the_fix(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    world.zone.add_a("1.0.0.127.bl.test", "127.0.0.11")
    code, out, _ = await mxmailer(
        "preflight", "--recipients", recipients(tmp_path, "ada@good.test"),
        "--sender", SENDER, *lab(world),
    )
    assert code == 1
    assert "[FAIL] DNS blocklists" in out and "PBL" in out and "relay mode" in out
    assert "[WARN] DKIM key published" in out  # no key given: a warning, not a failure


async def test_a_campaign_file_is_checked(world: LabWorld, key: Path, tmp_path: Path) -> None:
    state = tmp_path / "campaign.mxm"
    with CampaignStore.create(
        state, sender=SENDER, message=b"From: News <news@sender.test>\nSubject: Hi\n\nHi\n",
        settings={"helo": "mail.sender.test", "dkim_key": str(key), "dkim_selector": SELECTOR,
                  "dkim_domain": "sender.test",
                  "list_unsubscribe_url": "https://sender.test/u"},
    ) as store:
        store.add_recipients([NewRecipient("ada@plain.test", "plain.test", {})])
    code, out, err = await mxmailer("preflight", "--state", state, *lab(world))
    assert code == 0, out + err
    assert "[PASS] DKIM key published" in out and "[PASS] HELO name" in out
    assert "[WARN] STARTTLS at the top destinations" in out and "mx.plain.test" in out


async def test_usage_errors_exit_2() -> None:
    for args in (
        [],
        ["--state", "a.mxm", "--recipients", "b.csv"],
        ["--recipients", "b.csv"],
        ["--state", "missing.mxm"],
        ["--state", "a.mxm", "--nameserver", "ns.example.test"],
        ["--state", "a.mxm", "--source-address", "not-an-ip"],
        ["--state", "a.mxm", "--dkim-selector", "mx1"],
        ["--state", "a.mxm", "--relay-user", "alice"],  # a relay login needs --relay
        ["--state", "a.mxm", "--relay", "relay.test:99999"],
        ["--state", "a.mxm", "--relay", "relay.test", "--relay-cafile", "missing.pem"],
    ):
        code, _, err = await mxmailer("preflight", *args)
        assert code == 2, (args, err)
        assert err.startswith("mxmailer preflight: "), (args, err)


async def test_the_relay_options_check_the_relay_route_without_a_password(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    tls = LabTLS(("relay.lab.test",))
    world.zone.add_a("relay.lab.test", "127.0.0.1")
    # no password anywhere: no keyring entry, no MXMAILER_RELAY_PASSWORD, no terminal
    env = {k: v for k, v in os.environ.items() if k != "MXMAILER_RELAY_PASSWORD"}
    env["PYTHON_KEYRING_BACKEND"] = NO_KEYRING
    async with SubmissionServer("alice", "never-given", tls=tls) as server:
        code, out, err = await mxmailer(
            "preflight", "--recipients", recipients(tmp_path, "ada@good.test"),
            "--sender", SENDER, "--dkim-key", key, "--dkim-selector", SELECTOR,
            "--list-unsubscribe-url", "https://sender.test/u", *lab(world),
            "--relay", f"relay.lab.test:{server.port}", "--relay-user", "alice",
            "--relay-cafile", tls.write_ca(tmp_path / "ca.pem"), env=env,
        )
    assert code == 0, out + err
    assert "[PASS] Relay reachable" in out and "[PASS] Relay TLS and certificate" in out
    assert "[PASS] Relay login offered" in out and "tried at Start" in out
    assert "[PASS] SPF of the sender domain" in out and "relay relay.lab.test" in out
    assert "[N/A ] Outbound port 25" in out and "[N/A ] DNS blocklists" in out
    assert out.rstrip().endswith("8 pass, 0 warn, 0 fail, 0 unknown, 5 n/a")
    assert server.auth_commands == [] and server.logins == []


async def test_a_campaign_file_is_checked_on_the_route_it_remembers(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    """Its next send goes through the relay its file names: so does the check, unless
    --direct (or --relay) says otherwise, as it would for the send."""
    state = tmp_path / "campaign.mxm"
    remembered = CampaignRoute(relays=("relay.lab.test:2587",))
    with CampaignStore.create(
        state, sender=SENDER, message=b"From: News <news@sender.test>\nSubject: Hi\n\nHi\n",
        settings={"helo": "mail.sender.test", ROUTE: remembered.setting()},
    ) as store:
        store.add_recipients([NewRecipient("ada@plain.test", "plain.test", {})])
    _, relayed, _ = await mxmailer("preflight", "--state", state, *lab(world))
    assert "[N/A ] Outbound port 25" in relayed and "relay.lab.test" in relayed
    _, direct, _ = await mxmailer("preflight", "--state", state, "--direct", *lab(world))
    assert "[N/A ]" not in direct and "relay.lab.test" not in direct
