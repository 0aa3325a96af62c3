"""The session state machine, as conversations with a scripted server."""

from __future__ import annotations

import pytest

from core.smtp import (
    Body,
    ClientSession,
    Closed,
    Event,
    Extensions,
    FailureKind,
    LocalProtocolError,
    Outcome,
    Phase,
    Ready,
    Reply,
    SessionConfig,
    SessionFailed,
    StartTLS,
    TLSPolicy,
    Transaction,
    TransactionDone,
    UnsafeArgumentError,
)
from core.smtp.extensions import NO_EXTENSIONS
from core.smtp.limits import BODY_CHUNK
from tests.unit.smtp_script import (
    BYE,
    GO_AHEAD,
    GREETING,
    HELO_NAME,
    OK,
    PLAIN,
    QUEUED,
    SENDER,
    Conversation,
    as_done,
    ehlo_reply,
    outcomes,
    ready,
    reply,
    streamed,
    txn,
)

A, B, C = "a@dest.test", "b@dest.test", "c@dest.test"
BODY = b"Subject: hi\r\n\r\nHello.\r\n"
MAIL = f"MAIL FROM:<{SENDER}>\r\n".encode()


def rcpt(address: str) -> bytes:
    return f"RCPT TO:<{address}>\r\n".encode()


def failed(events: list[Event], kind: FailureKind, phase: Phase) -> SessionFailed:
    failures = [e for e in events if isinstance(e, SessionFailed)]
    assert len(failures) == 1, events
    assert (failures[0].kind, failures[0].phase) == (kind, phase), failures[0]
    return failures[0]


def finish(conv: Conversation) -> None:
    """The session quits politely and closes."""
    conv.session.quit()
    assert conv.client() == b"QUIT\r\n"
    assert conv.phase is Phase.QUIT
    assert conv.server(BYE) == [Closed()]
    assert conv.session.closed


# ---- greeting and EHLO -----------------------------------------------------------------


def test_nothing_is_sent_before_the_greeting() -> None:
    conv = Conversation()
    assert conv.client() == b""
    assert conv.phase is Phase.GREETING
    assert conv.events() == []


def test_greeting_then_ehlo_then_ready() -> None:
    conv = Conversation()
    assert conv.server(b"220-mx.test ESMTP\r\n220 no UCE\r\n") == []
    assert conv.client() == b"EHLO client.test\r\n"
    assert conv.phase is Phase.EHLO
    (event,) = conv.server(ehlo_reply("PIPELINING", "SIZE 1000", "8BITMIME"))
    assert isinstance(event, Ready)
    assert event.extensions.pipelining and event.extensions.size_limit == 1000
    assert conv.session.extensions == event.extensions
    assert conv.phase is Phase.READY
    assert conv.client() == b""
    finish(conv)


def test_a_bad_helo_name_is_refused_before_anything_starts() -> None:
    with pytest.raises(UnsafeArgumentError):
        ClientSession(SessionConfig("client.test\r\nMAIL FROM:<x@y.test>"))


@pytest.mark.parametrize("code", [554, 550, 450, 452])
def test_greeting_refused_fails_then_quits(code: int) -> None:
    conv = Conversation()
    events = conv.server(reply(code, "go away"))
    failure = failed(events, FailureKind.REJECTED, Phase.GREETING)
    assert failure.reply == Reply(code, ("go away",))
    assert conv.client() == b"QUIT\r\n"
    assert conv.server(BYE) == [Closed()]
    assert conv.session.closed


def test_greeting_421_fails_and_closes_without_quit() -> None:
    conv = Conversation()
    events = conv.server(reply(421, "mx.test too busy"))
    failed(events, FailureKind.REJECTED, Phase.GREETING)
    assert events[-1] == Closed()
    assert conv.client() == b""
    assert conv.session.closed


@pytest.mark.parametrize("code", [500, 502])
def test_ehlo_unknown_falls_back_to_helo(code: int) -> None:
    conv = Conversation()
    conv.server(GREETING)
    conv.client()
    assert conv.server(reply(code, "5.5.1 Unrecognized command")) == []
    assert conv.client() == b"HELO client.test\r\n"
    assert conv.phase is Phase.HELO
    assert conv.server(reply(250, "mx.test")) == [Ready(NO_EXTENSIONS)]
    assert not conv.session.extensions.esmtp


@pytest.mark.parametrize("code", [501, 504, 550, 554, 451])
def test_other_ehlo_failures_are_rejected_without_helo(code: int) -> None:
    conv = Conversation()
    conv.server(GREETING)
    conv.client()
    events = conv.server(reply(code, "no"))
    failed(events, FailureKind.REJECTED, Phase.EHLO)
    assert conv.client() == b"QUIT\r\n"


def test_helo_refused_is_rejected() -> None:
    conv = Conversation()
    conv.server(GREETING)
    conv.client()
    conv.server(reply(502, "no EHLO"))
    assert conv.client() == b"HELO client.test\r\n"
    failed(conv.server(reply(550, "no HELO either")), FailureKind.REJECTED, Phase.HELO)
    assert conv.client() == b"QUIT\r\n"


def test_replies_that_arrive_before_their_command_was_handed_out_are_a_protocol_error() -> None:
    conv = Conversation()
    events = conv.server(GREETING + ehlo_reply("PIPELINING"))  # EHLO was never taken
    failure = failed(events, FailureKind.PROTOCOL, Phase.GREETING)
    assert "before the command was sent" in failure.detail
    assert conv.session.closed
    assert conv.client() == b""


def test_pregreeting_after_the_greeting_is_a_protocol_error() -> None:
    conv = Conversation()
    conv.server(GREETING)
    events = conv.server(reply(250, "hello early"))
    failed(events, FailureKind.PROTOCOL, Phase.GREETING)


def test_quit_before_ready_quits_once_greeted() -> None:
    conv = Conversation()
    conv.session.quit()
    conv.session.quit()  # a second call changes nothing
    conv.server(GREETING)
    assert conv.client() == b"EHLO client.test\r\n"
    assert conv.server(ehlo_reply()) == []
    assert conv.client() == b"QUIT\r\n"
    assert conv.server(BYE) == [Closed()]


# ---- STARTTLS ---------------------------------------------------------------------------


def greeted(config: SessionConfig, *keywords: str) -> tuple[Conversation, list[Event]]:
    conv = Conversation(config)
    conv.server(GREETING)
    assert conv.client() == b"EHLO client.test\r\n"
    return conv, conv.server(ehlo_reply(*keywords))


MAY = SessionConfig(HELO_NAME, tls=TLSPolicy.MAY)
REQUIRE = SessionConfig(HELO_NAME, tls=TLSPolicy.REQUIRE)


@pytest.mark.parametrize("config", [MAY, REQUIRE])
def test_starttls_when_offered_then_ehlo_again(config: SessionConfig) -> None:
    conv, events = greeted(config, "PIPELINING", "STARTTLS")
    assert events == []
    assert conv.client() == b"STARTTLS\r\n"
    assert conv.phase is Phase.STARTTLS
    assert conv.server(reply(220, "2.0.0 Ready to start TLS")) == [StartTLS()]
    assert conv.phase is Phase.TLS_HANDSHAKE
    assert conv.client() == b""  # nothing may be written before the handshake
    assert not conv.session.tls_active
    conv.session.tls_established()
    assert conv.session.tls_active
    assert conv.session.extensions == NO_EXTENSIONS  # forgotten until the server says again
    assert conv.client() == b"EHLO client.test\r\n"
    (event,) = conv.server(ehlo_reply("PIPELINING", "STARTTLS", "AUTH PLAIN"))
    assert isinstance(event, Ready)
    assert event.extensions.auth_mechanisms == frozenset({"PLAIN"})
    assert conv.client() == b""  # no second STARTTLS, even though offered again
    finish(conv)


def test_tls_off_never_sends_starttls() -> None:
    conv, events = greeted(PLAIN, "STARTTLS", "PIPELINING")
    assert len(events) == 1 and isinstance(events[0], Ready)
    assert conv.client() == b""
    assert not conv.session.tls_active


def test_tls_may_without_starttls_goes_on_in_plaintext() -> None:
    _, events = greeted(MAY, "PIPELINING")
    assert len(events) == 1 and isinstance(events[0], Ready)


def test_tls_require_without_starttls_fails_then_quits() -> None:
    conv, events = greeted(REQUIRE, "PIPELINING")
    failure = failed(events, FailureKind.TLS, Phase.STARTTLS)
    assert "does not offer STARTTLS" in failure.detail
    assert conv.client() == b"QUIT\r\n"
    assert conv.server(BYE) == [Closed()]


def test_tls_may_refused_goes_on_in_plaintext() -> None:
    conv, _ = greeted(MAY, "PIPELINING", "STARTTLS")
    conv.client()
    (event,) = conv.server(reply(454, "4.7.0 TLS not available"))
    assert isinstance(event, Ready) and event.extensions.pipelining
    assert not conv.session.tls_active


def test_tls_require_refused_fails_then_quits() -> None:
    conv, _ = greeted(REQUIRE, "STARTTLS")
    conv.client()
    events = conv.server(reply(454, "4.7.0 TLS not available"))
    failure = failed(events, FailureKind.TLS, Phase.STARTTLS)
    assert failure.reply is not None and failure.reply.code == 454
    assert conv.client() == b"QUIT\r\n"


def test_plaintext_after_the_starttls_reply_in_the_same_read_is_refused() -> None:
    conv, _ = greeted(MAY, "STARTTLS")
    conv.client()
    events = conv.server(reply(220, "go ahead") + b"250-injected\r\n")
    assert not any(isinstance(e, StartTLS) for e in events)
    failure = failed(events, FailureKind.PROTOCOL, Phase.TLS_HANDSHAKE)
    assert "STARTTLS" in failure.detail
    assert conv.session.closed
    with pytest.raises(LocalProtocolError):
        conv.session.tls_established()


@pytest.mark.parametrize("late", [b"2", b"250-injected\r\n", b"250 injected\r\n"])
def test_plaintext_after_the_starttls_reply_in_a_later_read_is_refused(late: bytes) -> None:
    # CVE-2011-0411: whatever arrives between the 220 and the handshake must never be
    # read as if it had come over TLS, however the bytes were split.
    conv, _ = greeted(MAY, "STARTTLS")
    conv.client()
    assert conv.server(reply(220, "go ahead")) == [StartTLS()]
    events = conv.server(late)
    failed(events, FailureKind.PROTOCOL, Phase.TLS_HANDSHAKE)
    assert conv.session.closed


def test_tls_established_outside_a_handshake_is_our_bug() -> None:
    conv = ready()
    with pytest.raises(LocalProtocolError):
        conv.session.tls_established()


def test_tls_handshake_failure() -> None:
    conv, _ = greeted(REQUIRE, "STARTTLS")
    conv.client()
    conv.server(reply(220, "go ahead"))
    conv.session.tls_failed("certificate verify failed")
    events = conv.events()
    failure = failed(events, FailureKind.TLS, Phase.TLS_HANDSHAKE)
    assert "certificate verify failed" in failure.detail
    assert events[-1] == Closed()
    assert conv.client() == b""


def test_ehlo_refused_after_tls() -> None:
    conv, _ = greeted(MAY, "STARTTLS")
    conv.client()
    conv.server(reply(220, "go ahead"))
    conv.session.tls_established()
    conv.client()
    failed(conv.server(reply(554, "no")), FailureKind.REJECTED, Phase.EHLO)


# ---- transactions with PIPELINING -----------------------------------------------------


def test_pipelined_transaction_sends_envelope_in_one_batch() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B, body=BODY))
    assert conv.batch() == [MAIL, rcpt(A), rcpt(B), b"DATA\r\n"]
    assert conv.phase is Phase.MAIL
    assert conv.server(OK + reply(250, "2.1.5 Ok")) == []
    assert conv.phase is Phase.RCPT
    assert conv.server(reply(550, "5.1.1 <b@dest.test>: unknown user")) == []
    assert conv.phase is Phase.DATA
    assert conv.server(GO_AHEAD) == []
    assert conv.batch() == [BODY, b".\r\n"]
    assert conv.phase is Phase.END_OF_DATA
    done, again = conv.server(QUEUED)
    assert outcomes(done) == [(A, Outcome.ACCEPTED), (B, Outcome.PERMANENT)]
    assert isinstance(done, TransactionDone)
    accepted, refused = as_done(done).results
    assert accepted.stage is Phase.END_OF_DATA and accepted.reply is not None
    assert accepted.reply.code == 250
    assert refused.stage is Phase.RCPT and refused.reply is not None
    assert refused.reply.code == 550 and str(refused.reply.enhanced) == "5.1.1"
    assert again == Ready(conv.session.extensions)
    finish(conv)


def test_pipelined_body_end_marker_and_next_envelope_share_one_batch() -> None:
    conv = ready("PIPELINING")
    first, second = txn(A, body=b"one\r\n"), txn(B, C, body=b"two\r\n")
    conv.session.submit(first)
    conv.session.submit(second)
    assert conv.batch() == [MAIL, rcpt(A), b"DATA\r\n"]
    assert conv.server(OK + OK + GO_AHEAD) == []
    assert conv.batch() == [b"one\r\n", b".\r\n", MAIL, rcpt(B), rcpt(C), b"DATA\r\n"]
    (done,) = conv.server(QUEUED)
    assert isinstance(done, TransactionDone) and done.transaction is first
    assert conv.server(OK + OK + OK + GO_AHEAD) == []
    assert conv.batch() == [b"two\r\n", b".\r\n"]
    done, again = conv.server(QUEUED)
    assert isinstance(done, TransactionDone) and done.transaction is second
    assert outcomes(done) == [(B, Outcome.ACCEPTED), (C, Outcome.ACCEPTED)]
    assert isinstance(again, Ready)


def test_all_replies_of_a_pipelined_group_in_one_read() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    assert conv.server(OK + OK + OK + GO_AHEAD) == []
    conv.client()
    done, _ = conv.server(QUEUED)
    assert outcomes(done) == [(A, Outcome.ACCEPTED), (B, Outcome.ACCEPTED)]


def test_pipelined_mail_refused_decides_for_every_recipient() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    bad = reply(553, "5.7.1 sender rejected")
    events = conv.server(bad + reply(503, "5.5.1 need MAIL") * 2 + reply(554, "5.5.1 no rcpt"))
    done, again = events
    assert outcomes(done) == [(A, Outcome.PERMANENT), (B, Outcome.PERMANENT)]
    assert all(r.stage is Phase.MAIL and r.reply is not None and r.reply.code == 553
               for r in as_done(done).results)
    assert isinstance(again, Ready)
    assert conv.client() == b""  # no RSET: there is no transaction to reset


def test_pipelined_mail_greylisted_decides_for_every_recipient() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    grey = reply(451, "4.7.1 Greylisted, try again in 60 seconds")
    done, _ = conv.server(grey + reply(503, "no") * 2 + reply(503, "no"))
    assert {(r.outcome, r.retry_after) for r in as_done(done).results} == {
        (Outcome.GREYLISTED, 60.0)
    }


def test_pipelined_mail_refused_but_data_accepted_sends_an_empty_message() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.client()
    assert conv.server(reply(550, "no") + reply(503, "no") + GO_AHEAD) == []
    assert conv.client() == b".\r\n"
    (done,) = conv.server(reply(554, "5.5.1 no valid recipients"))
    assert outcomes(done) == [(A, Outcome.PERMANENT)]
    assert conv.client() == b"RSET\r\n"
    assert conv.phase is Phase.RSET
    assert conv.server(OK) == [Ready(conv.session.extensions)]


def test_pipelined_all_recipients_refused_then_rset() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    events = conv.server(OK + reply(550, "no A") + reply(450, "4.2.1 busy B")
                         + reply(554, "5.5.1 Error: no valid recipients"))
    (done,) = events
    assert outcomes(done) == [(A, Outcome.PERMANENT), (B, Outcome.TRANSIENT)]
    assert conv.client() == b"RSET\r\n"
    assert conv.server(OK) == [Ready(conv.session.extensions)]


def test_pipelined_no_recipient_but_354_sends_only_the_end_marker() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.client()
    assert conv.server(OK + reply(550, "no") + GO_AHEAD) == []
    assert conv.client() == b".\r\n"  # RFC 2920 §3.1: an empty message, not the body
    (done,) = conv.server(reply(554, "no valid recipients"))
    assert outcomes(done) == [(A, Outcome.PERMANENT)]
    assert as_done(done).results[0].stage is Phase.RCPT
    assert conv.client() == b"RSET\r\n"


@pytest.mark.parametrize(
    ("code", "text", "outcome"),
    [(451, "4.3.0 local error", Outcome.TRANSIENT), (554, "5.5.1 no", Outcome.PERMANENT)],
)
def test_data_refused_decides_for_the_accepted_recipients(
    code: int, text: str, outcome: Outcome
) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    (done,) = conv.server(OK + OK + reply(550, "5.1.1 unknown") + reply(code, text))
    assert outcomes(done) == [(A, outcome), (B, Outcome.PERMANENT)]
    assert as_done(done).results[0].stage is Phase.DATA
    assert as_done(done).results[1].stage is Phase.RCPT
    assert conv.client() == b"RSET\r\n"
    assert conv.server(OK) == [Ready(conv.session.extensions)]


@pytest.mark.parametrize(
    ("final", "outcome", "retry"),
    [
        (reply(250, "2.0.0 Ok: queued"), Outcome.ACCEPTED, None),
        (reply(554, "5.7.1 spam"), Outcome.PERMANENT, None),
        (reply(452, "4.3.1 storage"), Outcome.TRANSIENT, None),
        (reply(451, "4.7.1 greylisted, retry in 5 minutes"), Outcome.GREYLISTED, 300.0),
    ],
)
def test_end_of_data_reply_decides_for_the_accepted(
    final: bytes, outcome: Outcome, retry: float | None
) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    conv.server(OK + OK + OK + GO_AHEAD)
    conv.client()
    done, again = conv.server(final)
    assert outcomes(done) == [(A, outcome), (B, outcome)]
    assert {(r.stage, r.retry_after) for r in as_done(done).results} == {
        (Phase.END_OF_DATA, retry)
    }
    assert isinstance(again, Ready)
    assert conv.client() == b""  # the transaction is over either way: no RSET


def test_rset_refused_makes_the_server_unusable() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.client()
    conv.server(OK + reply(550, "no") + reply(554, "no"))
    assert conv.client() == b"RSET\r\n"
    later = txn(B)
    conv.session.submit(later)
    assert conv.server(reply(500, "what")) == []
    assert conv.client() == b"QUIT\r\n"
    assert conv.server(BYE) == [Closed()]
    assert conv.session.unstarted() == [later]
    assert conv.session.unstarted() == []


def test_submit_after_quit_is_refused() -> None:
    conv = ready()
    conv.session.quit()
    with pytest.raises(LocalProtocolError):
        conv.session.submit(txn(A))


def test_submit_before_ready_waits_for_the_greeting() -> None:
    conv = Conversation()
    conv.session.submit(txn(A))
    assert conv.client() == b""
    conv.server(GREETING)
    conv.client()
    assert conv.server(ehlo_reply("PIPELINING")) == []  # no Ready: work was waiting
    assert conv.client() == MAIL + rcpt(A) + b"DATA\r\n"


def test_quit_waits_for_queued_transactions() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.session.quit()
    assert conv.client() == MAIL + rcpt(A) + b"DATA\r\n"
    conv.server(OK + OK + GO_AHEAD)
    assert conv.client().endswith(b".\r\n")
    (done,) = conv.server(QUEUED)
    assert outcomes(done) == [(A, Outcome.ACCEPTED)]
    assert conv.client() == b"QUIT\r\n"
    assert conv.server(BYE) == [Closed()]


def test_a_reply_before_a_pipelined_group_was_handed_out_is_a_protocol_error() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    events = conv.server(OK)
    assert outcomes(events[0]) == [(A, Outcome.UNATTEMPTED), (B, Outcome.UNATTEMPTED)]
    failed(events, FailureKind.PROTOCOL, Phase.MAIL)
    assert events[-1] == Closed()


def test_the_end_of_data_may_not_be_answered_before_it_was_handed_out() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, body=streamed([b"body\r\n"])))
    conv.client()
    conv.server(OK + OK + GO_AHEAD)
    # The body and the end marker are queued, not written; the server answers anyway.
    events = conv.server(QUEUED)
    assert outcomes(events[0]) == [(A, Outcome.TRANSIENT)]
    failed(events, FailureKind.PROTOCOL, Phase.BODY)


# ---- transactions without PIPELINING ---------------------------------------------------


@pytest.mark.parametrize(
    ("config", "keywords"),
    [(PLAIN, ("8BITMIME",)),
     (SessionConfig(HELO_NAME, tls=TLSPolicy.OFF, pipelining=False), ("PIPELINING",))],
)
def test_lock_step_sends_one_command_at_a_time(
    config: SessionConfig, keywords: tuple[str, ...]
) -> None:
    conv = ready(*keywords, config=config)
    conv.session.submit(txn(A, B, C, body=BODY))
    assert conv.batch() == [MAIL]
    assert conv.server(OK) == []
    assert conv.batch() == [rcpt(A)]
    assert conv.server(OK) == []
    assert conv.batch() == [rcpt(B)]
    assert conv.server(reply(550, "unknown")) == []
    assert conv.batch() == [rcpt(C)]
    assert conv.server(reply(251, "will forward")) == []
    assert conv.batch() == [b"DATA\r\n"]
    assert conv.server(GO_AHEAD) == []
    assert conv.batch() == [BODY, b".\r\n"]
    done, again = conv.server(QUEUED)
    assert outcomes(done) == [(A, Outcome.ACCEPTED), (B, Outcome.PERMANENT),
                              (C, Outcome.ACCEPTED)]
    assert isinstance(again, Ready)


def test_lock_step_mail_refused_sends_no_rcpt_and_goes_on() -> None:
    conv = ready()
    conv.session.submit(txn(A, B))
    conv.session.submit(txn(C))
    assert conv.client() == MAIL
    (done,) = conv.server(reply(550, "5.7.1 sender blocked"))
    assert outcomes(done) == [(A, Outcome.PERMANENT), (B, Outcome.PERMANENT)]
    assert conv.client() == MAIL  # the next transaction, no RSET
    conv.server(OK)
    assert conv.client() == rcpt(C)


def test_lock_step_all_recipients_refused_resets_without_data() -> None:
    conv = ready()
    conv.session.submit(txn(A, B))
    conv.client()
    conv.server(OK)
    conv.client()
    conv.server(reply(550, "no"))
    assert conv.client() == rcpt(B)
    (done,) = conv.server(reply(450, "4.2.0 busy"))
    assert outcomes(done) == [(A, Outcome.PERMANENT), (B, Outcome.TRANSIENT)]
    assert conv.client() == b"RSET\r\n"
    assert conv.server(OK) == [Ready(conv.session.extensions)]


def test_lock_step_data_refused_resets() -> None:
    conv = ready()
    conv.session.submit(txn(A))
    for step in (OK, OK):
        conv.client()
        conv.server(step)
    assert conv.client() == b"DATA\r\n"
    (done,) = conv.server(reply(554, "5.7.0 no"))
    assert outcomes(done) == [(A, Outcome.PERMANENT)]
    assert conv.client() == b"RSET\r\n"


def test_lock_step_transactions_follow_each_other() -> None:
    conv = ready()
    for address in (A, B):
        conv.session.submit(txn(address, body=b"x\r\n"))
    for address in (A, B):
        assert conv.client() == MAIL
        conv.server(OK)
        assert conv.client() == rcpt(address)
        conv.server(OK)
        assert conv.client() == b"DATA\r\n"
        conv.server(GO_AHEAD)
        assert conv.client() == b"x\r\n.\r\n"
        events = conv.server(QUEUED)
        assert outcomes(events[0]) == [(address, Outcome.ACCEPTED)]
    assert isinstance(events[-1], Ready)


# ---- what the server can take: SIZE, 8BITMIME, SMTPUTF8 --------------------------------


def mail_line(conv: Conversation, transaction: Transaction) -> bytes:
    conv.session.submit(transaction)
    return conv.batch()[0]


def test_size_param_only_when_advertised() -> None:
    body = Body.from_bytes(BODY)
    assert mail_line(ready("SIZE 1000"), txn(A, body=body)) == (
        f"MAIL FROM:<{SENDER}> SIZE={body.size}\r\n".encode()
    )
    assert mail_line(ready("SIZE"), txn(A, body=body)).endswith(f"SIZE={body.size}\r\n".encode())
    assert mail_line(ready(), txn(A, body=body)) == MAIL


def test_8bitmime_only_when_advertised_and_needed() -> None:
    eight = "Grüße\r\n".encode()
    assert mail_line(ready("8BITMIME"), txn(A, body=eight)).endswith(b" BODY=8BITMIME\r\n")
    assert mail_line(ready("8BITMIME"), txn(A, body=b"plain\r\n")) == MAIL
    assert mail_line(ready(), txn(A, body=eight)) == MAIL


def test_null_sender() -> None:
    assert mail_line(ready(), txn(A, sender="")) == b"MAIL FROM:<>\r\n"


def test_message_over_the_size_limit_is_refused_locally() -> None:
    conv = ready("PIPELINING", "SIZE 100")
    big = Body.from_bytes(b"x" * 200 + b"\r\n")
    conv.session.submit(txn(A, B, body=big))
    done, again = conv.events()
    assert outcomes(done) == [(A, Outcome.PERMANENT), (B, Outcome.PERMANENT)]
    assert all("SIZE" in r.reason and r.reply is None for r in as_done(done).results)
    assert isinstance(again, Ready)
    assert conv.client() == b""  # no MAIL at all


def test_size_limit_zero_means_no_limit() -> None:
    conv = ready("SIZE 0")
    big = Body.from_bytes(b"x" * 900 + b"\r\n")
    assert mail_line(conv, txn(A, body=big)) == f"MAIL FROM:<{SENDER}> SIZE=902\r\n".encode()


def test_smtputf8_param_only_when_advertised_and_needed() -> None:
    assert mail_line(ready("SMTPUTF8"), txn(A)) == MAIL
    assert mail_line(ready("SMTPUTF8"), txn("jürgen@dest.test")).endswith(b" SMTPUTF8\r\n")
    assert mail_line(ready("SMTPUTF8"), txn(A, needs_smtputf8=True)).endswith(b" SMTPUTF8\r\n")
    assert mail_line(ready("SMTPUTF8"), txn(A, sender="зоя@origin.test")).endswith(
        b" SMTPUTF8\r\n"
    )


def test_non_ascii_recipient_without_smtputf8_is_refused_for_that_recipient_only() -> None:
    conv = ready("PIPELINING")
    wide = "jürgen@dest.test"
    conv.session.submit(txn(A, wide, B))
    assert conv.client() == MAIL + rcpt(A) + rcpt(B) + b"DATA\r\n"  # no SMTPUTF8
    conv.server(OK + OK + OK + GO_AHEAD)
    conv.client()
    done, _ = conv.server(QUEUED)
    assert outcomes(done) == [(A, Outcome.ACCEPTED), (wide, Outcome.PERMANENT),
                              (B, Outcome.ACCEPTED)]
    refused = as_done(done).results[1]
    assert "SMTPUTF8" in refused.reason and "internationalised address" in refused.reason
    assert refused.reply is None


def test_lock_step_skips_the_refused_non_ascii_recipient() -> None:
    conv = ready()
    conv.session.submit(txn("ü@dest.test", A))
    conv.client()
    conv.server(OK)
    assert conv.client() == rcpt(A)


def test_only_non_ascii_recipients_without_smtputf8_send_nothing() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn("ü@dest.test", "é@dest.test"))
    done, again = conv.events()
    assert outcomes(done) == [("ü@dest.test", Outcome.PERMANENT),
                              ("é@dest.test", Outcome.PERMANENT)]
    assert isinstance(again, Ready)
    assert conv.client() == b""


@pytest.mark.parametrize(
    "transaction",
    [txn(A, B, sender="зоя@origin.test"), txn(A, B, needs_smtputf8=True)],
)
def test_message_needing_smtputf8_is_refused_as_a_whole(transaction: Transaction) -> None:
    conv = ready("PIPELINING", "8BITMIME")
    conv.session.submit(transaction)
    done, _ = conv.events()
    assert outcomes(done) == [(A, Outcome.PERMANENT), (B, Outcome.PERMANENT)]
    assert all("SMTPUTF8" in r.reason and "sender address or headers" in r.reason
               for r in as_done(done).results)
    assert conv.client() == b""


def test_a_locally_refused_transaction_does_not_hold_up_the_next() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, needs_smtputf8=True))
    conv.events()
    conv.session.submit(txn(B))
    assert conv.client() == MAIL + rcpt(B) + b"DATA\r\n"


def test_locally_refused_transaction_behind_a_pipelined_one() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.session.submit(txn(B, needs_smtputf8=True))
    conv.client()
    (refused,) = conv.server(OK + OK + GO_AHEAD)
    assert outcomes(refused) == [(B, Outcome.PERMANENT)]
    assert conv.client().endswith(b".\r\n")
    done, again = conv.server(QUEUED)
    assert outcomes(done) == [(A, Outcome.ACCEPTED)]
    assert isinstance(again, Ready)


# ---- 421: the server is closing -------------------------------------------------------


def test_421_to_mail_leaves_every_recipient_unattempted() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    events = conv.server(reply(421, "4.3.2 shutting down"))
    assert outcomes(events[0]) == [(A, Outcome.UNATTEMPTED), (B, Outcome.UNATTEMPTED)]
    failure = failed(events, FailureKind.REJECTED, Phase.MAIL)
    assert failure.reply is not None and failure.reply.code == 421
    assert events[-1] == Closed()
    assert conv.client() == b""  # no QUIT after 421


def test_421_to_a_recipient() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B, C))
    conv.client()
    events = conv.server(OK + OK + reply(421, "4.4.2 timeout"))
    done = events[0]
    assert outcomes(done) == [(A, Outcome.TRANSIENT), (B, Outcome.TRANSIENT),
                              (C, Outcome.UNATTEMPTED)]
    assert as_done(done).results[1].reply is not None
    assert as_done(done).results[0].reply is None
    failed(events, FailureKind.REJECTED, Phase.RCPT)
    assert conv.session.closed


@pytest.mark.parametrize("stage", [Phase.DATA, Phase.END_OF_DATA])
def test_421_to_data_or_end_of_data_decides_for_the_accepted(stage: Phase) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    if stage is Phase.DATA:
        events = conv.server(OK + OK + reply(550, "no") + reply(421, "bye"))
    else:
        conv.server(OK + OK + reply(550, "no") + GO_AHEAD)
        conv.client()
        events = conv.server(reply(421, "bye"))
    assert outcomes(events[0]) == [(A, Outcome.TRANSIENT), (B, Outcome.PERMANENT)]
    assert as_done(events[0]).results[0].stage is stage
    failed(events, FailureKind.REJECTED, stage)


def test_421_after_an_empty_message_was_sent() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.client()
    conv.server(OK + reply(550, "no") + GO_AHEAD)
    assert conv.client() == b".\r\n"
    events = conv.server(reply(421, "bye"))
    assert outcomes(events[0]) == [(A, Outcome.PERMANENT)]
    failed(events, FailureKind.REJECTED, Phase.END_OF_DATA)


def test_421_to_a_pipelined_group_whose_mail_failed() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.client()
    events = conv.server(reply(550, "no") + reply(421, "bye"))
    assert outcomes(events[0]) == [(A, Outcome.PERMANENT)]
    assert as_done(events[0]).results[0].stage is Phase.MAIL


@pytest.mark.parametrize("phase", [Phase.EHLO, Phase.RSET])
def test_421_to_connection_commands(phase: Phase) -> None:
    conv = Conversation()
    conv.server(GREETING)
    conv.client()
    if phase is Phase.RSET:
        conv.server(ehlo_reply("PIPELINING"))
        conv.session.submit(txn(A))
        conv.client()
        conv.server(OK + reply(550, "no") + reply(554, "no"))
        assert conv.client() == b"RSET\r\n"
    events = conv.server(reply(421, "4.3.2 going down"))
    failed(events, FailureKind.REJECTED, phase)
    assert events[-1] == Closed()


def test_421_to_quit_is_just_goodbye() -> None:
    conv = ready()
    conv.session.quit()
    conv.client()
    assert conv.server(reply(421, "bye anyway")) == [Closed()]


def test_unsolicited_421_while_idle_closes_as_rejected() -> None:
    # RFC 5321 §3.8: a server shutting down may send 421 without waiting for a command.
    conv = ready("PIPELINING")
    events = conv.server(reply(421, "4.4.2 mx.test Error: timeout exceeded"))
    failure = failed(events, FailureKind.REJECTED, Phase.READY)
    assert failure.reply is not None and failure.reply.code == 421
    assert events[-1] == Closed()


def test_unsolicited_421_while_the_body_is_queued() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, body=streamed([b"body\r\n"])))
    conv.client()
    conv.server(OK + OK + GO_AHEAD)
    events = conv.server(reply(421, "shutting down"))
    assert outcomes(events[0]) == [(A, Outcome.TRANSIENT)]
    failed(events, FailureKind.REJECTED, Phase.BODY)


# ---- the connection breaks or times out, in each phase ----------------------------------


def lose(conv: Conversation, how: str) -> list[Event]:
    if how == "closed":
        conv.session.connection_lost("reset by peer")
    else:
        conv.session.timed_out()
    return conv.events()


KIND = {"closed": FailureKind.CLOSED, "timeout": FailureKind.TIMEOUT}
HOW = pytest.mark.parametrize("how", ["closed", "timeout"])


@HOW
def test_lost_while_waiting_for_the_greeting(how: str) -> None:
    conv = Conversation()
    events = lose(conv, how)
    failure = failed(events, KIND[how], Phase.GREETING)
    assert "greeting" in failure.detail
    assert events[-1] == Closed()
    assert conv.session.closed


@HOW
def test_lost_while_waiting_for_ehlo(how: str) -> None:
    conv = Conversation()
    conv.server(GREETING)
    conv.client()
    failed(lose(conv, how), KIND[how], Phase.EHLO)


@HOW
def test_lost_while_idle(how: str) -> None:
    conv = ready()
    failed(lose(conv, how), KIND[how], Phase.READY)


@HOW
def test_lost_before_any_rcpt_reply_leaves_everyone_unattempted(how: str) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    events = lose(conv, how)
    assert outcomes(events[0]) == [(A, Outcome.UNATTEMPTED), (B, Outcome.UNATTEMPTED)]
    assert all(r.reply is None and r.reason for r in as_done(events[0]).results)
    failed(events, KIND[how], Phase.MAIL)


@HOW
def test_lost_between_rcpt_replies(how: str) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B, C))
    conv.client()
    conv.server(OK + OK + reply(550, "no"))
    events = lose(conv, how)
    assert outcomes(events[0]) == [(A, Outcome.TRANSIENT), (B, Outcome.PERMANENT),
                                   (C, Outcome.UNATTEMPTED)]
    failed(events, KIND[how], Phase.RCPT)


@HOW
def test_lost_while_waiting_for_the_data_reply(how: str) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    conv.server(OK + OK + reply(450, "busy"))
    events = lose(conv, how)
    assert outcomes(events[0]) == [(A, Outcome.TRANSIENT), (B, Outcome.TRANSIENT)]
    assert as_done(events[0]).results[0].stage is Phase.DATA
    assert as_done(events[0]).results[1].reply is not None  # B's own reply decided it
    failed(events, KIND[how], Phase.DATA)


@HOW
def test_lost_after_354_before_the_body_was_handed_out(how: str) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.client()
    conv.server(OK + OK + GO_AHEAD)
    events = lose(conv, how)
    assert outcomes(events[0]) == [(A, Outcome.TRANSIENT)]


@HOW
def test_lost_while_a_streamed_body_is_half_sent(how: str) -> None:
    conv = ready("PIPELINING")
    body = streamed([b"0123456789\r\n"] * 5, size=60)
    conv.session.submit(txn(A, body=body))
    conv.client()
    conv.server(OK + OK + GO_AHEAD)
    conv.limit = 10
    assert conv.client() == b"0123456789\r\n"
    assert conv.phase is Phase.BODY
    events = lose(conv, how)
    assert outcomes(events[0]) == [(A, Outcome.TRANSIENT)]
    assert as_done(events[0]).results[0].stage is Phase.BODY
    failed(events, KIND[how], Phase.BODY)


@HOW
def test_lost_after_the_end_of_data_went_out_is_ambiguous(how: str) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.session.submit(txn(C))
    conv.client()
    conv.server(OK + OK + reply(550, "no") + GO_AHEAD)
    assert conv.client().endswith(b".\r\n" + MAIL + rcpt(C) + b"DATA\r\n")
    assert conv.phase is Phase.END_OF_DATA
    events = lose(conv, how)
    first, second = events[0], events[1]
    assert outcomes(first) == [(A, Outcome.AMBIGUOUS), (B, Outcome.PERMANENT)]
    assert as_done(first).results[0].stage is Phase.END_OF_DATA
    assert outcomes(second) == [(C, Outcome.UNATTEMPTED)]
    failed(events, KIND[how], Phase.END_OF_DATA)


@HOW
def test_lost_with_the_end_of_data_queued_but_not_handed_out_is_not_ambiguous(how: str) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, body=streamed([b"abc\r\n", b"def\r\n"])))
    conv.client()
    conv.server(OK + OK + GO_AHEAD)
    conv.limit = 4
    assert conv.client() == b"abc\r\n"
    assert conv.client() == b"def\r\n"
    events = lose(conv, how)  # the end marker is still queued
    assert outcomes(events[0]) == [(A, Outcome.TRANSIENT)]


@HOW
def test_lost_after_pipelined_mail_failed(how: str) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    conv.server(reply(550, "5.7.1 no"))
    events = lose(conv, how)
    assert outcomes(events[0]) == [(A, Outcome.PERMANENT), (B, Outcome.PERMANENT)]
    assert {r.stage for r in as_done(events[0]).results} == {Phase.MAIL}


@HOW
def test_lost_while_waiting_for_rset(how: str) -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.client()
    conv.server(OK + reply(550, "no") + reply(554, "no"))
    conv.client()
    events = lose(conv, how)
    failed(events, KIND[how], Phase.RSET)
    assert not any(isinstance(e, TransactionDone) for e in events)


@HOW
def test_lost_while_quitting_is_a_normal_close(how: str) -> None:
    conv = ready()
    conv.session.quit()
    conv.client()
    assert lose(conv, how) == [Closed()]
    assert lose(conv, how) == []  # and once closed, nothing more happens


@HOW
def test_lost_during_the_tls_handshake(how: str) -> None:
    conv, _ = greeted(MAY, "STARTTLS")
    conv.client()
    conv.server(reply(220, "go"))
    failed(lose(conv, how), KIND[how], Phase.TLS_HANDSHAKE)


@HOW
def test_queued_transactions_are_returned_after_a_failure(how: str) -> None:
    conv = ready("PIPELINING")
    first, second = txn(A), txn(B)
    conv.session.submit(first)
    conv.session.submit(second)
    conv.client()
    events = lose(conv, how)
    assert [e.transaction for e in events if isinstance(e, TransactionDone)] == [first]
    assert conv.session.unstarted() == [second]
    with pytest.raises(LocalProtocolError):
        conv.session.submit(txn(C))


def test_abort_reports_everything_pending() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.client()
    conv.session.abort("the user stopped the campaign")
    events = conv.events()
    assert outcomes(events[0]) == [(A, Outcome.UNATTEMPTED)]
    failure = failed(events, FailureKind.LOCAL, Phase.MAIL)
    assert failure.detail == "the user stopped the campaign"
    conv.session.abort("again")
    assert conv.events() == []


def test_a_closed_session_ignores_everything() -> None:
    conv = ready()
    conv.session.connection_lost()
    conv.events()
    conv.session.receive_data(b"250 late\r\n")
    conv.session.timed_out()
    conv.session.quit()
    assert conv.events() == []
    assert conv.client() == b""
    assert conv.phase is Phase.CLOSED


# ---- streamed bodies ---------------------------------------------------------------------


def test_streamed_body_goes_out_in_pieces_then_the_end_marker() -> None:
    conv = ready("PIPELINING")
    raw = [b"Subject: x\n", b"\n.dot\n", b"end"]
    conv.session.submit(txn(A, body=streamed(raw)))
    conv.client()
    conv.server(OK + OK + GO_AHEAD)
    conv.limit = 8
    sent = b""
    while chunk := conv.client():
        sent += chunk
    assert sent == b"Subject: x\r\n\r\n..dot\r\nend\r\n.\r\n"
    (done, _) = conv.server(QUEUED)
    assert outcomes(done) == [(A, Outcome.ACCEPTED)]


def test_large_wire_body_respects_the_write_limit() -> None:
    conv = ready("PIPELINING", limit=1000)
    data = (b"y" * 98 + b"\r\n") * (BODY_CHUNK // 50)
    conv.session.submit(txn(A, body=data))
    conv.client()
    conv.server(OK + OK + GO_AHEAD)
    batches = []
    while batch := conv.batch():
        batches.append(batch)
    assert len(batches) > 1
    assert b"".join(b"".join(batch) for batch in batches) == data + b".\r\n"


def test_streamed_body_with_a_long_line_fails_locally_without_the_end_marker() -> None:
    conv = ready()  # lock-step: the next transaction is not started behind this one
    body = streamed([b"ok\r\n", b"x" * 600, b"x" * 600, b"\r\n"])
    conv.session.submit(txn(A, B, body=body))
    conv.session.submit(txn(C))
    for answer in (OK, OK, reply(550, "no"), GO_AHEAD):
        conv.client()
        conv.server(answer)
    conv.limit = 1
    assert conv.client() == b"ok\r\n"
    sent = conv.client() + conv.client() + conv.client()
    assert not sent.endswith(b".\r\n")
    events = conv.events()
    assert outcomes(events[0]) == [(A, Outcome.PERMANENT), (B, Outcome.PERMANENT)]
    assert as_done(events[0]).results[0].stage is Phase.BODY
    assert "998" in as_done(events[0]).results[0].reason
    failure = failed(events, FailureKind.LOCAL, Phase.BODY)
    assert "line 2" in failure.detail
    assert events[-1] == Closed()
    assert conv.client() == b""
    assert [t.recipients for t in conv.session.unstarted()] == [(C,)]


def test_streamed_body_failure_with_the_next_envelope_pipelined() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, body=streamed([b"ok\r\n", b"z" * 1200])))
    conv.session.submit(txn(B))
    conv.client()
    conv.server(OK + OK + GO_AHEAD)
    conv.limit = 1
    while conv.client():
        pass
    events = conv.events()
    assert outcomes(events[0]) == [(A, Outcome.PERMANENT)]
    assert outcomes(events[1]) == [(B, Outcome.UNATTEMPTED)]
    failed(events, FailureKind.LOCAL, Phase.BODY)


# ---- the driver's view: phases, counters, the transcript --------------------------------


def test_phase_follows_the_oldest_unanswered_command() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    assert conv.phase is Phase.MAIL  # queued, not yet handed out
    conv.client()
    seen = []
    for answer in (OK, OK, OK, GO_AHEAD):
        seen.append(conv.phase)
        conv.server(answer)
    assert seen == [Phase.MAIL, Phase.RCPT, Phase.RCPT, Phase.DATA]


def test_replies_received_counts_every_reply() -> None:
    conv = ready("PIPELINING")
    assert conv.session.replies_received == 2
    conv.session.submit(txn(A))
    conv.client()
    conv.server(OK + OK)
    assert conv.session.replies_received == 4


def test_trace_records_commands_replies_body_and_errors() -> None:
    trace: list[tuple[str, object]] = []
    conv = Conversation(trace=trace)
    conv.server(GREETING)
    conv.client()
    conv.server(ehlo_reply("PIPELINING"))
    conv.session.submit(txn(A, body=b"hi\r\n"))
    conv.client()
    conv.server(OK + OK + GO_AHEAD)
    conv.server(b"999 garbage\r\n")
    kinds = [kind for kind, _ in trace]
    assert kinds == ["S", "C", "S", "C", "C", "C", "S", "S", "S", "B", "E"]
    assert trace[1] == ("C", b"EHLO client.test\r\n")
    assert isinstance(trace[0][1], Reply) and trace[0][1].code == 220
    assert trace[9] == ("B", 4)
    assert "malformed reply code" in str(trace[10][1])


def test_extensions_are_the_servers() -> None:
    conv = ready("PIPELINING", "SIZE 5000", "SMTPUTF8")
    assert conv.session.extensions == Extensions(
        frozenset({"PIPELINING", "SIZE", "SMTPUTF8"}), 5000
    )


def test_garbage_mid_transaction_is_a_protocol_failure() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A, B))
    conv.client()
    events = conv.server(OK + OK + b"HTTP/1.1 400 Bad Request\r\n")
    assert outcomes(events[0]) == [(A, Outcome.TRANSIENT), (B, Outcome.UNATTEMPTED)]
    failure = failed(events, FailureKind.PROTOCOL, Phase.RCPT)
    assert failure.detail == "malformed reply code"
    assert events[-1] == Closed()


# ---- regressions: each of these once went wrong ----------------------------------------


def test_a_transaction_without_recipients_is_refused_at_submit() -> None:
    # It used to crash with IndexError inside receive_data() in lock-step mode.
    conv = ready()
    with pytest.raises(LocalProtocolError):
        conv.session.submit(Transaction(SENDER, (), Body.from_bytes(BODY)))
    assert conv.client() == b""


@pytest.mark.parametrize(
    "transaction",
    [txn(A, sender="x\r\nRSET@origin.test"), txn(A, "b\n@dest.test"), txn("<c>@dest.test")],
)
def test_an_unsafe_address_is_refused_at_submit_and_the_session_goes_on(
    transaction: Transaction,
) -> None:
    # It used to raise later, from receive_data(), after MAIL had already been queued.
    conv = ready("PIPELINING")
    with pytest.raises(UnsafeArgumentError):
        conv.session.submit(transaction)
    assert conv.client() == b""
    conv.session.submit(txn(C))
    assert conv.client() == MAIL + rcpt(C) + b"DATA\r\n"


def test_an_unsafe_address_submitted_before_the_greeting_is_refused_at_once() -> None:
    conv = Conversation()
    with pytest.raises(UnsafeArgumentError):
        conv.session.submit(txn("b\r\n@dest.test"))
    conv.server(GREETING)
    conv.client()
    assert isinstance(conv.server(ehlo_reply())[0], Ready)


@pytest.mark.parametrize("code", [251, 252])
def test_any_2xx_to_rcpt_accepts_the_recipient(code: int) -> None:
    # RFC 5321 §4.2.1: the first digit decides. A 252 used to be reported ACCEPTED while
    # the recipient was left out of the DATA, so the message was never sent to it.
    conv = ready()
    conv.session.submit(txn(A))
    conv.client()
    conv.server(OK)
    assert conv.client() == rcpt(A)
    conv.server(reply(code, "2.1.5 cannot verify, will attempt delivery"))
    assert conv.client() == b"DATA\r\n"
    conv.server(GO_AHEAD)
    conv.client()
    done, _ = conv.server(QUEUED)
    assert outcomes(done) == [(A, Outcome.ACCEPTED)]
    assert as_done(done).results[0].stage is Phase.END_OF_DATA


def test_any_2xx_to_mail_goes_on_with_the_recipients() -> None:
    conv = ready()
    conv.session.submit(txn(A))
    conv.client()
    conv.server(reply(251, "sender ok"))
    assert conv.client() == rcpt(A)


@pytest.mark.parametrize(
    ("answers", "expected", "phase"),
    [
        ([reply(354, "go")], [(A, Outcome.UNATTEMPTED)], Phase.MAIL),
        ([OK, reply(354, "go")], [(A, Outcome.UNATTEMPTED)], Phase.RCPT),
        ([OK, OK, reply(250, "Ok")], [(A, Outcome.TRANSIENT)], Phase.DATA),
    ],
)
def test_a_positive_reply_of_the_wrong_class_is_a_protocol_error(
    answers: list[bytes], expected: list[tuple[str, Outcome]], phase: Phase
) -> None:
    # A 250 to DATA used to be reported ACCEPTED although no body had been sent.
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.client()
    events = conv.server(b"".join(answers))
    assert outcomes(events[0]) == expected
    failure = failed(events, FailureKind.PROTOCOL, phase)
    assert "makes no sense" in failure.detail


def test_a_354_to_the_end_of_data_leaves_the_outcome_ambiguous() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn(A))
    conv.client()
    conv.server(OK + OK + GO_AHEAD)
    conv.client()
    events = conv.server(GO_AHEAD)
    assert outcomes(events[0]) == [(A, Outcome.AMBIGUOUS)]
    failed(events, FailureKind.PROTOCOL, Phase.END_OF_DATA)


def test_mail_refused_with_a_recipient_refused_locally() -> None:
    conv = ready("PIPELINING")
    conv.session.submit(txn("ü@dest.test", A))
    conv.client()
    (done, _) = conv.server(reply(550, "no") + reply(503, "no") + reply(503, "no"))
    assert outcomes(done) == [("ü@dest.test", Outcome.PERMANENT), (A, Outcome.PERMANENT)]
    local, remote = as_done(done).results
    assert local.reply is None and "SMTPUTF8" in local.reason
    assert remote.reply is not None and remote.stage is Phase.MAIL


def test_one_failure_per_session_even_if_the_server_goes_on_talking() -> None:
    # Extra lines after a refused greeting used to add a second, PROTOCOL, failure that
    # hid the real reason (the 554) from the report.
    conv = Conversation()
    events = conv.server(reply(554, "blocked") + reply(250, "and something else"))
    failed(events, FailureKind.REJECTED, Phase.GREETING)
    assert events[-1] == Closed()
    assert conv.client() == b""


def test_garbage_in_answer_to_quit_just_closes() -> None:
    conv = ready()
    conv.session.quit()
    conv.client()
    assert conv.server(b"garbage\r\n") == [Closed()]


def test_abort_while_quitting_just_closes() -> None:
    conv = ready()
    conv.session.quit()
    conv.client()
    conv.session.abort("shutting down")
    assert conv.events() == [Closed()]


def test_tls_failure_reported_after_the_connection_was_lost_changes_nothing() -> None:
    conv, _ = greeted(MAY, "STARTTLS")
    conv.client()
    conv.server(reply(220, "go"))
    conv.session.connection_lost("reset")
    events = conv.events()
    failed(events, FailureKind.CLOSED, Phase.TLS_HANDSHAKE)
    conv.session.tls_failed("connection reset")
    assert conv.events() == []


# ---- the end-of-data hook: "possibly delivered" is recorded before the marker goes out ----


def test_end_of_data_hook_runs_before_the_marker_is_handed_out() -> None:
    announced: list[Transaction] = []
    session = ClientSession(PLAIN, on_end_of_data=lambda t: announced.append(t) is None)
    first, second = txn("a@dest.test"), txn("b@dest.test")
    session.receive_data(GREETING)
    session.data_to_send()
    session.receive_data(ehlo_reply("PIPELINING"))
    session.submit(first)
    session.submit(second)
    assert session.data_to_send()[-1] == b"DATA\r\n"
    assert announced == []
    session.receive_data(reply(250, "ok") + reply(250, "ok") + GO_AHEAD)
    assert announced == []  # nothing handed out yet: the driver has not asked
    batch = session.data_to_send()
    assert b".\r\n" in batch
    assert announced == [first]


def test_end_of_data_hook_is_not_called_for_a_discarded_message() -> None:
    announced: list[Transaction] = []
    session = ClientSession(PLAIN, on_end_of_data=lambda t: announced.append(t) is None)
    session.receive_data(GREETING)
    session.data_to_send()
    session.receive_data(ehlo_reply("PIPELINING"))
    session.submit(txn("a@dest.test"))
    session.data_to_send()
    session.receive_data(reply(250, "ok") + reply(550, "5.1.1 unknown") + GO_AHEAD)
    assert session.data_to_send() == [b".\r\n"]  # RFC 2920: an empty message, not ours
    assert announced == []


def test_end_of_data_held_by_the_hook_goes_out_when_it_says_so() -> None:
    durable: set[int] = set()
    session = ClientSession(PLAIN, on_end_of_data=lambda t: id(t) in durable)
    message = txn("a@dest.test")
    session.receive_data(GREETING)
    session.data_to_send()
    session.receive_data(ehlo_reply("PIPELINING"))
    session.submit(message)
    session.data_to_send()
    session.receive_data(reply(250, "ok") + reply(250, "ok") + GO_AHEAD)
    assert session.data_to_send() == []  # body and marker held together
    assert session.data_to_send() == []  # still held
    durable.add(id(message))
    assert session.data_to_send() == [message.body.wire, b".\r\n"]
    assert session.phase is Phase.END_OF_DATA


def test_a_connection_lost_while_the_marker_is_held_is_not_ambiguous() -> None:
    session = ClientSession(PLAIN, on_end_of_data=lambda t: False)
    session.receive_data(GREETING)
    session.data_to_send()
    session.receive_data(ehlo_reply("PIPELINING"))
    session.submit(txn("a@dest.test"))
    session.data_to_send()
    session.receive_data(reply(250, "ok") + reply(250, "ok") + GO_AHEAD)
    session.data_to_send()
    session.connection_lost()
    done = [e for e in iter(session.next_event, None) if isinstance(e, TransactionDone)]
    assert len(done) == 1
    assert outcomes(done[0]) == [("a@dest.test", Outcome.TRANSIENT)]
