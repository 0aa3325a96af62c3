"""``mxmailer bounces``' run over a mailbox, with a stand-in for the IMAP session (the
real one: tests/integration/test_bounces_imap.py): the order of saving, \\Seen and the
position, and a mail the reader fails on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from email.message import Message
from pathlib import Path

import pytest

from core.bounces import apply, command
from core.bounces.apply import CampaignMatcher, Kind
from core.bounces.dsn import Bounce, read_bounce
from core.bounces.imap import MailboxConfig, Position
from tests.unit.test_dsn import sample
from tests.unit.test_dsn_matching import make_campaign, rows

POISON = b"X-Poison: yes\n"


class FakeMailbox:
    """What ``command._read`` uses of ``BounceMailbox``, holding mails in memory."""

    def __init__(self, mails: Sequence[bytes]) -> None:
        self.config = MailboxConfig(host="imap.test", user="bounces@sender.test")
        self.uidvalidity = 7
        self.mails = dict(enumerate(mails, 1))
        self.seen: list[int] = []
        self.asked_after: list[Position | None] = []

    def new_uids(self, position: Position | None) -> list[int]:
        self.asked_after.append(position)
        after = position.last_uid if position and position.uidvalidity == 7 else 0
        return [uid for uid in self.mails if uid > after]

    def fetch(self, uids: Sequence[int]) -> Iterator[tuple[int, bytes]]:
        return ((uid, self.mails[uid]) for uid in uids)

    def mark_seen(self, uids: Sequence[int]) -> None:
        self.seen += uids


def failing_reader(mail: Message | bytes) -> Bounce | None:
    if isinstance(mail, Message) and mail.get("X-Poison"):
        raise RuntimeError("a reader bug")
    return read_bounce(mail)


def test_a_mail_the_reader_fails_on_is_reported_left_unseen_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(apply, "read_bounce", failing_reader)
    mails = [sample("postfix-user-unknown.eml"), POISON + sample("qmail-failure.eml"),
             sample("exim-mailbox-full.eml")]
    mailbox = FakeMailbox(mails)
    with make_campaign(tmp_path / "c.mxm") as store:
        counts: Counter[Kind] = Counter()
        command._read(store, mailbox, CampaignMatcher(store, None), counts)  # type: ignore[arg-type]
        assert counts == Counter({Kind.BOUNCED: 2, Kind.UNMATCHED: 1})
        assert mailbox.seen == [1, 3]
        assert "mail 2: unmatched:: could not be read (RuntimeError('a reader bug'))" in (
            capsys.readouterr().out
        )
        statuses = {email: row.status.value for email, row in rows(store).items()}
        assert statuses["hank@oldhost.test"] == "delivered"
        assert store.settings[command.POSITIONS] == {
            mailbox.config.name: {"uidvalidity": 7, "last_uid": 3}
        }
        # The next run starts after the saved position: nothing is read again.
        again: Counter[Kind] = Counter()
        command._read(store, mailbox, CampaignMatcher(store, None), again)  # type: ignore[arg-type]
        assert mailbox.asked_after[-1] == Position(7, 3)
        assert again == Counter()
