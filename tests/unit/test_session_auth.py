"""Relay login (AUTH PLAIN / LOGIN, RFC 4954) in the sans-IO session: only over TLS,
never shown in a trace, a refusal ends the connection as an AUTH failure."""

from __future__ import annotations

import base64

import pytest

from core.smtp import (
    Credentials,
    Event,
    FailureKind,
    Phase,
    Ready,
    SessionConfig,
    SessionFailed,
    StartTLS,
    TLSPolicy,
    UnsafeArgumentError,
    commands,
)
from tests.unit.smtp_script import GREETING, HELO_NAME, Conversation, ehlo_reply, reply

LOGIN = Credentials("alice@sender.test", "s3cret pass")
IMPLICIT = SessionConfig(HELO_NAME, tls=TLSPolicy.REQUIRE, credentials=LOGIN, implicit_tls=True)
PLAIN_SECRET = base64.b64encode(b"\0alice@sender.test\0s3cret pass")


def greeted(
    config: SessionConfig, *keywords: str, trace: list[tuple[str, object]]
) -> tuple[Conversation, list[Event]]:
    """Past the greeting and EHLO (which offered ``keywords``), with EHLO's events."""
    conv = Conversation(config, trace=trace)
    assert conv.server(GREETING) == []
    assert conv.client() == b"EHLO client.test\r\n"
    return conv, conv.server(ehlo_reply(*keywords))


def test_auth_plain_over_implicit_tls_then_ready_and_hidden_from_the_trace() -> None:
    trace: list[tuple[str, object]] = []
    conv, events = greeted(IMPLICIT, "AUTH LOGIN PLAIN", "PIPELINING", trace=trace)
    assert events == []
    assert conv.phase is Phase.AUTH
    assert conv.client() == b"AUTH PLAIN " + PLAIN_SECRET + b"\r\n"
    events = conv.server(reply(235, "2.7.0 Authentication successful"))
    assert len(events) == 1 and isinstance(events[0], Ready)
    shown = b"".join(line for side, line in trace if side == "C" and isinstance(line, bytes))
    assert b"AUTH PLAIN <hidden>" in shown
    assert PLAIN_SECRET not in shown and b"s3cret" not in shown
    assert "s3cret" not in repr(IMPLICIT)


def test_auth_login_answers_each_challenge_and_hides_both() -> None:
    trace: list[tuple[str, object]] = []
    conv, _ = greeted(IMPLICIT, "AUTH LOGIN", trace=trace)
    assert conv.client() == b"AUTH LOGIN\r\n"
    assert conv.server(reply(334, "VXNlcm5hbWU6")) == []
    assert conv.client() == base64.b64encode(b"alice@sender.test") + b"\r\n"
    assert conv.server(reply(334, "UGFzc3dvcmQ6")) == []
    assert conv.client() == base64.b64encode(b"s3cret pass") + b"\r\n"
    assert isinstance(conv.server(reply(235, "2.7.0 OK"))[0], Ready)
    shown = [line for side, line in trace if side == "C"]
    assert shown == [b"EHLO client.test\r\n", b"AUTH LOGIN\r\n", b"<hidden>\r\n", b"<hidden>\r\n"]


def test_a_refused_login_fails_the_connection_as_auth() -> None:
    conv, _ = greeted(IMPLICIT, "AUTH PLAIN", trace=[])
    conv.client()
    events = conv.server(reply(535, "5.7.8 Authentication credentials invalid"))
    failed = [event for event in events if isinstance(event, SessionFailed)]
    assert len(failed) == 1 and failed[0].kind is FailureKind.AUTH
    assert failed[0].reply is not None and failed[0].reply.code == 535


@pytest.mark.parametrize(
    ("keywords", "why"),
    [((), "offers no AUTH PLAIN or LOGIN (offered: none)"), (("AUTH CRAM-MD5",), "CRAM-MD5")],
)
def test_no_usable_mechanism_is_an_auth_failure(keywords: tuple[str, ...], why: str) -> None:
    conv, events = greeted(IMPLICIT, *keywords, trace=[])
    failed = [event for event in events if isinstance(event, SessionFailed)]
    assert len(failed) == 1 and failed[0].kind is FailureKind.AUTH and why in failed[0].detail
    assert b"AUTH" not in conv.client()


def test_no_password_is_ever_sent_without_tls() -> None:
    cleartext = SessionConfig(HELO_NAME, tls=TLSPolicy.MAY, credentials=LOGIN)
    conv = Conversation(cleartext)
    conv.server(GREETING)
    conv.client()
    events = conv.server(ehlo_reply("AUTH PLAIN"))  # no STARTTLS, and MAY goes on without
    failed = [event for event in events if isinstance(event, SessionFailed)]
    assert len(failed) == 1 and failed[0].kind is FailureKind.AUTH
    assert b"AUTH" not in conv.client()


def test_after_starttls_the_login_follows_the_second_ehlo() -> None:
    config = SessionConfig(HELO_NAME, tls=TLSPolicy.REQUIRE, credentials=LOGIN)
    conv = Conversation(config)
    conv.server(GREETING)
    conv.client()
    assert conv.server(ehlo_reply("STARTTLS", "AUTH PLAIN")) == []
    assert conv.client() == b"STARTTLS\r\n"
    assert isinstance(conv.server(reply(220, "2.0.0 go ahead"))[0], StartTLS)
    conv.session.tls_established()
    assert conv.client() == b"EHLO client.test\r\n"
    assert conv.server(ehlo_reply("AUTH PLAIN")) == []
    assert conv.client().startswith(b"AUTH PLAIN ")


@pytest.mark.parametrize("password", ["pa\0ss-secret", "pa\udce4ss-secret"])
def test_a_credential_that_cannot_be_sent_is_refused_without_quoting_it(password: str) -> None:
    with pytest.raises(UnsafeArgumentError) as error:
        commands.auth_plain("alice", password)
    with pytest.raises(ValueError) as made:
        Credentials("alice", password)
    for refusal in (error.value, made.value):
        assert "secret" not in str(refusal) and "secret" not in repr(refusal)
        assert "<hidden>" in str(refusal)
