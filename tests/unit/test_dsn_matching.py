"""Matching bounces and unsubscribe requests to a campaign's recipients, and what that
changes in the campaign file (a real one, in a temporary folder)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.bounces.apply import UNSUBSCRIBED, CampaignMatcher, Kind, unsubscribed_addresses
from core.bounces.unsubscribe import UnsubscribeRule
from core.outgoing import LIST_UNSUBSCRIBE_MAILTO
from core.store import CampaignStore, NewRecipient, RecipientState, Status
from tests.unit.test_dsn import CASES, sample

SENDER = "news@sender.test"
# Each sample's recipient with the Message-ID its sample returns.
SENT = {
    "ann@plain.test": "<5d1f0c8e2b7a4f3e9c6d1a2b3c4d5e6f@sender.test>",
    "bob@plain.test": "<1b2c3d4e5f60718293a4b5c6d7e8f901@sender.test>",
    "carl@plain.test": "<carl-0001@sender.test>",
    "dana@contoso.test": "<0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f@sender.test>",
    "eve@plain.test": "<8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d@sender.test>",
    "frank@fabrikam.test": "<aa11bb22cc33dd44ee55ff6600112233@sender.test>",
    "gina@gmail.test": "<f0e1d2c3b4a5968778695a4b3c2d1e0f@sender.test>",
    "hank@oldhost.test": "<9f8e7d6c5b4a39281706f5e4d3c2b1a0@sender.test>",
}
TOKENS = {email: f"t{n:04d}x" for n, email in enumerate(SENT)}


def make_campaign(
    path: Path, settings: Mapping[str, object] | None = None, *, queued: tuple[str, ...] = ()
) -> CampaignStore:
    """Every recipient of SENT delivered with its Message-ID, except ``queued`` ones."""
    store = CampaignStore.create(path, sender=SENDER, message=b"Subject: x\n\nx\n",
                                 settings=dict(settings or {}))
    store.add_recipients(
        NewRecipient(email, email.split("@")[1], {"token": TOKENS[email]}) for email in SENT
    )
    for state in store.states():
        if state.email not in queued:
            store.record(state.to_update(status=Status.DELIVERED, attempts=1, code=250,
                                         message_id=SENT[state.email], mx="mx.test"))
    store.flush()
    return store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CampaignStore]:
    with make_campaign(tmp_path / "c.mxm") as opened:
        yield opened


def rows(store: CampaignStore) -> dict[str, RecipientState]:
    return {state.email: state for state in store.states()}


def read(store: CampaignStore, raw: bytes) -> list[tuple[Kind, str]]:
    matcher = CampaignMatcher(store, UnsubscribeRule.from_settings(store.settings))
    return [(f.kind, f.email) for f in matcher.read(raw, at=time.time())]


def changed(before: dict[str, RecipientState], after: dict[str, RecipientState]) -> set[str]:
    return {email for email in before if before[email] != after[email]}


@pytest.mark.parametrize(
    ("name", "email", "fault"),
    [
        ("postfix-user-unknown.eml", "ann@plain.test", "recipient"),
        ("exim-mailbox-full.eml", "bob@plain.test", "recipient"),
        ("office365-recipient-not-found.eml", "dana@contoso.test", "recipient"),
        ("exchange-banned-ip.eml", "frank@fabrikam.test", "sender"),
        ("gmail-no-such-user.eml", "gina@gmail.test", "recipient"),
        ("qmail-failure.eml", "hank@oldhost.test", "recipient"),
    ],
)
def test_a_failure_report_bounces_its_recipient_only(
    store: CampaignStore, name: str, email: str, fault: str
) -> None:
    before = rows(store)
    assert read(store, sample(name)) == [(Kind.BOUNCED, email)]
    after = rows(store)
    assert changed(before, after) == {email}
    row = after[email]
    assert row.status is Status.BOUNCED
    assert row.fault == fault
    assert row.code is not None and row.code >= 500
    assert row.enhanced.startswith("5.")
    assert row.text and row.reason.startswith("bounced after it was accepted")
    assert (row.message_id, row.attempts, row.mx) == (SENT[email], 1, "mx.test")
    assert (email in store.bounced_addresses()) is (fault == "recipient")


@pytest.mark.parametrize("name", ["postfix-delayed.eml", "exim-delayed.eml"])
def test_delayed_reports_change_nobody(store: CampaignStore, name: str) -> None:
    before = rows(store)
    (finding,) = read(store, sample(name))
    assert finding[0] is Kind.DELAYED
    assert rows(store) == before


def test_a_message_id_whose_case_a_server_changed_still_matches(store: CampaignStore) -> None:
    ours = SENT["ann@plain.test"]
    raw = sample("postfix-user-unknown.eml").replace(ours.encode(), ours.upper().encode())
    assert read(store, raw) == [(Kind.BOUNCED, "ann@plain.test")]


def test_the_same_bounce_twice_changes_nothing_more(store: CampaignStore) -> None:
    read(store, sample("postfix-user-unknown.eml"))
    before = rows(store)
    assert read(store, sample("postfix-user-unknown.eml")) == [
        (Kind.UNCHANGED, "ann@plain.test")
    ]
    assert rows(store) == before


def test_a_bounce_of_another_message_is_not_matched_by_its_address(
    store: CampaignStore,
) -> None:
    raw = sample("postfix-user-unknown.eml").replace(
        SENT["ann@plain.test"].encode(), b"<someone-else@sender.test>"
    )
    before = rows(store)
    assert read(store, raw) == [(Kind.UNMATCHED, "ann@plain.test")]
    assert rows(store) == before


def test_without_a_message_id_the_address_decides(store: CampaignStore) -> None:
    raw = sample("postfix-user-unknown.eml").replace(b"Message-ID: <5d1f", b"X-Old-ID: <5d1f")
    assert read(store, raw) == [(Kind.BOUNCED, "ann@plain.test")]
    stranger = raw.replace(b"ann@plain.test", b"zoe@plain.test")
    assert read(store, stranger) == [(Kind.UNMATCHED, "zoe@plain.test")]


def test_a_verp_return_address_names_the_recipient(store: CampaignStore) -> None:
    # No Message-ID, and a final recipient that is not in the campaign (forwarded):
    # only the VERP address the bounce was delivered to says who it is.
    raw = (
        sample("postfix-user-unknown.eml")
        .replace(b"Message-ID: <5d1f", b"X-Old-ID: <5d1f")
        .replace(b"Delivered-To: bounces@sender.test",
                 b"Delivered-To: news+bob=plain.test@Sender.test")
        .replace(b"ann@plain.test", b"bob.forward@elsewhere.test")
    )
    assert read(store, raw) == [(Kind.BOUNCED, "bob@plain.test")]


def test_a_recipient_not_delivered_is_not_bounced_by_a_report(tmp_path: Path) -> None:
    with make_campaign(tmp_path / "c.mxm", queued=("ann@plain.test",)) as store:
        # A Message-ID is only set at an attempt; give the queued row its own by hand.
        ann = rows(store)["ann@plain.test"]
        store.record(ann.to_update(status=Status.DEFERRED,
                                   message_id=SENT["ann@plain.test"]))
        store.flush()
        before = rows(store)
        assert read(store, sample("postfix-user-unknown.eml")) == [
            (Kind.UNCHANGED, "ann@plain.test")
        ]
        assert rows(store) == before


def test_an_ambiguous_recipient_bounced_later_becomes_bounced(store: CampaignStore) -> None:
    ann = rows(store)["ann@plain.test"]
    store.record(ann.to_update(status=Status.AMBIGUOUS, reason="possibly delivered"))
    store.flush()
    assert read(store, sample("postfix-user-unknown.eml")) == [(Kind.BOUNCED, "ann@plain.test")]
    assert rows(store)["ann@plain.test"].status is Status.BOUNCED


# ---- unsubscribe requests ----------------------------------------------------------------


def request(to: str, subject: str, sender: str, *extra: str) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", *extra, "", "Please."]
    return "\n".join(lines).encode()


@pytest.mark.parametrize(
    ("mailto", "mail", "who"),
    [
        # The mailto has no fields: From decides.
        ("mailto:unsubscribe@sender.test?subject=unsubscribe",
         request("unsubscribe@sender.test", "unsubscribe", "Bob <BOB@Plain.test>"),
         "bob@plain.test"),
        # A token in the address: whoever sends it, it names its recipient.
        ("mailto:unsub+{{token}}@sender.test",
         request("<unsub+T0001X@sender.test>", "", "someone@else.test"), "bob@plain.test"),
        # A token in the subject, percent-encoded in the URL, decoded by the client.
        ("unsubscribe@sender.test?subject=unsubscribe%20{{token}}",
         request("unsubscribe@sender.test", "Re: unsubscribe t0003x", "x@y.test"),
         "dana@contoso.test"),
        # The client dropped the subject: From decides.
        ("mailto:unsubscribe@sender.test?subject=unsubscribe%20{{token}}",
         request("unsubscribe@sender.test", "", "gina@gmail.test"), "gina@gmail.test"),
    ],
)
def test_unsubscribe_requests(tmp_path: Path, mailto: str, mail: bytes, who: str) -> None:
    with make_campaign(tmp_path / "c.mxm", {LIST_UNSUBSCRIBE_MAILTO: mailto}) as store:
        before = rows(store)
        assert read(store, mail) == [(Kind.UNSUBSCRIBED, who)]
        after = rows(store)
        assert changed(before, after) == {who}
        assert after[who].status is Status.DELIVERED  # it was delivered: that stays true
        assert UNSUBSCRIBED in after[who].reason
        assert unsubscribed_addresses(store) == [who]
        assert read(store, mail) == [(Kind.UNCHANGED, who)]
        assert rows(store) == after


def test_a_token_in_an_encoded_subject(tmp_path: Path) -> None:
    settings = {LIST_UNSUBSCRIBE_MAILTO: "unsubscribe@sender.test?subject=Abmelden%20{{token}}"}
    with make_campaign(tmp_path / "c.mxm", settings) as store:
        # "AW: Abmelden t0002x" as RFC 2047 words, as a German client may send it.
        mail = request("unsubscribe@sender.test", "=?utf-8?b?QVc6IEFibWVsZGVuIHQwMDAyeA==?=",
                       "other@else.test")
        assert read(store, mail) == [(Kind.UNSUBSCRIBED, "carl@plain.test")]


@pytest.mark.parametrize("charset", ["Ü-8", "no-such-charset", "utf-8?b?broken=="])
def test_a_subject_in_a_broken_encoding_leaves_the_decision_to_from(
    tmp_path: Path, charset: str
) -> None:
    settings = {LIST_UNSUBSCRIBE_MAILTO: "unsubscribe@sender.test?subject=stop%20{{token}}"}
    with make_campaign(tmp_path / "c.mxm", settings) as store:
        mail = request("unsubscribe@sender.test", f"=?{charset}?b?c3RvcCB0MDAwMng=?=",
                       "bob@plain.test")
        assert read(store, mail) == [(Kind.UNSUBSCRIBED, "bob@plain.test")]


NOT_REQUESTS = {
    "to another address": request("news@sender.test", "unsubscribe", "bob@plain.test"),
    "machine-made": request("unsubscribe@sender.test", "unsubscribe", "bob@plain.test",
                            "Auto-Submitted: auto-replied"),
}


@pytest.mark.parametrize("mail", NOT_REQUESTS.values(), ids=NOT_REQUESTS.keys())
def test_mails_that_are_not_unsubscribe_requests(tmp_path: Path, mail: bytes) -> None:
    settings = {LIST_UNSUBSCRIBE_MAILTO: "unsubscribe@sender.test"}
    with make_campaign(tmp_path / "c.mxm", settings) as store:
        before = rows(store)
        assert read(store, mail) == [(Kind.UNMATCHED, "")]
        assert rows(store) == before


def test_a_token_naming_nobody_is_not_overruled_by_from(tmp_path: Path) -> None:
    settings = {LIST_UNSUBSCRIBE_MAILTO: "mailto:unsub+{{token}}@sender.test"}
    with make_campaign(tmp_path / "c.mxm", settings) as store:
        before = rows(store)
        mail = request("unsub+forged@sender.test", "", "bob@plain.test")
        assert read(store, mail) == [(Kind.UNMATCHED, "bob@plain.test")]
        assert rows(store) == before


def test_an_unsubscribe_from_a_recipient_not_sent_yet_suppresses_it(tmp_path: Path) -> None:
    settings = {LIST_UNSUBSCRIBE_MAILTO: "unsubscribe@sender.test"}
    with make_campaign(tmp_path / "c.mxm", settings, queued=("carl@plain.test",)) as store:
        mail = request("unsubscribe@sender.test", "stop", "carl@plain.test")
        assert read(store, mail) == [(Kind.UNSUBSCRIBED, "carl@plain.test")]
        carl = rows(store)["carl@plain.test"]
        assert carl.status is Status.SUPPRESSED
        assert all(state.email != "carl@plain.test" for state in store.pending())


def test_without_a_mailto_no_mail_is_an_unsubscribe(store: CampaignStore) -> None:
    mail = request("unsubscribe@sender.test", "unsubscribe", "bob@plain.test")
    assert read(store, mail) == [(Kind.UNMATCHED, "")]


def test_two_recipients_sharing_a_token_match_neither(tmp_path: Path) -> None:
    settings = {LIST_UNSUBSCRIBE_MAILTO: "mailto:unsub+{{token}}@sender.test"}
    with make_campaign(tmp_path / "c.mxm", settings) as store:
        store.add_recipients([NewRecipient("zed@plain.test", "plain.test", {"token": "t0001x"})])
        mail = request("unsub+t0001x@sender.test", "", "bob@plain.test")
        assert read(store, mail) == [(Kind.UNMATCHED, "bob@plain.test")]
        assert dataclasses.asdict(rows(store)["bob@plain.test"])["reason"] == ""


MAILS = [sample(case[0]) for case in CASES] + [
    request("unsub+t0001x@sender.test", "unsubscribe t0001x", "bob@plain.test"),
    request("=?utf-8?q?unsub=2Bt0002x?= <unsub+t0002x@sender.test>",
            "=?utf-8?b?dW5zdWJzY3JpYmUgdDAwMDJ4?=", "=?bogus?q?x?= <carl@plain.test>"),
]


@settings(max_examples=100)
@given(
    mail=st.sampled_from(MAILS),
    cut=st.integers(min_value=0, max_value=4000),
    junk=st.binary(max_size=48),
)
def test_any_mail_is_read_without_raising(tmp_path_factory: pytest.TempPathFactory,
                                          mail: bytes, cut: int, junk: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "c.mxm"
    mailto = "mailto:unsub+{{token}}@sender.test?subject=unsubscribe%20{{token}}"
    with make_campaign(path, {LIST_UNSUBSCRIBE_MAILTO: mailto}) as store:
        before = rows(store)
        findings = read(store, mail[:cut] + junk + mail[cut + len(junk) :])
        after = rows(store)
    assert findings
    assert len(changed(before, after)) <= len(findings)
