"""``mxmailer send --relay`` as a user runs it: a subprocess, submission relays on loopback.

Every recipient goes to the relays given, in order, over verified TLS, logging in when
``--relay-user`` is given; no MX lookups. The relays are aiosmtpd servers that require AUTH
(:class:`~tests.integration.relay_servers.SubmissionServer`) and a real Postfix smarthost
(:class:`~tests.integration.relay_servers.PostfixRelay`). Every password a test uses is
searched for, raw and in its AUTH PLAIN and AUTH LOGIN base64 forms, in everything the run
leaves behind: its output, its report and every byte of its campaign file.

The campaign file remembers the route (relays, security, CA file, user: never the
password): a relayed campaign interrupted and resumed with ``--state`` alone goes on
through the relays, never directly to the lab world's MX hosts, which stand ready to
show any mail that went around the relay.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.lab import LabTLS
from core.lab.aiosmtpd_server import AiosmtpdServer
from core.lab.world import LabWorld, sandbox_world
from core.relay import ROUTE, CampaignRoute, with_route
from core.store import CampaignStore, NewRecipient
from tests.integration.mta import free_port, require_mta
from tests.integration.relay_servers import (
    LAB_KEYRING,
    LAB_KEYRING_ENV,
    NO_KEYRING,
    PostfixRelay,
    SubmissionServer,
)
from tests.integration.test_cli_send import ROOT, SENDER, read_report, send_args, write_csv

USER = "alice"
PASSWORD = "Tr0ub4dor&3-relay-secret"
PASSWORD_ENV = "MXMAILER_RELAY_PASSWORD"
#: The keyring service of relay passwords, as ``--help`` and docs/RELAY.md name it.
KEYRING_SERVICE = "MX Mailer relay"
ADDRESSES = [f"u{n}@dest.test" for n in range(5)]
#: A merge field per recipient and a line that must be dot-stuffed on the wire.
MESSAGE = (
    b"From: <news@sender.test>\nSubject: Hi {{name}}\n\n"
    b"Hello {{name}}.\n.a line that starts with a dot\nBye.\n"
)
#: Every wait for a child ``mxmailer``: the runs here take a few seconds.
RUN_TIMEOUT = float(os.environ.get("MXMAILER_TEST_RUN_TIMEOUT", "45"))


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    out: str
    err: str
    report: list[dict[str, str]]
    state: Path

    @property
    def text(self) -> str:
        """What the user reads: stderr, stdout and every report column."""
        cells = [value for row in self.report for value in row.values()]
        return "\n".join([self.err, self.out, *cells])


def child_env(password: str | None = None, keyring: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for ``mxmailer``: the password in ``$MXMAILER_RELAY_PASSWORD`` or
    not at all, and never the machine's keyring: the lab keyring holding ``keyring``
    (``{"USER@HOST": password}``), or a keyring with no entries."""
    env = {k: v for k, v in os.environ.items() if k not in (PASSWORD_ENV, LAB_KEYRING_ENV)}
    env["PYTHON_KEYRING_BACKEND"] = NO_KEYRING if keyring is None else LAB_KEYRING
    if keyring is not None:
        env[LAB_KEYRING_ENV] = json.dumps(
            {f"{KEYRING_SERVICE}|{user}": secret for user, secret in keyring.items()}
        )
    if password is not None:
        env[PASSWORD_ENV] = password
    return env


async def send(
    tmp_path: Path, *options: str | Path, env: dict[str, str], addresses: list[str] = ADDRESSES
) -> Run:
    """``mxmailer send`` of ``MESSAGE`` to ``addresses`` with ``options`` (the relay
    options, and any that override the short defaults below), bounded. Progress is JSON
    lines: every event the run publishes is in the output the secret is searched in."""
    recipients = write_csv(tmp_path / "r.csv", addresses)
    message = tmp_path / "m.eml"
    message.write_bytes(MESSAGE)
    state, report = tmp_path / "campaign.mxm", tmp_path / "report.csv"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core.cli",
        *map(
            str,
            [
                *send_args(recipients, message),
                "--state", state, "--report", report, "--progress", "jsonl",
                "--timeout", "3", "--retry", "1", "--lifetime", "10", "--concurrency", "4",
                *options,
            ],
        ),
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,  # never a terminal: no password prompt
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
        pytest.fail(f"mxmailer still running after {RUN_TIMEOUT} s:\n{err.decode()}")
    assert process.returncode is not None
    rows = read_report(report) if report.exists() else []
    return Run(process.returncode, out.decode(), err.decode(), rows, state)


def relay(server: SubmissionServer | PostfixRelay, host: str = "127.0.0.1") -> list[str]:
    return ["--relay", f"{host}:{server.port}"]


def login(tls: LabTLS, tmp_path: Path, user: str = USER) -> list[str | Path]:
    return ["--relay-cafile", tls.write_ca(tmp_path / "ca.pem"), "--relay-user", user]


async def send_via(
    server: SubmissionServer,
    tmp_path: Path,
    *options: str | Path,
    env: dict[str, str] | None = None,
    addresses: list[str] = ADDRESSES,
) -> Run:
    """``send`` through ``server`` alone, its CA trusted, logging in as ``USER`` (with
    ``PASSWORD`` unless ``env`` says otherwise), then ``options``."""
    return await send(
        tmp_path,
        *relay(server),
        *login(server.tls, tmp_path),
        *options,
        env=child_env(PASSWORD) if env is None else env,
        addresses=addresses,
    )


def secret_forms(password: str, user: str = USER) -> list[bytes]:
    """``password`` as it could leak: raw, and base64 as AUTH PLAIN (with and without an
    authorization identity) and AUTH LOGIN send it."""
    raw, name = password.encode(), user.encode()
    return [
        raw,
        base64.b64encode(b"\0" + name + b"\0" + raw),
        base64.b64encode(name + b"\0" + name + b"\0" + raw),
        base64.b64encode(raw),
    ]


def assert_no_secret(run: Run, tmp_path: Path, *passwords: str) -> None:
    """No password, in any form, in the output or in any file the run left (the report,
    the campaign file and its journals); every AUTH in a transcript is hidden."""
    places = {"stdout": run.out.encode(), "stderr": run.err.encode()}
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file():
            places[path.name] = path.read_bytes()
    assert "campaign.mxm" in places
    for password in passwords:
        for form in secret_forms(password):
            leaks = [name for name, data in places.items() if form in data]
            assert leaks == [], f"{form!r} found in {leaks}"
    for line in transcripts(run.state):
        for shown in re.findall(r"AUTH\s+\S+(?:\s+\S+)?", line):
            assert shown in ("AUTH PLAIN <hidden>", "AUTH LOGIN") or shown.startswith(
                "AUTH LOGIN <hidden>"
            ), shown


def transcripts(state: Path) -> list[str]:
    """Every attempt's transcript the campaign file keeps."""
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
        return [str(t) for (t,) in db.execute("SELECT transcript FROM attempts") if t]


def assert_delivered(run: Run, server: SubmissionServer, addresses: list[str] = ADDRESSES) -> None:
    """Every recipient reported delivered and received once, through an authenticated,
    encrypted session, with its own merged body intact."""
    assert run.code == 0, run.err
    assert sorted(row["email"] for row in run.report) == sorted(addresses)
    assert {row["status"] for row in run.report} == {"delivered"}, run.report
    received = sorted(r for m in server.messages for r in m.recipients)
    assert received == sorted(addresses)
    for relayed in server.messages:
        assert relayed.encrypted and relayed.login == USER, relayed
        name = relayed.recipients[0].split("@")[0]
        assert relayed.data.endswith(
            f"\r\n\r\nHello {name}.\r\n.a line that starts with a dot\r\nBye.\r\n".encode()
        ), relayed.data
    assert server.logins and all(attempt.accepted for attempt in server.logins)
    assert all(command.encrypted for command in server.auth_commands)


# ---- logging in ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "used"),
    [(("LOGIN", "PLAIN"), "PLAIN"), (("LOGIN",), "LOGIN")],
    ids=["plain", "login-only"],
)
async def test_starttls_and_auth_deliver_all_and_the_password_shows_nowhere(
    tmp_path: Path, offered: tuple[str, ...], used: str
) -> None:
    async with SubmissionServer(USER, PASSWORD, mechanisms=offered) as server:
        run = await send_via(server, tmp_path)
    assert_delivered(run, server)
    assert {attempt.mechanism for attempt in server.logins} == {used}
    assert_no_secret(run, tmp_path, PASSWORD)


async def test_the_keyring_password_comes_before_the_environment(tmp_path: Path) -> None:
    keyring = {f"{USER}@127.0.0.1": PASSWORD}
    wrong = "not-the-password-from-the-environment"
    async with SubmissionServer(USER, PASSWORD) as server:
        run = await send_via(server, tmp_path, env=child_env(wrong, keyring=keyring))
    assert_delivered(run, server)
    assert_no_secret(run, tmp_path, PASSWORD, wrong)


async def test_a_refused_login_is_not_retried_and_is_reported_with_the_535_reply(
    tmp_path: Path,
) -> None:
    """A wrong password does not heal by retrying (and retries trip lockouts): the
    relays pause for the recipients' lifetime, which ends them with the reply."""
    wrong = "wrong-password"
    async with SubmissionServer(USER, PASSWORD) as server:
        run = await send_via(server, tmp_path, "--lifetime", "60", env=child_env(wrong))
    assert run.code == 1, run.err
    assert server.messages == []
    # Only the connections opened at the start tried to log in: the run ended well before
    # the 60 s lifetime (send() gives up after 45 s), so nothing waited to try again.
    assert server.logins and not any(attempt.accepted for attempt in server.logins)
    assert len(server.logins) < len(ADDRESSES)
    assert "the relays refused the login" in run.out  # the sender problem, with its fix
    assert len(run.report) == len(ADDRESSES)
    for row in run.report:
        assert row["status"] != "delivered", row
        assert row["status"] == "expired", row
        assert "535 5.7.8 Authentication credentials invalid" in row["response"], row
    assert "535 5.7.8" in run.out  # the progress events said so too (and were searched)
    assert_no_secret(run, tmp_path, wrong)


async def test_without_a_password_it_exits_2_naming_both_sources_and_connects_nowhere(
    tmp_path: Path,
) -> None:
    async with SubmissionServer(USER, PASSWORD) as server:
        run = await send_via(server, tmp_path, env=child_env())
    assert run.code == 2, run.err
    assert "keyring" in run.err.lower()
    assert PASSWORD_ENV in run.err
    assert server.connections == 0
    assert not run.state.exists()


# ---- TLS ----------------------------------------------------------------------------------


@pytest.mark.parametrize("trust", ["unknown-ca", "other-name"])
async def test_a_certificate_that_does_not_verify_gets_neither_mail_nor_password(
    tmp_path: Path, trust: str
) -> None:
    """``unknown-ca``: no ``--relay-cafile``, so only the system's CAs, which never signed
    the lab's; ``other-name``: the CA is trusted but the certificate is not for 127.0.0.1."""
    tls = LabTLS(("relay.lab.test",)) if trust == "other-name" else LabTLS(("127.0.0.1",))
    async with SubmissionServer(USER, PASSWORD, tls=tls) as server:
        options: list[str | Path] = [*relay(server), "--relay-user", USER, "--lifetime", "2"]
        if trust == "other-name":
            options += ["--relay-cafile", tls.write_ca(tmp_path / "ca.pem")]
        run = await send(tmp_path, *options, env=child_env(PASSWORD))
    assert run.code == 1, run.err
    assert server.connections >= 1  # it did try this relay
    assert server.messages == [] and server.auth_commands == [] and server.logins == []
    assert {row["status"] for row in run.report} & {"delivered"} == set()
    assert re.search(r"certificate", run.text, re.IGNORECASE), run.text
    if trust == "unknown-ca":
        assert re.search(r"verif", run.text, re.IGNORECASE), run.text


async def test_a_relay_without_starttls_never_gets_the_password(tmp_path: Path) -> None:
    """STARTTLS is required by default: a relay offering AUTH in the clear gets nothing."""
    async with SubmissionServer(USER, PASSWORD, security="none") as server:
        run = await send_via(server, tmp_path, "--lifetime", "2")
    assert run.code == 1, run.err
    assert server.connections >= 1
    assert server.auth_commands == [] and server.messages == []
    assert_no_secret(run, tmp_path, PASSWORD)


@pytest.mark.parametrize(
    "offer",
    ["unverifiable-starttls", "no-starttls"],
)
async def test_without_login_mail_still_never_goes_to_a_relay_in_the_clear(
    tmp_path: Path, offer: str
) -> None:
    """No ``--relay-user`` (a relay that trusts our address, as Postfix's mynetworks):
    STARTTLS is still required and verified, so a relay whose certificate does not verify,
    or that offers no STARTTLS, gets no mail; no falling back to plaintext."""
    tls = LabTLS(("127.0.0.1",)) if offer == "unverifiable-starttls" else None
    async with AiosmtpdServer(tls=tls) as server:
        run = await send(
            tmp_path, "--relay", f"127.0.0.1:{server.port}", "--lifetime", "2", env=child_env()
        )
        plaintext = [m.recipients for m in server.messages if not m.tls]
    assert plaintext == []
    assert server.messages == []
    assert run.code == 1, run.err
    assert server.stats.connections >= 1  # it did try this relay
    assert {row["status"] for row in run.report} & {"delivered"} == set()


async def test_implicit_tls_from_the_first_byte(tmp_path: Path) -> None:
    async with SubmissionServer(USER, PASSWORD, security="tls") as server:
        run = await send_via(server, tmp_path, "--relay-security", "tls")
    assert_delivered(run, server)
    assert_no_secret(run, tmp_path, PASSWORD)


async def test_a_relay_given_by_name_is_verified_by_that_name(tmp_path: Path) -> None:
    """``--relay localhost:PORT`` against a certificate for ``localhost`` only (not for
    127.0.0.1): the name given is the one checked."""
    tls = LabTLS(("localhost",))
    async with SubmissionServer(USER, PASSWORD, tls=tls) as server:
        run = await send(
            tmp_path, *relay(server, "localhost"), *login(tls, tmp_path), env=child_env(PASSWORD)
        )
    assert_delivered(run, server)
    assert all(row["mx"].startswith(f"localhost:{server.port}") for row in run.report)


async def test_relay_mode_asks_no_nameserver(tmp_path: Path) -> None:
    """No MX lookups: a ``--nameserver`` given anyway (one that would never answer) gets
    not a single query, and the mail goes through the relay."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nameserver:
        nameserver.bind(("127.0.0.1", 0))
        nameserver.setblocking(False)
        address = f"127.0.0.1:{nameserver.getsockname()[1]}"
        async with SubmissionServer(USER, PASSWORD) as server:
            run = await send_via(server, tmp_path, "--nameserver", address)
        with contextlib.suppress(BlockingIOError):
            query = nameserver.recv(4096)
            pytest.fail(f"relay mode asked the nameserver: {query!r}")
    assert_delivered(run, server)


# ---- several relays -----------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["closed-port", "refused-login"])
async def test_when_the_first_relay_fails_the_second_takes_everything(
    tmp_path: Path, failure: str
) -> None:
    """The first relay is a loopback port nobody listens on (on 127.0.0.2, so that the mx
    column cannot name it by accident), or a relay that refuses the login."""
    tls = LabTLS(("127.0.0.1",))
    async with SubmissionServer(USER, PASSWORD, tls=tls) as second:
        if failure == "closed-port":
            first_relay = ["--relay", f"127.0.0.2:{free_port('127.0.0.2')}"]
            run = await send(
                tmp_path, *first_relay, *relay(second), *login(tls, tmp_path),
                env=child_env(PASSWORD),
            )  # fmt: skip
        else:
            async with SubmissionServer(USER, "another-password", tls=tls) as first:
                run = await send(
                    tmp_path, *relay(first), *relay(second), *login(tls, tmp_path),
                    env=child_env(PASSWORD),
                )  # fmt: skip
            assert first.messages == [] and first.logins
            assert not any(attempt.accepted for attempt in first.logins)
    assert_delivered(run, second)
    for row in run.report:
        assert f"127.0.0.1:{second.port}" in row["mx"], row
    assert_no_secret(run, tmp_path, PASSWORD)


@pytest.mark.parametrize("limit", [1, 8])
async def test_per_destination_limits_the_connections_to_the_relay_set(
    tmp_path: Path, limit: int
) -> None:
    """Every domain goes to the one relay set, so the limit holds over all of them. A
    relay slow to answer the end of data keeps connections busy: with room (8) more than
    one opens, which is what shows that with a limit of 1 the limit is what held."""
    addresses = [f"u{n}@dest{n % 7}.test" for n in range(24)]
    async with SubmissionServer(USER, PASSWORD, data_delay=0.05) as server:
        run = await send_via(
            server, tmp_path, "--concurrency", "8", "--per-destination", str(limit),
            addresses=addresses,
        )  # fmt: skip
    assert_delivered(run, server, addresses)
    print(f"--per-destination {limit}: at most {server.peak} connections at once")
    assert (server.peak == 1) if limit == 1 else (1 < server.peak <= limit)


async def test_relays_are_tried_in_the_order_given(tmp_path: Path) -> None:
    tls = LabTLS(("127.0.0.1",))
    async with (
        SubmissionServer(USER, PASSWORD, tls=tls) as first,
        SubmissionServer(USER, PASSWORD, tls=tls) as second,
    ):
        run = await send(
            tmp_path, *relay(first), *relay(second), *login(tls, tmp_path),
            env=child_env(PASSWORD),
        )  # fmt: skip
    assert_delivered(run, first)
    assert second.connections == 0


# ---- a real relay -------------------------------------------------------------------------


async def test_postfix_as_the_relay_hands_every_message_on_intact(tmp_path: Path) -> None:
    """Postfix takes the mail over STARTTLS (verified, no AUTH: mynetworks) and relays it
    to the lab server, which sees Postfix's Received header above the message we sent."""
    require_mta()
    async with (
        AiosmtpdServer(hostname="final.lab.test") as final,
        PostfixRelay(final.address) as postfix,
    ):
        assert postfix.tls is not None
        run = await send(
            tmp_path,
            *relay(postfix),
            "--relay-cafile", postfix.tls.write_ca(tmp_path / "ca.pem"),
            env=child_env(),
        )  # fmt: skip
        assert run.code == 0, run.err + postfix.log_tail()
        try:
            messages = await final.wait_for_messages(len(ADDRESSES), timeout=20)
        except TimeoutError as error:
            raise AssertionError(postfix.log_tail()) from error
    assert {row["status"] for row in run.report} == {"delivered"}, run.report
    assert sorted(r for m in messages for r in m.recipients) == sorted(ADDRESSES)
    for message in messages:
        name = message.recipients[0].split("@")[0]
        head, _, body = message.data.partition(b"\r\n\r\n")
        assert head.startswith(b"Received: from "), head
        received = head.split(b"\r\n")
        trace = b" ".join(line.strip() for line in received[: _header_lines(received)])
        assert b"by mx.relay.test (Postfix) with ESMTPS" in trace, trace
        assert f"Subject: Hi {name}\r\n".encode() in head + b"\r\n"
        assert body == f"Hello {name}.\r\n.a line that starts with a dot\r\nBye.\r\n".encode()


def _header_lines(lines: list[bytes]) -> int:
    """How many of ``lines`` the first header (with its folded lines) takes."""
    count = 1
    while count < len(lines) and lines[count][:1] in (b" ", b"\t"):
        count += 1
    return count


# ---- the campaign file remembers the route ------------------------------------------------

#: Recipients in the lab world's plain.test, whose MX accepts everything: mail that went
#: around the relay would arrive there.
LAB_ADDRESSES = [f"u{n:02}@plain.test" for n in range(16)]


def lab_options(world: LabWorld) -> list[str]:
    """What a direct send would need to reach the lab world's MX hosts instead of the
    internet: its nameserver and port."""
    return ["--nameserver", world.nameserver, "--port", str(world.port)]


async def resume(
    tmp_path: Path, *options: str | Path, env: dict[str, str], state: Path | None = None
) -> Run:
    """``mxmailer send --state FILE`` as a user resumes: no recipients, message or
    sender, and only the ``options`` given."""
    state = state or tmp_path / "campaign.mxm"
    report = tmp_path / "report.csv"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli", "send",
        *map(str, ["--state", state, "--report", report, "--progress", "jsonl",
                   "--timeout", "3", "--retry", "1", "--lifetime", "20", *options]),
        cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"mxmailer still running after {RUN_TIMEOUT} s")
    assert process.returncode is not None
    rows = read_report(report) if report.exists() else []
    return Run(process.returncode, out.decode(), err.decode(), rows, state)


async def interrupted_relayed_run(
    tmp_path: Path, server: SubmissionServer, world: LabWorld
) -> Path:
    """A relayed campaign to ``LAB_ADDRESSES`` stopped with Ctrl-C after a few messages
    (exit 130): the rest is still to send. The relay answers slowly and one connection
    at a time, so the interruption lands mid-run."""
    recipients = write_csv(tmp_path / "r.csv", LAB_ADDRESSES)
    message = tmp_path / "m.eml"
    message.write_bytes(MESSAGE)
    state = tmp_path / "campaign.mxm"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli",
        *map(str, [*send_args(recipients, message), "--state", state, "--progress", "none",
                   "--timeout", "3", "--concurrency", "1", *relay(server),
                   *login(server.tls, tmp_path), *lab_options(world)]),
        cwd=ROOT, env=child_env(PASSWORD), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            while len(server.messages) < 3:
                await asyncio.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130, err.decode()
    assert 3 <= len(server.messages) < len(LAB_ADDRESSES)
    return state


def stored_settings(state: Path) -> dict[str, object]:
    """The campaign's settings as its file holds them."""
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
        (settings,) = db.execute("SELECT settings FROM campaign WHERE id = 1").fetchone()
    value: dict[str, object] = json.loads(settings)
    return value


async def test_a_relayed_campaign_resumed_without_relay_options_goes_on_through_the_relay(
    tmp_path: Path,
) -> None:
    """The documented way to resume after Ctrl-C (``--state`` alone) must not turn the
    campaign into direct delivery from this computer: the lab's MX hosts get nothing."""
    async with (
        sandbox_world() as world,
        SubmissionServer(USER, PASSWORD, data_delay=0.15) as server,
    ):
        state = await interrupted_relayed_run(tmp_path, server, world)
        first = len(server.messages)
        route = stored_settings(state)[ROUTE]
        assert route == {
            "via": "relay",
            "relays": [f"127.0.0.1:{server.port}"],
            "security": "starttls",
            "cafile": str((tmp_path / "ca.pem").resolve()),
            "user": USER,
        }
        run = await resume(tmp_path, *lab_options(world), env=child_env(PASSWORD))
        direct = world.delivered_to()
    assert direct == []  # nothing went around the relay
    assert run.code == 0, run.err
    assert f"resuming through the relay 127.0.0.1:{server.port} stored in the campaign" in run.err
    assert_delivered(run, server, LAB_ADDRESSES)  # each received once, through the relay
    assert len(server.messages) > first
    assert all(row["mx"].startswith(f"127.0.0.1:{server.port}") for row in run.report)
    assert stored_settings(state)[ROUTE] == route
    assert_no_secret(run, tmp_path, PASSWORD)
    # Writing the report again once all is sent needs no password, and keeps the route.
    (tmp_path / "report.csv").unlink()
    again = await resume(tmp_path, env=child_env())
    assert again.code == 0, again.err
    assert len(again.report) == len(LAB_ADDRESSES)
    assert stored_settings(state)[ROUTE] == route


async def test_direct_switches_a_relayed_campaign_to_the_recipients_mx_hosts(
    tmp_path: Path,
) -> None:
    async with (
        sandbox_world() as world,
        SubmissionServer(USER, PASSWORD, data_delay=0.15) as server,
    ):
        state = await interrupted_relayed_run(tmp_path, server, world)
        relayed = sorted(r for m in server.messages for r in m.recipients)
        run = await resume(tmp_path, "--direct", *lab_options(world), env=child_env())
        direct = sorted(world.delivered_to())
        after = sorted(r for m in server.messages for r in m.recipients)
    assert run.code == 0, run.err
    assert (
        "resuming with direct delivery to the recipients' MX hosts (--direct), replacing "
        f"the relay 127.0.0.1:{server.port} stored in the campaign"
    ) in run.err
    assert after == relayed  # the relay got nothing more
    assert direct and sorted(direct + relayed) == sorted(LAB_ADDRESSES)
    assert {row["status"] for row in run.report} == {"delivered"}
    assert stored_settings(state)[ROUTE] == {"via": "direct"}
    assert_no_secret(run, tmp_path, PASSWORD)


def stored_campaign(path: Path, route: CampaignRoute) -> Path:
    """A campaign to ``LAB_ADDRESSES`` whose file remembers ``route``."""
    with CampaignStore.create(
        path,
        sender=SENDER,
        message=MESSAGE,
        settings=with_route({"helo": "sender.test"}, route),
    ) as store:
        store.add_recipients(
            NewRecipient(email, "plain.test", {"name": email.split("@")[0]})
            for email in LAB_ADDRESSES
        )
    return path


async def test_relay_and_direct_together_are_refused_and_change_nothing(
    tmp_path: Path,
) -> None:
    async with SubmissionServer(USER, PASSWORD) as server:
        new = await send(
            tmp_path, *relay(server), "--direct", *login(server.tls, tmp_path),
            env=child_env(PASSWORD),
        )  # fmt: skip
        assert new.code == 2 and not new.state.exists()
        assert "--relay and --direct cannot be used together" in new.err
        state = stored_campaign(tmp_path / "stored.mxm", CampaignRoute(("127.0.0.1:1",)))
        before = state.read_bytes()
        resumed = await resume(
            tmp_path, "--direct", *relay(server), env=child_env(PASSWORD), state=state
        )
    assert resumed.code == 2, resumed.err
    assert "--relay and --direct cannot be used together" in resumed.err
    assert state.read_bytes() == before
    assert server.connections == 0


async def test_a_campaign_sent_directly_may_be_resumed_through_a_relay(tmp_path: Path) -> None:
    state = stored_campaign(tmp_path / "campaign.mxm", CampaignRoute())
    async with sandbox_world() as world, SubmissionServer(USER, PASSWORD) as server:
        run = await resume(
            tmp_path, *relay(server), *login(server.tls, tmp_path), *lab_options(world),
            env=child_env(PASSWORD), state=state,
        )  # fmt: skip
        direct = world.delivered_to()
    assert direct == []
    assert run.code == 0, run.err
    assert "the campaign was sent directly so far" in run.err
    assert_delivered(run, server, LAB_ADDRESSES)
    assert (
        stored_settings(state)[ROUTE]
        == CampaignRoute(
            (f"127.0.0.1:{server.port}",), cafile=str((tmp_path / "ca.pem").resolve()), user=USER
        ).setting()
    )
    assert_no_secret(run, tmp_path, PASSWORD)


async def test_a_stored_relay_without_its_password_exits_2_and_never_goes_direct(
    tmp_path: Path,
) -> None:
    """The password is not in the file: without it the resume stops (exit 2, saying
    where to put it, or how to change the route) rather than sending another way."""
    async with sandbox_world() as world, SubmissionServer(USER, PASSWORD) as server:
        route = CampaignRoute(
            (f"127.0.0.1:{server.port}",), cafile=str(server.tls.write_ca(tmp_path / "ca.pem")),
            user=USER,
        )  # fmt: skip
        state = stored_campaign(tmp_path / "stored.mxm", route)
        run = await resume(tmp_path, *lab_options(world), env=child_env(), state=state)
        direct = world.delivered_to()
    assert run.code == 2, run.err
    assert "route stored in the campaign file" in run.err and PASSWORD_ENV in run.err
    assert "--direct" in run.err
    assert direct == [] and server.connections == 0
