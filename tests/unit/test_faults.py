"""Whose fault is a refusal: recipient faults, sender faults (with what to do), or neither.

Replies are built from wire bytes with the real parser, so the enhanced status code is
split off exactly as it is in a live session. The texts are what Gmail, Microsoft
(Outlook / Exchange Online), Yahoo, Postfix and Exim actually send, with addresses and IPs
replaced by ``.test`` names and documentation addresses.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.faults import Fault, SenderProblem, classify_fault
from core.smtp import EnhancedStatus, Reply, ReplyParser


def parse(*lines: str) -> Reply:
    """One reply from its wire lines (``"550-5.7.26 text"``, ..., ``"550 5.7.26 end"``)."""
    parser = ReplyParser()
    parser.receive_data("".join(f"{line}\r\n" for line in lines).encode())
    reply = parser.next_reply()
    assert reply is not None
    assert parser.next_reply() is None
    return reply


def kind_of(reply: Reply | None) -> tuple[Fault, str | None]:
    fault, problem = classify_fault(reply)
    return fault, problem.kind if problem else None


# ---- sender faults ---------------------------------------------------------------------

SENDER_CASES = [
    pytest.param(
        (
            "550-5.7.26 This mail has been blocked because the sender is unauthenticated.",
            "550-5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM.",
            "550-5.7.26 ",
            "550-5.7.26  Authentication results:",
            "550-5.7.26  DKIM = did not pass",
            "550-5.7.26  SPF [sender.test] with ip: [192.0.2.1] = did not pass",
            "550-5.7.26 ",
            "550-5.7.26  For instructions on setting up authentication, go to",
            "550 5.7.26  https://support.google.com/mail/answer/81126#authentication - gsmtp",
        ),
        "dmarc",
        id="gmail-5.7.26-unauthenticated-dmarc",
    ),
    pytest.param(
        (
            "550-5.7.26 Unauthenticated email from sender.test is not accepted due to",
            "550-5.7.26 domain's DMARC policy. Please contact the administrator of",
            "550 5.7.26 sender.test domain if this was a legitimate mail. - gsmtp",
        ),
        "dmarc",
        id="gmail-5.7.26-dmarc-policy",
    ),
    pytest.param(
        (
            "421-4.7.28 [192.0.2.1      15] Our system has detected an unusual rate of",
            "421-4.7.28 unsolicited mail originating from your IP address. To protect our",
            "421-4.7.28 users from spam, mail sent from your IP address has been temporarily",
            "421 4.7.28 rate limited. - gsmtp",
        ),
        "rate-limit",
        id="gmail-4.7.28-unusual-rate",
    ),
    pytest.param(
        (
            "421-4.7.0 [192.0.2.1      15] Our system has detected an unusual rate of",
            "421-4.7.0 unsolicited mail originating from your IP address. To protect our",
            "421 4.7.0 users from spam, mail sent from your IP address has been blocked. - gsmtp",
        ),
        "reputation",
        id="gmail-4.7.0-unsolicited",
    ),
    pytest.param(
        (
            "550-5.7.1 [192.0.2.1] Our system has detected that this message is likely",
            "550-5.7.1 unsolicited mail. To reduce the amount of spam sent to Gmail, this",
            "550 5.7.1 message has been blocked. - gsmtp",
        ),
        "reputation",
        id="gmail-5.7.1-likely-unsolicited",
    ),
    pytest.param(
        (
            "550-5.7.25 [192.0.2.1] The IP address sending this message does not have a",
            "550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not",
            "550 5.7.25 point to the sending IP. - gsmtp",
        ),
        "reverse-dns",
        id="gmail-5.7.25-no-ptr",
    ),
    pytest.param(
        (
            "421-4.7.23 The sending IP address for this message doesn't have a PTR record,",
            "421 4.7.23 or the PTR record's forward DNS entry doesn't match. - gsmtp",
        ),
        "reverse-dns",
        id="gmail-4.7.23-no-ptr",
    ),
    pytest.param(
        (
            "550-5.7.27 The sender hit Gmail's SPF check and failed: the sending IP is not",
            "550 5.7.27 authorised by sender.test's SPF record. - gsmtp",
        ),
        "spf",
        id="gmail-5.7.27-spf",
    ),
    pytest.param(
        (
            "421-4.7.32 Your email has been rate limited because the From: header (RFC5322)",
            "421-4.7.32 in this message isn't aligned with either the authenticated SPF or",
            "421 4.7.32 DKIM organizational domain. - gsmtp",
        ),
        "authentication",
        id="gmail-4.7.32-not-aligned",
    ),
    pytest.param(
        (
            "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus. "
            "To request removal from this list see https://www.spamhaus.org/query/ip/192.0.2.1 "
            "(AS3130). [BN8NAM12FT053.eop-nam12.prod.protection.outlook.test]",
        ),
        "blocklist",
        id="microsoft-blocked-using-spamhaus",
    ),
    pytest.param(
        (
            "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact "
            "your Internet service provider since part of their network is on our block list "
            "(S3150). [VE1EUR03FT.eop-EUR03.prod.protection.outlook.test]",
        ),
        "blocklist",
        id="microsoft-S3150-block-list",
    ),
    pytest.param(
        (
            "550 5.7.515 Access denied, sending domain [SENDER.TEST] does not meet the "
            "required authentication level. The sender's domain in the 5322.From address "
            "doesn't meet the authentication requirements defined for the sender.",
        ),
        "authentication",
        id="microsoft-5.7.515-authentication-level",
    ),
    pytest.param(
        (
            "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due "
            "to IP reputation. For e-mail delivery information, see https://postmaster.test",
        ),
        "rate-limit",
        id="microsoft-4.7.650-rate-limited",
    ),
    pytest.param(
        (
            "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to "
            "unexpected volume or user complaints - 4.16.55.1; see "
            "https://postmaster.yahooinc.test/error-codes",
        ),
        "rate-limit",
        id="yahoo-TSS04-temporarily-deferred",
    ),
    pytest.param(
        (
            "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the "
            "ip is in Spamhaus's list; see https://postmaster.yahooinc.test/error-codes",
        ),
        "blocklist",
        id="yahoo-BL21-spamhaus",
    ),
    pytest.param(
        ("554 5.7.9 Message not accepted due to DMARC policy",),
        "dmarc",
        id="yahoo-5.7.9-dmarc",
    ),
    pytest.param(
        (
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
            "zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1; "
            "from=<news@sender.test> to=<u@x.test> proto=ESMTP helo=<mx.sender.test>",
        ),
        "blocklist",
        id="postfix-reject_rbl_client-zen",
    ),
    pytest.param(
        ("450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.1]",),
        "reverse-dns",
        id="postfix-4.7.25-cannot-find-hostname",
    ),
    pytest.param(
        ("450 4.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.1]",),
        "reverse-dns",
        id="postfix-4.7.1-cannot-find-reverse-hostname",
    ),
    pytest.param(
        ("550 5.7.1 <u@x.test>: Sender address rejected: SPF fail - not authorized",),
        "spf",
        id="postfix-policyd-spf",
    ),
    pytest.param(
        ("421 4.7.0 mx.x.test Error: too many connections from 192.0.2.1",),
        "rate-limit",
        id="postfix-anvil-too-many-connections",
    ),
    pytest.param(
        ("421 4.7.0 mx.x.test Error: too many messages from 192.0.2.1",),
        "rate-limit",
        id="postfix-anvil-too-many-messages",
    ),
    pytest.param(
        ("421 mx.x.test Too many connections from your host",),
        "rate-limit",
        id="421-no-enhanced-too-many-connections",
    ),
    pytest.param(
        ("550 rejected because 192.0.2.1 is in a black list at zen.spamhaus.org",),
        "blocklist",
        id="exim-dnslists-black-list",
    ),
    pytest.param(
        ("550 Rejected: 192.0.2.1 is listed at bl.spamcop.test",),
        "blocklist",
        id="exim-dnslists-listed-at",
    ),
    pytest.param(
        ("550 5.7.1 Message rejected due to listing in RBL",),
        "blocklist",
        id="generic-RBL",
    ),
    pytest.param(
        ("554 5.7.1 Rejected: sender IP found in DNSBL b.barracudacentral.test",),
        "blocklist",
        id="generic-DNSBL",
    ),
    pytest.param(
        ("550 Reverse DNS lookup failed for host 192.0.2.1",),
        "reverse-dns",
        id="exim-reverse-dns-no-enhanced",
    ),
    pytest.param(
        ("550 5.7.1 Email rejected per SPAM policy",),
        "reputation",
        id="generic-spam-policy",
    ),
    pytest.param(
        ("554 5.7.1 Message rejected because of poor reputation of the sending IP",),
        "reputation",
        id="generic-poor-reputation",
    ),
    pytest.param(
        ("550 5.7.20 No passing DKIM signature found",),
        "dkim",
        id="5.7.20-dkim-by-code",
    ),
    pytest.param(
        ("550 5.7.1 Message failed DKIM verification",),
        "dkim",
        id="dkim-by-words",
    ),
    pytest.param(
        ("550 5.7.1 Rejected: this message is unauthenticated, please sign your mail",),
        "authentication",
        id="authentication-by-words",
    ),
]


@pytest.mark.parametrize(("lines", "kind"), SENDER_CASES)
def test_sender_faults(lines: tuple[str, ...], kind: str) -> None:
    assert kind_of(parse(*lines)) == (Fault.SENDER, kind)


def test_multiline_gmail_reply_parses_to_one_enhanced_code() -> None:
    """The helper really builds what a session sees: the code split off every line."""
    reply = parse(*SENDER_CASES[0].values[0])
    assert reply.code == 550
    assert reply.enhanced == EnhancedStatus(5, 7, 26)
    assert not any(line.startswith("5.7.26") for line in reply.lines)


def test_every_sender_problem_says_what_and_how_to_fix() -> None:
    seen: dict[str, SenderProblem] = {}
    for case in SENDER_CASES:
        fault, problem = classify_fault(parse(*case.values[0]))
        assert fault is Fault.SENDER
        assert isinstance(problem, SenderProblem)
        seen[problem.kind] = problem
    assert set(seen) == {
        "blocklist", "reverse-dns", "spf", "dkim", "dmarc", "authentication", "rate-limit",
        "reputation",
    }
    for problem in seen.values():
        assert problem.explanation.strip() and problem.fix.strip()
        assert problem.explanation != problem.fix
    # Distinct kinds have distinct advice.
    assert len({problem.fix for problem in seen.values()}) == len(seen)


@pytest.mark.parametrize(
    ("enhanced", "kind"),
    [
        ("4.7.23", "reverse-dns"), ("5.7.25", "reverse-dns"), ("4.7.25", "reverse-dns"),
        ("5.7.26", "dmarc"), ("4.7.26", "dmarc"), ("5.7.27", "spf"), ("4.7.27", "spf"),
        ("5.7.20", "dkim"), ("5.7.21", "dkim"), ("5.7.22", "dkim"),
        ("5.7.515", "authentication"), ("4.7.32", "authentication"),
        ("4.7.28", "rate-limit"), ("4.7.650", "rate-limit"),
    ],
)
def test_telling_enhanced_codes_decide_whatever_the_text(enhanced: str, kind: str) -> None:
    code = 550 if enhanced.startswith("5") else 421
    # Text that, on its own, would point elsewhere: the enhanced code wins.
    reply = parse(f"{code} {enhanced} user unknown; listed; too many connections; spam")
    assert kind_of(reply) == (Fault.SENDER, kind)


def test_words_are_tried_in_order_blocklist_before_reputation() -> None:
    reply = parse("554 5.7.1 Spam source: 192.0.2.1 listed at zen.spamhaus.org")
    assert kind_of(reply) == (Fault.SENDER, "blocklist")


def test_dmarc_is_named_before_spf_when_a_reply_mentions_both() -> None:
    reply = parse("550 5.7.1 DMARC policy rejection: neither SPF nor DKIM aligned")
    assert kind_of(reply) == (Fault.SENDER, "dmarc")


# ---- recipient faults ------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(
            (
                "550-5.1.1 The email account that you tried to reach does not exist. Please try",
                "550-5.1.1 double-checking the recipient's email address for typos or",
                "550-5.1.1 unnecessary spaces. For more information, go to",
                "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser - gsmtp",
            ),
            id="gmail-5.1.1-no-such-user",
        ),
        pytest.param(
            ("550 5.2.1 The email account that you tried to reach is disabled. - gsmtp",),
            id="gmail-5.2.1-disabled",
        ),
        pytest.param(
            (
                "452-4.2.2 The recipient's inbox is out of storage space. Please direct the",
                "452 4.2.2 recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp",
            ),
            id="gmail-4.2.2-over-quota",
        ),
        pytest.param(
            (
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
                "address lookup",
            ),
            id="microsoft-5.1.10-recipient-not-found",
        ),
        pytest.param(
            (
                "550 5.1.1 <u@x.test>: Recipient address rejected: User unknown in virtual "
                "mailbox table",
            ),
            id="postfix-virtual-user-unknown",
        ),
        pytest.param(
            (
                "550 5.1.1 <u@x.test>: Recipient address rejected: User unknown in local "
                "recipient table",
            ),
            id="postfix-local-user-unknown",
        ),
        pytest.param(("552 5.2.2 Mailbox full",), id="552-5.2.2-mailbox-full"),
        pytest.param(
            ("452 4.2.2 <u@x.test>: Recipient address rejected: Mailbox is full",),
            id="transient-mailbox-full",
        ),
        pytest.param(("550 5.1.1 <u@x.test>... User unknown",), id="sendmail-user-unknown"),
        pytest.param(
            ("550 5.1.1 User unknown; rejecting (possible spam trap)",),
            id="5.1.1-mentioning-spam-is-still-the-recipient",
        ),
        pytest.param(
            ("550 5.1.1 <u@x.test>: listed as an invalid mailbox",),
            id="5.1.1-mentioning-listed-is-still-the-recipient",
        ),
        pytest.param(("550 user unknown",), id="no-enhanced-user-unknown"),
        pytest.param(("550 Unknown user",), id="no-enhanced-unknown-user"),
        pytest.param(("550 No such user here",), id="no-enhanced-no-such-user"),
        pytest.param(("551 No such mailbox <u@x.test>",), id="551-no-such-mailbox"),
        pytest.param(
            ("553 <u@x.test>: Recipient address rejected: invalid recipient",),
            id="553-invalid-recipient",
        ),
        pytest.param(
            ("550 Requested action not taken: mailbox unavailable",),
            id="no-enhanced-mailbox-unavailable",
        ),
        pytest.param(("550 The mailbox u@x.test does not exist",), id="does-not-exist"),
    ],
)
def test_recipient_faults(lines: tuple[str, ...]) -> None:
    assert classify_fault(parse(*lines)) == (Fault.RECIPIENT, None)


# ---- neither -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(("250 2.0.0 OK  1700000000 a1si123 - gsmtp",), id="250-ok"),
        pytest.param(("250 2.1.5 Ok",), id="250-rcpt-ok"),
        pytest.param(("354 End data with <CR><LF>.<CR><LF>",), id="354"),
        pytest.param(("220 mx.x.test ESMTP Postfix",), id="220-greeting"),
        pytest.param(("221 2.0.0 Bye",), id="221"),
        pytest.param(("250-mx.x.test", "250-PIPELINING", "250 SIZE 10240000"), id="ehlo"),
        pytest.param(
            ("250 2.0.0 Ok: queued as 4ABC; spam score 0.1, not listed anywhere",),
            id="positive-reply-with-sender-words",
        ),
        pytest.param(
            ("550 5.7.1 <u@x.test>: Relay access denied",), id="relay-access-denied"
        ),
        pytest.param(("451 4.3.0 Temporary System Problem. Try again later",), id="451-4.3.0"),
        pytest.param(("452 4.5.3 Too many recipients",), id="452-4.5.3-not-a-policy-code"),
        pytest.param(("554 5.6.0 Message content rejected",), id="554-5.6.0"),
        pytest.param(("550 5.7.1 <u@x.test>: Recipient address rejected: Access denied",),
                     id="policy-without-telling-words"),
        pytest.param(("451 Temporary local problem - please try later",), id="exim-451"),
        pytest.param(("550 Administrative prohibition",), id="exim-admin-prohibition"),
        pytest.param(("552 5.3.4 Message size exceeds fixed limit",), id="552-5.3.4"),
        pytest.param(
            ("554 5.7.1 <u@x.test>: Recipient address rejected: user is on vacation",),
            id="5.7.1-recipient-words-are-not-addressing",
        ),
    ],
)
def test_neither_recipient_nor_sender(lines: tuple[str, ...]) -> None:
    assert classify_fault(parse(*lines)) == (Fault.UNKNOWN, None)


def test_no_reply_is_unknown() -> None:
    assert classify_fault(None) == (Fault.UNKNOWN, None)


def test_no_such_user_words_need_a_55x_code() -> None:
    """Without an enhanced code, only 550/551/553 with no-such-user words blame the
    recipient; a 4xx with those words is a temporary lookup trouble, not a bounce."""
    assert classify_fault(parse("450 user unknown")) == (Fault.UNKNOWN, None)
    assert classify_fault(parse("550 user unknown")) == (Fault.RECIPIENT, None)


# ---- properties ----------------------------------------------------------------------

_WORDS = st.sampled_from(
    [
        "user unknown", "listed", "spamhaus", "SPF", "DKIM", "DMARC", "PTR", "rate limit",
        "too many connections", "unsolicited", "mailbox full", "ok", "queued", "", " ",
    ]
)
_TEXT = st.lists(st.one_of(_WORDS, st.text(max_size=12)), max_size=6).map(" ".join)
_ENHANCED = st.one_of(
    st.none(),
    st.builds(
        EnhancedStatus,
        st.sampled_from([2, 4, 5]),
        st.integers(0, 9),
        st.one_of(st.integers(0, 30), st.sampled_from([515, 650, 606])),
    ),
)


@given(code=st.integers(200, 399), text=_TEXT, enhanced=_ENHANCED)
def test_positive_replies_are_never_faults(
    code: int, text: str, enhanced: EnhancedStatus | None
) -> None:
    assert classify_fault(Reply(code, (text,), enhanced)) == (Fault.UNKNOWN, None)


@given(code=st.integers(400, 599), text=_TEXT, enhanced=_ENHANCED)
def test_a_problem_comes_exactly_with_a_sender_fault(
    code: int, text: str, enhanced: EnhancedStatus | None
) -> None:
    fault, problem = classify_fault(Reply(code, (text,), enhanced))
    assert isinstance(fault, Fault)
    assert (fault is Fault.SENDER) == (problem is not None)


@given(
    code=st.sampled_from([450, 452, 550, 552, 554]),
    subject=st.sampled_from([1, 2]),
    detail=st.integers(0, 30),
    text=_TEXT,
)
def test_addressing_and_mailbox_codes_are_recipient_faults_whatever_the_words(
    code: int, subject: int, detail: int, text: str
) -> None:
    if subject == 1 and detail in (7, 8):
        return  # X.1.7 / X.1.8 are the sender's address: see the bug below
    enhanced = EnhancedStatus(code // 100, subject, detail)
    assert classify_fault(Reply(code, (text,), enhanced)) == (Fault.RECIPIENT, None)


# ---- misclassified real-world replies (bugs) -------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            "421 Too many concurrent SMTP connections from this IP address; please try "
            "again later.",
            id="exim-smtp_accept_max_per_host",
        ),
        pytest.param(
            "421 Too many concurrent SMTP connections; please try again later.",
            id="exim-smtp_accept_max",
        ),
        pytest.param(
            "421 4.3.2 The maximum number of concurrent connections has exceeded a limit, "
            "closing transmission channel",
            id="exchange-MaxInboundConnectionPerSource",
        ),
    ],
)
def test_bug_connection_limits_are_rate_limits(line: str) -> None:
    assert kind_of(parse(line)) == (Fault.SENDER, "rate-limit")


def test_bug_microsoft_banned_sending_ip_is_a_blocklist() -> None:
    reply = parse(
        "550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal "
        "from this list please visit https://sender.office.test/ and follow the directions."
    )
    assert kind_of(reply) == (Fault.SENDER, "blocklist")


def test_bug_microsoft_5_7_23_spf_violation() -> None:
    reply = parse("550 5.7.23 The message was rejected because of Sender Policy Framework "
                  "violation")
    assert kind_of(reply) == (Fault.SENDER, "spf")


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            "450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]",
            id="postfix-2.3-to-2.11",
        ),
        pytest.param(
            "450 Client host rejected: cannot find your hostname, [192.0.2.1]",
            id="postfix-2.1-no-enhanced",
        ),
    ],
)
def test_bug_postfix_cannot_find_your_hostname_is_reverse_dns(line: str) -> None:
    assert kind_of(parse(line)) == (Fault.SENDER, "reverse-dns")


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            "554 delivery error: dd This user doesn't have a yahoo.test account "
            "(u@yahoo.test) [0] - mta1.mail.yahoo.test",
            id="yahoo-554-dd-no-account",
        ),
        pytest.param(
            "552 1 Requested mail action aborted, mailbox not found",
            id="yahoo-552-mailbox-not-found",
        ),
    ],
)
def test_bug_yahoo_unknown_user_is_a_recipient_fault(line: str) -> None:
    assert classify_fault(parse(line)) == (Fault.RECIPIENT, None)


def test_bug_domino_not_listed_in_directory_is_a_recipient_fault() -> None:
    reply = parse("550 User u (u@x.test) not listed in Domino Directory")
    assert classify_fault(reply) == (Fault.RECIPIENT, None)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            "550 5.1.8 <news@sender.test>: Sender address rejected: Domain not found",
            id="postfix-5.1.8-unknown-sender-domain",
        ),
        pytest.param(
            "450 4.1.8 <news@sender.test>: Sender address rejected: Domain not found",
            id="postfix-4.1.8-unknown-sender-domain",
        ),
        pytest.param(
            "501 5.1.7 Bad sender address syntax",
            id="5.1.7-bad-sender-syntax",
        ),
    ],
)
def test_bug_sender_address_statuses_are_not_recipient_faults(line: str) -> None:
    fault, _ = classify_fault(parse(line))
    assert fault is not Fault.RECIPIENT
