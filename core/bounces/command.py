"""``mxmailer bounces``: read the bounce mailbox over IMAP and update a campaign file.

Reads the mails that arrived since the last run (by UID, the position kept in the
campaign's settings under :data:`POSITIONS`), matches bounces and unsubscribe requests
to the campaign's recipients (``core.bounces.apply``), saves what they change, marks the
matched mails ``\\Seen`` (mail that is not about this campaign is left as it was, for
whoever else reads the mailbox), and prints what it found. ``--suppression-out FILE``
writes every recipient who unsubscribed by mail into a suppression list.

Order per batch of mails: the campaign's changes are committed, then ``\\Seen`` is set,
then the position is saved. A run cut short repeats at most one batch, and reading a
mail twice changes nothing more (``core.bounces.apply``), so nothing is lost or doubled.

Exit status: 0 done; 1 the mailbox could not be read (nothing after the failure was
changed); 2 a usage error, a campaign file that cannot be opened, or no password.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Final

from core.bounces.apply import (
    UNSUBSCRIBED,
    CampaignMatcher,
    Finding,
    Kind,
    unsubscribed_addresses,
)
from core.bounces.imap import (
    FETCH_BATCH,
    IMAP_PORT,
    IMAPS_PORT,
    BounceMailbox,
    MailboxConfig,
    MailboxError,
    Position,
)
from core.bounces.unsubscribe import UnsubscribeRule
from core.credentials import IMAP, PasswordError
from core.store import CampaignStore, StoreError
from core.suppression import SuppressionError, extend_suppression
from core.template import TemplateError

EXIT_OK, EXIT_MAILBOX, EXIT_USAGE = 0, 1, 2

#: The campaign setting that holds, per mailbox (``MailboxConfig.name``), the
#: UIDVALIDITY and the last UID processed.
POSITIONS: Final = "bounce_mailbox_positions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=Path, required=True, help="the campaign file")
    parser.add_argument("--imap-host", required=True, help="the IMAP server's name")
    parser.add_argument(
        "--imap-port", type=int, help=f"default {IMAPS_PORT} (implicit TLS), {IMAP_PORT} with "
        "--starttls"
    )
    parser.add_argument(
        "--imap-user", help="the mailbox's login (default: the campaign's sender address)"
    )
    parser.add_argument(
        "--starttls", action="store_true", help="plain IMAP upgraded with STARTTLS (port 143)"
    )
    parser.add_argument(
        "--cafile", type=Path, help="trust this CA certificate (PEM) instead of the system's"
    )
    parser.add_argument("--mailbox", default="INBOX", help="the folder to read (INBOX)")
    parser.add_argument(
        "--suppression-out", type=Path,
        help="write every recipient who unsubscribed by mail to this suppression list "
        "(an existing list keeps its entries)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the IMAP server"
    )
    parser.epilog = (
        f"The password comes from the system keyring, else ${IMAP.env}, else a prompt; "
        "it is never taken from the command line."
    )


def run(args: argparse.Namespace) -> int:
    try:
        store = CampaignStore.open(args.state)[0]
    except StoreError as error:
        return _fail(str(error), EXIT_USAGE)
    with store:
        try:
            rule = UnsubscribeRule.from_settings(store.settings)
        except TemplateError as error:
            return _fail(f"the campaign's List-Unsubscribe mailto cannot be read: {error}",
                         EXIT_USAGE)
        config = MailboxConfig(
            host=args.imap_host,
            user=args.imap_user or store.sender,
            port=args.imap_port or (IMAP_PORT if args.starttls else IMAPS_PORT),
            mailbox=args.mailbox,
            starttls=args.starttls,
            cafile=args.cafile,
            timeout=args.timeout,
        )
        try:
            password = IMAP.password(config.user, config.host)
        except PasswordError as error:
            return _fail(str(error), EXIT_USAGE)
        counts: Counter[Kind] = Counter()
        try:
            with BounceMailbox(config) as mailbox:
                mailbox.open(password)
                del password
                _read(store, mailbox, CampaignMatcher(store, rule), counts)
        except MailboxError as error:
            _summary(counts)
            return _fail(str(error), EXIT_MAILBOX)
        except StoreError as error:
            _summary(counts)
            return _fail(str(error), EXIT_USAGE)
        if args.suppression_out is not None:
            try:
                added = extend_suppression(
                    args.suppression_out, unsubscribed_addresses(store), UNSUBSCRIBED
                )
            except (OSError, SuppressionError, ValueError) as error:
                return _fail(f"cannot write {args.suppression_out}: {error}", EXIT_USAGE)
            print(f"{added} unsubscribed address(es) added to {args.suppression_out}")
    _summary(counts)
    return EXIT_OK


def _read(
    store: CampaignStore, mailbox: BounceMailbox, matcher: CampaignMatcher,
    counts: Counter[Kind],
) -> None:
    name = mailbox.config.name
    positions = store.settings.get(POSITIONS)
    saved = positions.get(name) if isinstance(positions, dict) else None
    position = None
    if isinstance(saved, dict):
        position = Position(int(saved.get("uidvalidity", 0)), int(saved.get("last_uid", 0)))
    uids = mailbox.new_uids(position)
    for start in range(0, len(uids), FETCH_BATCH):
        batch = uids[start : start + FETCH_BATCH]
        matched = []
        for uid, raw in mailbox.fetch(batch):
            try:
                findings = matcher.read(raw, at=time.time())  # saved before it returns
            except StoreError:
                raise  # the campaign file failed: stop, as the engine does
            except Exception as error:
                # A mail the reader cannot read (a bug meeting hostile input) must not stop
                # every later run at the same mail: it is reported, left unseen, skipped.
                findings = [Finding(Kind.UNMATCHED, "", f"could not be read ({error!r})")]
            for finding in findings:
                counts[finding.kind] += 1
                _show(uid, finding)
            if any(finding.kind is not Kind.UNMATCHED for finding in findings):
                matched.append(uid)
        mailbox.mark_seen(matched)
        settings = store.settings
        every = settings.get(POSITIONS)
        every = dict(every) if isinstance(every, dict) else {}
        every[name] = {"uidvalidity": mailbox.uidvalidity, "last_uid": batch[-1]}
        settings[POSITIONS] = every
        store.set_settings(settings)


def _show(uid: int, finding: Finding) -> None:
    who = f" {finding.email}" if finding.email else ""
    print(f"mail {uid}: {finding.kind.value}:{who}: {finding.detail}")


def _summary(counts: Counter[Kind]) -> None:
    parts = [
        f"{counts[Kind.BOUNCED]} bounced later",
        f"{counts[Kind.DELAYED]} delayed (ignored)",
        f"{counts[Kind.UNSUBSCRIBED]} unsubscribe(s)",
        f"{counts[Kind.UNMATCHED]} unmatched",
    ]
    if counts[Kind.UNCHANGED]:
        parts.append(f"{counts[Kind.UNCHANGED]} matched with nothing to change")
    print(", ".join(parts))


def _fail(message: str, code: int) -> int:
    print(f"mxmailer bounces: {message}", file=sys.stderr)
    return code
