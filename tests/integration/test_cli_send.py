"""``mxmailer send`` as a user runs it: a subprocess, the lab world, real files."""

from __future__ import annotations

import asyncio
import csv
import signal
import sqlite3
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from core.lab import Act
from core.lab.world import LabWorld, sandbox_world
from tests.integration.support import slow_world

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
SENDER = "news@sender.test"
REPORT_HEADER = [
    "email",
    "status",
    "code",
    "enhanced_code",
    "response",
    "mx",
    "attempts",
    "first_attempt",
    "last_attempt",
]


async def mxmailer(*args: str | Path, timeout: float = 60) -> tuple[int, str, str]:
    process = await spawn_mxmailer(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def lab_args(world: LabWorld, state: Path) -> list[str | Path]:
    return [
        "--nameserver",
        world.nameserver,
        "--port",
        str(world.port),
        "--state",
        state,
        "--timeout",
        "2",
        "--greylist-retry",
        "1",
        "--retry",
        "1",
        "--progress",
        "none",
    ]


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames is not None
        assert reader.fieldnames[: len(REPORT_HEADER)] == REPORT_HEADER
        return list(reader)


def send_args(recipients: Path, message: Path) -> list[str | Path]:
    """``send`` with the inputs every test gives it; options follow."""
    return ["send", "--recipients", recipients, "--message", message, "--sender", SENDER]


def write_message(path: Path) -> Path:
    path.write_bytes(b"From: <news@sender.test>\nSubject: Hi\n\nHello.\n")
    return path


async def spawn_mxmailer(
    *args: str | Path,
    cwd: Path = ROOT,
    stdout: int = asyncio.subprocess.DEVNULL,
    stderr: int = asyncio.subprocess.DEVNULL,
) -> asyncio.subprocess.Process:
    """``mxmailer ARGS`` started, not awaited: for tests that interrupt it."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli", *map(str, args), cwd=cwd, stdout=stdout, stderr=stderr
    )


def write_csv(path: Path, addresses: list[str]) -> Path:
    path.write_text("email,name\n" + "".join(f"{a},{a.split('@')[0]}\n" for a in addresses))
    return path


async def test_send_the_shared_sample_campaign(tmp_path: Path) -> None:
    recipients = SHARED / "recipients" / "simple.csv"
    message = SHARED / "messages" / "welcome.eml"
    report = tmp_path / "report.csv"
    async with sandbox_world(greylist_seconds=1) as world:
        code, _, err = await mxmailer(
            *send_args(recipients, message),
            "--report",
            report,
            *lab_args(world, tmp_path / "campaign.mxm"),
        )
        delivered = Counter(world.delivered_to())
    assert code == 0, err
    rows = read_report(report)
    assert len(rows) == 30
    assert {row["status"] for row in rows} == {"delivered"}
    assert all(delivered[row["email"].lower()] == 1 for row in rows)
    greylisted = [row for row in rows if row["email"].endswith("@grey.test")]
    assert greylisted and all(row["attempts"] == "2" for row in greylisted)
    assert "read 30 rows: 30 to send, 0 invalid" in err


async def test_exit_code_1_when_some_are_not_delivered(tmp_path: Path) -> None:
    recipients = write_csv(
        tmp_path / "r.csv", ["a@plain.test", "nobody@bounce.test", "x@nullmx.test"]
    )
    message = tmp_path / "m.eml"
    message.write_bytes(b"From: <news@sender.test>\nSubject: Hi {{name}}\n\nHello.\n")
    report = tmp_path / "report.csv"
    async with sandbox_world() as world:
        code, _, err = await mxmailer(
            *send_args(recipients, message),
            "--report",
            report,
            *lab_args(world, tmp_path / "campaign.mxm"),
        )
    assert code == 1, err
    statuses = {row["email"]: row["status"] for row in read_report(report)}
    assert statuses == {
        "a@plain.test": "delivered",
        "nobody@bounce.test": "bounced",
        "x@nullmx.test": "bounced",
    }


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"--sender": None}, "--sender"),
        ({"--sender": "news@sender.test\r\nRCPT TO:<x@y.test>"}, "--sender"),
        ({"--sender": "no-domain"}, "--sender"),
        ({"--nameserver": "dns.example"}, "--nameserver"),
        ({"--helo": "has space"}, "--helo"),
        ({"--message": "unknown-field"}, "fields no column provides: city"),
    ],
)
async def test_usage_errors_exit_2_and_send_nothing(
    tmp_path: Path, change: dict[str, str | None], complaint: str
) -> None:
    recipients = write_csv(tmp_path / "r.csv", ["a@plain.test"])
    message = tmp_path / "m.eml"
    body = b"From: <news@sender.test>\nSubject: Hi\n\nHello {{city}}.\n"
    message.write_bytes(body if change.get("--message") else body.replace(b"{{city}}", b""))
    options: dict[str, str | None] = {
        "--recipients": str(recipients),
        "--message": str(message),
        "--sender": "news@sender.test",
        "--helo": "client.test",
    }
    options |= {key: value for key, value in change.items() if key != "--message"}
    args: list[str | Path] = []
    for key, value in options.items():
        if value is not None:
            args += [key, value]
    async with sandbox_world() as world:
        lab = lab_args(world, tmp_path / "campaign.mxm")
        if "--nameserver" in change:
            lab[1] = str(change["--nameserver"])
        code, _, err = await mxmailer("send", *args, *lab)
        sent = len(world.messages())
    assert code == 2
    assert complaint in err
    assert sent == 0


async def test_killed_mid_run_and_resumed_delivers_each_recipient_once(tmp_path: Path) -> None:
    # Every end-of-data reply drips out slowly, so a kill lands mid-run and sometimes
    # between the end of data and its reply: the ambiguous window.
    world = slow_world()
    addresses = [f"u{n}@slow.test" for n in range(150)]
    recipients = write_csv(tmp_path / "r.csv", addresses)
    message = tmp_path / "m.eml"
    message.write_bytes(b"From: <news@sender.test>\nSubject: Hi {{name}}\n\nHello.\n")
    state = tmp_path / "campaign.mxm"
    report = tmp_path / "report.csv"
    send = [
        *send_args(recipients, message),
        "--concurrency",
        "3",
        "--report",
        report,
    ]
    async with world:
        server = world.server("mx.slow.test")
        for kill_after in (20, 60, 100):
            process = await spawn_mxmailer(
                *send,
                *lab_args(world, state),
                cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await server.wait_for(lambda n=kill_after: server.stats.messages >= n, 30)
            process.kill()
            await process.wait()
            with closing(sqlite3.connect(state)) as db:
                assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        code, _, err = await mxmailer(*send, *lab_args(world, state))
        received = Counter(world.delivered_to())
    assert code in (0, 1), err
    rows = {row["email"]: row for row in read_report(report)}
    assert set(rows) == set(addresses)
    duplicates = [address for address, n in received.items() if n > 1]
    assert duplicates == []
    for address in addresses:
        row = rows[address]
        if row["status"] == "delivered":
            assert received[address] == 1
        else:  # possibly delivered when the kill came: reported so, never sent twice
            assert row["status"] == "deferred" and "possibly delivered" in row["detail"]
            assert received[address] <= 1
    ambiguous = sum(row["status"] != "delivered" for row in rows.values())
    print(f"{ambiguous} of {len(addresses)} reported possibly delivered after 3 kills")


async def test_ctrl_c_saves_the_state_exits_130_and_the_same_command_resumes(
    tmp_path: Path,
) -> None:
    world = slow_world()
    addresses = [f"u{n}@slow.test" for n in range(60)]
    recipients = write_csv(tmp_path / "r.csv", addresses)
    message = write_message(tmp_path / "m.eml")
    state = tmp_path / "campaign.mxm"
    send = [
        *send_args(recipients, message),
        "--concurrency",
        "2",
    ]
    async with world:
        server = world.server("mx.slow.test")
        process = await spawn_mxmailer(
            *send,
            *lab_args(world, state),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        await server.wait_for(lambda: server.stats.messages >= 10, 30)
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 130, err.decode()
        assert "state saved" in err.decode()
        interrupted_at = server.stats.messages
        assert interrupted_at < len(addresses)
        code, _, err2 = await mxmailer(*send, *lab_args(world, state))
        received = Counter(world.delivered_to())
    assert code == 0, err2
    assert sorted(received) == sorted(addresses)
    assert set(received.values()) == {1}


async def test_mxmailer_lab_runs_standalone_and_send_uses_it(tmp_path: Path) -> None:
    lab = await spawn_mxmailer(
        "lab",
        "--greylist-seconds",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert lab.stdout is not None
        banner = ""
        while "Ctrl-C" not in banner:
            line = await asyncio.wait_for(lab.stdout.readline(), 20)
            assert line, "mxmailer lab ended before it was ready"
            banner += line.decode()
        command = next(line for line in banner.splitlines() if "mxmailer send" in line)
        words = command.split()
        nameserver = words[words.index("--nameserver") + 1]
        port = words[words.index("--port") + 1]
        recipients = write_csv(tmp_path / "r.csv", ["a@plain.test", "b@failover.test"])
        message = write_message(tmp_path / "m.eml")
        code, _, err = await mxmailer(
            *send_args(recipients, message),
            "--nameserver",
            nameserver,
            "--port",
            port,
            "--state",
            tmp_path / "c.mxm",
            "--timeout",
            "2",
            "--progress",
            "none",
        )
        assert code == 0, err
    finally:
        lab.send_signal(signal.SIGINT)
        await asyncio.wait_for(lab.wait(), 20)
    assert lab.returncode == 0


async def test_a_failed_import_leaves_no_campaign_to_resume(tmp_path: Path) -> None:
    recipients = tmp_path / "r.csv"
    lines = [f"u{n}@plain.test,n{n}\n".encode() for n in range(80000)]
    recipients.write_bytes(b"email,name\n" + b"".join(lines) + b"bad\xff@plain.test,x\n")
    message = write_message(tmp_path / "m.eml")
    state = tmp_path / "campaign.mxm"
    send = [
        *send_args(recipients, message),
    ]
    async with sandbox_world() as world:
        code, _, err = await mxmailer(*send, *lab_args(world, state))
        assert code == 2 and "not UTF-8" in err  # found past the rows already imported
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m.eml", "r.csv"]
        recipients.write_bytes(b"email,name\n" + b"".join(lines[:12]))  # fixed by the user
        code, _, err = await mxmailer(*send, *lab_args(world, state))
        sent = len(world.messages())
    assert code == 0, err
    assert sent == 12


async def test_a_second_ctrl_c_cuts_the_connections_and_still_saves(tmp_path: Path) -> None:
    world = slow_world(Act.SILENCE)
    recipients = write_csv(tmp_path / "r.csv", [f"u{n}@slow.test" for n in range(5)])
    message = write_message(tmp_path / "m.eml")
    report = tmp_path / "report.csv"
    async with world:
        server = world.server("mx.slow.test")
        process = await spawn_mxmailer(
            *send_args(recipients, message),
            "--report",
            str(report),
            "--nameserver",
            world.nameserver,
            "--port",
            str(world.port),
            "--state",
            str(tmp_path / "c.mxm"),
            "--progress",
            "none",
            stderr=asyncio.subprocess.PIPE,
        )
        await server.wait_for(lambda: server.stats.unanswered >= 1, 20)
        process.send_signal(signal.SIGINT)  # waits for the end-of-data reply: never comes
        assert process.stderr is not None
        said = b""
        while b"stopping" not in said:  # the first Ctrl-C was taken
            said = await asyncio.wait_for(process.stderr.readline(), 10)
            assert said, "mxmailer ended before saying it was stopping"
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 130, err.decode()
    statuses = {row["email"]: (row["status"], row["detail"]) for row in read_report(report)}
    possibly = [email for email, (_, detail) in statuses.items() if "possibly" in detail]
    assert possibly  # the one whose end of data was out: reported, not resent later


async def test_resuming_with_a_suppression_list_suppresses_who_is_not_yet_delivered(
    tmp_path: Path,
) -> None:
    """An unsubscribe that arrives mid-campaign: given on resume, it is honoured."""
    from core.store import CampaignStore, NewRecipient

    state = tmp_path / "campaign.mxm"
    message = write_message(tmp_path / "m.eml").read_bytes()
    with CampaignStore.create(
        state, sender=SENDER, message=message, settings={"helo": "sender.test"}
    ) as store:  # as an interrupted run leaves it: nobody delivered yet
        store.add_recipients(
            NewRecipient(address, address.partition("@")[2], {})
            for address in ("ann@plain.test", "Bob@plain.test", "carol@grey.test")
        )
    suppression = tmp_path / "unsubscribed.txt"
    suppression.write_text("bob@PLAIN.test\n@grey.test\n")
    report = tmp_path / "report.csv"
    async with sandbox_world(greylist_seconds=1) as world:
        code, _, err = await mxmailer(
            "send", "--suppression", suppression, "--report", report, *lab_args(world, state)
        )
        received = sorted(r for m in world.messages() for r in m.recipients)
    assert code == 0, err
    assert "2 recipient(s) not yet delivered are on the suppression list" in err
    statuses = {row["email"]: row["status"] for row in read_report(report)}
    assert statuses == {
        "ann@plain.test": "delivered",
        "Bob@plain.test": "suppressed",
        "carol@grey.test": "suppressed",
    }
    assert received == ["ann@plain.test"]


async def test_a_nameserver_that_never_answers_stops_before_anything_is_imported(
    tmp_path: Path,
) -> None:
    import socket

    recipients = tmp_path / "r.csv"
    recipients.write_text("email\nann@plain.test\n")
    message = write_message(tmp_path / "m.eml")
    state = tmp_path / "campaign.mxm"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never replies
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        code, _, err = await mxmailer(
            *send_args(recipients, message),
            "--nameserver", f"127.0.0.1:{port}", "--port", "2525", "--timeout", "1",
            "--state", state, "--progress", "none",
        )
    assert code == 2, err
    assert f"127.0.0.1:{port} did not answer a DNS query within 1 s" in err
    assert not state.exists()
