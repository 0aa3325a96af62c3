"""The DSN reader on the bounce samples in tests/data/dsn (one per server family), and on
mails that are not bounces."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.bounces.dsn import Action, RecipientStatus, read_bounce
from core.faults import Fault, classify_fault

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "dsn"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# file, form, original Message-ID, address, action, status, words of the diagnostic, fault
CASES = [
    ("postfix-user-unknown.eml", "rfc3464", "<5d1f0c8e2b7a4f3e9c6d1a2b3c4d5e6f@sender.test>",
     "ann@plain.test", Action.FAILED, "5.1.1", "User unknown in virtual mailbox table",
     Fault.RECIPIENT),
    ("postfix-delayed.eml", "rfc3464", "<8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d@sender.test>",
     "eve@plain.test", Action.DELAYED, "4.4.1", "Connection timed out", Fault.UNKNOWN),
    ("exim-mailbox-full.eml", "exim", "<1b2c3d4e5f60718293a4b5c6d7e8f901@sender.test>",
     "bob@plain.test", Action.FAILED, "5.2.2", "mailbox is full (quota exceeded, 452 of 450",
     Fault.RECIPIENT),
    ("exim-delayed.eml", "exim", "", "carl@plain.test", Action.DELAYED, "4.3.0",
     "Temporary lookup failure", Fault.UNKNOWN),
    ("office365-recipient-not-found.eml", "rfc3464",
     "<0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f@sender.test>", "dana@contoso.test", Action.FAILED,
     "5.1.10", "RESOLVER.ADR.RecipientNotFound", Fault.RECIPIENT),
    ("exchange-banned-ip.eml", "rfc3464", "<aa11bb22cc33dd44ee55ff6600112233@sender.test>",
     "frank@fabrikam.test", Action.FAILED, "5.7.606", "banned sending IP", Fault.SENDER),
    ("gmail-no-such-user.eml", "rfc3464", "<f0e1d2c3b4a5968778695a4b3c2d1e0f@sender.test>",
     "gina@gmail.test", Action.FAILED, "5.1.1",
     "does not exist. Please try double-checking the recipient's email address",
     Fault.RECIPIENT),
    ("qmail-failure.eml", "qmail", "<9f8e7d6c5b4a39281706f5e4d3c2b1a0@sender.test>",
     "hank@oldhost.test", Action.FAILED, "5.1.1", "User unknown", Fault.RECIPIENT),
]


def test_every_sample_has_a_case() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.eml")) == sorted(c[0] for c in CASES)


@pytest.mark.parametrize(
    ("name", "form", "message_id", "address", "action", "status", "words", "fault"), CASES
)
def test_samples(
    name: str, form: str, message_id: str, address: str, action: Action, status: str,
    words: str, fault: Fault,
) -> None:
    bounce = read_bounce(sample(name))
    assert bounce is not None
    assert bounce.form == form
    assert bounce.message_id == message_id
    assert len(bounce.recipients) == 1
    (recipient,) = bounce.recipients
    assert recipient.final_recipient == address
    assert recipient.action is action
    assert recipient.status == status
    assert words in recipient.diagnostic
    assert "\n" not in recipient.diagnostic
    reply = recipient.reply()
    assert str(reply.enhanced) == status
    assert reply.code // 100 == int(status[0])
    assert classify_fault(reply)[0] is fault


def test_gmail_multiline_diagnostic_keeps_its_code_once() -> None:
    bounce = read_bounce(sample("gmail-no-such-user.eml"))
    assert bounce is not None
    diagnostic = bounce.recipients[0].diagnostic
    assert diagnostic.startswith("550-5.1.1 The email account")
    assert "550-5.1.1" not in diagnostic[10:] and "550 5.1.1" not in diagnostic
    assert diagnostic.endswith("- gsmtp")


def test_reporting_mta_and_remote_mta_are_read() -> None:
    bounce = read_bounce(sample("postfix-user-unknown.eml"))
    assert bounce is not None
    assert bounce.reporting_mta == "mx.plain.test"
    assert bounce.recipients[0].remote_mta == "mailstore.plain.test"
    assert bounce.recipients[0].original_recipient == "ann@plain.test"


def test_a_status_without_an_smtp_reply_gives_a_code_of_its_class() -> None:
    failed = RecipientStatus("a@x.test", "", Action.FAILED, "5.2.2", "X-Postfix; full")
    expired = RecipientStatus("a@x.test", "", Action.FAILED, "4.4.7", "delivery time expired")
    assert (failed.reply().code, str(failed.reply().enhanced)) == (550, "5.2.2")
    assert (expired.reply().code, str(expired.reply().enhanced)) == (450, "4.4.7")
    # A 4.x.x status on a 5xx reply: the reply's code wins, the enhanced code is dropped.
    odd = RecipientStatus("a@x.test", "", Action.FAILED, "4.2.2", "552 mailbox full")
    assert (odd.reply().code, odd.reply().enhanced) == (552, None)


NOT_BOUNCES = {
    "a newsletter": b"From: news@other.test\nTo: bounces@sender.test\nSubject: Weekly\n\nHi.\n",
    "an unsubscribe request": (
        b"From: ann@plain.test\nTo: unsubscribe@sender.test\nSubject: unsubscribe\n\n"
    ),
    "a feedback report (RFC 5965)": (
        b"From: fbl@isp.test\nTo: bounces@sender.test\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nA complaint.\n"
        b"--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n"
        b"Original-Rcpt-To: ann@plain.test\n\n--b--\n"
    ),
    "an out-of-office reply mentioning delivery": (
        b"From: ann@plain.test\nTo: news@sender.test\nAuto-Submitted: auto-replied\n"
        b"Subject: Out of office\n\nYour message could not be read until Monday.\n"
    ),
    "a report part without recipients": (
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        b"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x.test\n\n--b--\n"
    ),
}


@pytest.mark.parametrize("raw", NOT_BOUNCES.values(), ids=NOT_BOUNCES.keys())
def test_mails_that_are_not_bounces(raw: bytes) -> None:
    assert read_bounce(raw) is None


def test_text_delivery_status_is_read_like_the_message_type() -> None:
    raw = sample("postfix-user-unknown.eml").replace(
        b"Content-Type: message/delivery-status", b"Content-Type: text/delivery-status"
    )
    bounce = read_bounce(raw)
    assert bounce is not None
    assert bounce.recipients[0].final_recipient == "ann@plain.test"
    assert bounce.recipients[0].status == "5.1.1"


def test_several_recipients_in_one_report() -> None:
    raw = sample("postfix-user-unknown.eml").replace(
        b"\nFinal-Recipient: rfc822; ann@plain.test",
        b"\nFinal-Recipient: rfc822; zed@plain.test\nAction: delayed\nStatus: 4.2.0\n"
        b"\nFinal-Recipient: rfc822; ann@plain.test",
    )
    bounce = read_bounce(raw)
    assert bounce is not None
    assert [(r.final_recipient, r.action) for r in bounce.recipients] == [
        ("zed@plain.test", Action.DELAYED),
        ("ann@plain.test", Action.FAILED),
    ]


@given(
    name=st.sampled_from([case[0] for case in CASES]),
    cut=st.integers(min_value=0, max_value=6000),
    junk=st.binary(max_size=64),
)
def test_cut_or_corrupted_bounces_never_raise(name: str, cut: int, junk: bytes) -> None:
    raw = sample(name)
    bounce = read_bounce(raw[:cut] + junk + raw[cut + len(junk) :])
    assert bounce is None or all(r.addresses for r in bounce.recipients)
