"""``mxmailer bounces`` end to end: a campaign sent through the lab (so every Message-ID
is one the engine made), bounces and an unsubscribe request built from the DSN samples
around those Message-IDs, a real Dovecot holding them, and the command reading it over
TLS as a user runs it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.credentials import IMAP
from core.lab.world import sandbox_world
from core.store import CampaignStore
from tests.integration.imap import DovecotIMAP
from tests.integration.test_cli_send import ROOT, lab_args, mxmailer, send_args
from tests.unit.test_dsn import CASES, sample
from tests.unit.test_dsn_matching import make_campaign

# Each sample with the address it names and the campaign recipient it is turned into.
BOUNCES = {
    "postfix-user-unknown.eml": ("ann@plain.test", "ann@plain.test"),
    "exim-mailbox-full.eml": ("bob@plain.test", "bob@plain.test"),
    "office365-recipient-not-found.eml": ("dana@contoso.test", "dana@plain.test"),
    "exchange-banned-ip.eml": ("frank@fabrikam.test", "frank@plain.test"),
    "gmail-no-such-user.eml": ("gina@gmail.test", "gina@plain.test"),
    "qmail-failure.eml": ("hank@oldhost.test", "hank@plain.test"),
    "postfix-delayed.eml": ("eve@plain.test", "eve@plain.test"),
    "exim-delayed.eml": ("carl@plain.test", "carl@plain.test"),
}
SENDER_FAULT = {"frank@plain.test"}
DELAYED = {"eve@plain.test", "carl@plain.test"}
UNSUBSCRIBER = "jay@plain.test"
BYSTANDER = "ivy@plain.test"  # named by a bounce of a message this campaign never sent
LATE = "kim@plain.test"  # bounced by a mail that arrives after the first run
RECIPIENTS = sorted({to for _, to in BOUNCES.values()} | {UNSUBSCRIBER, BYSTANDER, LATE})
SAMPLE_IDS = {case[0]: case[2] for case in CASES}
MAILTO = "mailto:unsub+{{token}}@sender.test?subject=unsubscribe"


def token(email: str) -> str:
    return f"tok{RECIPIENTS.index(email):03d}z"


def message_ids(state: Path) -> dict[str, str]:
    with CampaignStore.open(state, read_only=True)[0] as store:
        return {row.email: row.message_id for row in store.states()}


def statuses(state: Path) -> dict[str, tuple[str, str, str]]:
    with CampaignStore.open(state, read_only=True)[0] as store:
        return {row.email: (row.status.value, row.fault, row.reason) for row in store.states()}


def bounce_for(name: str, message_id: str, email: str) -> bytes:
    """A sample bounce about ``email``'s real message: the sample's own Message-ID and
    address replaced."""
    raw = sample(name)
    named, _ = BOUNCES[name]
    if SAMPLE_IDS[name]:
        raw = raw.replace(SAMPLE_IDS[name].encode(), message_id.encode())
    return raw.replace(named.encode(), email.encode())


NOISE = b"From: news@other.test\nTo: bounces@sender.test\nSubject: Our weekly deals\n\nBuy.\n"


def bounces_cli(
    state: Path, imap: DovecotIMAP, ca: Path, *extra: str | Path,
    password: str | None = None, starttls: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``mxmailer bounces`` as a user runs it, the password in the environment."""
    env = {**os.environ, IMAP.env: imap.password if password is None else password}
    port = imap.starttls_port if starttls else imap.port
    return subprocess.run(
        [sys.executable, "-m", "core.cli", "bounces", "--state", str(state),
         "--imap-host", imap.host, "--imap-port", str(port), "--imap-user", imap.user,
         "--cafile", str(ca), *(["--starttls"] if starttls else []), *map(str, extra)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        stdin=subprocess.DEVNULL,
    )


async def test_bounces_and_unsubscribes_read_from_a_real_imap_server(tmp_path: Path) -> None:
    recipients = tmp_path / "r.csv"
    with recipients.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "token"])
        writer.writerows([email, token(email)] for email in RECIPIENTS)
    message = tmp_path / "m.eml"
    message.write_bytes(b"From: <news@sender.test>\nSubject: Hi\n\nHello.\n")
    state = tmp_path / "campaign.mxm"
    async with sandbox_world() as world:
        code, _, err = await mxmailer(
            *send_args(recipients, message), "--list-unsubscribe-mailto", MAILTO,
            *lab_args(world, state),
        )
    assert code == 0, err
    before = statuses(state)
    assert {status for status, _, _ in before.values()} == {"delivered"}
    ids = message_ids(state)
    assert len(set(ids.values())) == len(RECIPIENTS) and all(ids.values())

    mails = [bounce_for(name, ids[to], to) for name, (_, to) in BOUNCES.items()]
    mails.append(
        f"From: Jay <{UNSUBSCRIBER}>\nTo: <unsub+{token(UNSUBSCRIBER)}@sender.test>\n"
        "Subject: unsubscribe\n\nPlease remove me.\n".encode()
    )
    foreign = bounce_for("postfix-user-unknown.eml", "<not-ours-1@sender.test>", BYSTANDER)
    mails += [NOISE, foreign]
    ca = tmp_path / "ca.pem"
    suppression = tmp_path / "unsubscribed.txt"
    with DovecotIMAP(mails) as imap:
        imap.tls.write_ca(ca)
        first = bounces_cli(state, imap, ca, "--suppression-out", suppression)
        assert first.returncode == 0, first.stderr + imap.log_tail()
        assert (
            "6 bounced later, 2 delayed (ignored), 1 unsubscribe(s), 2 unmatched"
            in first.stdout.splitlines()[-1]
        ), first.stdout
        flags = imap.flags()
        assert len(flags) == len(mails)  # nothing deleted
        assert sum("\\Seen" in f for f in flags.values()) == len(mails) - 2  # matched ones

        # A bounce that arrives later: only it is read by the next run (over STARTTLS).
        imap.append(bounce_for("gmail-no-such-user.eml", message_ids(state)[LATE], LATE))
        second = bounces_cli(state, imap, ca, starttls=True)
        assert second.returncode == 0, second.stderr + imap.log_tail()
        assert second.stdout.splitlines()[-1] == (
            "1 bounced later, 0 delayed (ignored), 0 unsubscribe(s), 0 unmatched"
        ), second.stdout
        outputs = first.stdout + first.stderr + second.stdout + second.stderr

    after = statuses(state)
    for email in RECIPIENTS:
        status, fault, reason = after[email]
        if email in DELAYED or email == BYSTANDER:
            assert after[email] == before[email], email
        elif email == UNSUBSCRIBER:
            assert status == "delivered" and "unsubscribed by mail" in reason
        else:
            assert status == "bounced", email
            assert fault == ("sender" if email in SENDER_FAULT else "recipient"), email
            assert reason.startswith("bounced after it was accepted"), reason
    assert suppression.read_text().splitlines()[-1] == UNSUBSCRIBER
    assert "tok" not in suppression.read_text()

    exported = tmp_path / "bounced.txt"
    code, _, err = await mxmailer("export-bounces", "--state", state, "--output", exported)
    assert code == 0, err
    entries = [line for line in exported.read_text().splitlines() if "@" in line]
    expected = {to for _, to in BOUNCES.values()} - DELAYED - SENDER_FAULT | {LATE}
    assert sorted(entries) == sorted(expected)

    assert imap.password not in outputs
    assert imap.password.encode() not in state.read_bytes()


def test_a_wrong_password_or_an_untrusted_certificate_changes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "c.mxm"
    CampaignStore.create(state, sender="news@sender.test", message=b"Subject: x\n\nx\n",
                         settings={}).close()
    ca = tmp_path / "ca.pem"
    other_ca = tmp_path / "other-ca.pem"
    with DovecotIMAP([NOISE]) as imap, DovecotIMAP() as stranger:
        imap.tls.write_ca(ca)
        stranger.tls.write_ca(other_ca)
        wrong = bounces_cli(state, imap, ca, password="not-the-Pa55word")
        untrusted = bounces_cli(state, imap, other_ca)
        assert all("\\Seen" not in flags for flags in imap.flags().values())
    assert wrong.returncode == 1
    assert "refused the login of bounces@sender.test" in wrong.stderr
    assert "not-the-Pa55word" not in wrong.stdout + wrong.stderr
    assert untrusted.returncode == 1
    assert "cannot be trusted" in untrusted.stderr
    assert imap.password not in untrusted.stdout + untrusted.stderr


def test_a_folder_with_a_non_ascii_name(tmp_path: Path) -> None:
    state = tmp_path / "c.mxm"
    make_campaign(state).close()
    ca = tmp_path / "ca.pem"
    folder = '"R&APw-ckl&AOQ-ufer"'  # "Rückläufer" in IMAP's modified UTF-7, quoted
    with DovecotIMAP([sample("postfix-user-unknown.eml")]) as imap:
        imap.tls.write_ca(ca)
        imap.append(sample("exim-mailbox-full.eml"), folder)
        done = bounces_cli(state, imap, ca, "--mailbox", "Rückläufer")
        assert done.returncode == 0, done.stderr + imap.log_tail()
        assert done.stdout.splitlines()[-1].startswith("1 bounced later, "), done.stdout
        assert imap.flags(folder) == {1: {"\\Seen"}}
        assert all("\\Seen" not in flags for flags in imap.flags().values())  # INBOX unread
    assert [row[0] for row in statuses(state).values()].count("bounced") == 1
    assert statuses(state)["bob@plain.test"][0] == "bounced"


@pytest.mark.parametrize("missing", ["--imap-host", "--state"])
def test_usage_errors(tmp_path: Path, missing: str) -> None:
    args = {"--state": str(tmp_path / "none.mxm"), "--imap-host": "127.0.0.1"}
    del args[missing]
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "bounces", *[x for kv in args.items() for x in kv]],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert missing in done.stderr
