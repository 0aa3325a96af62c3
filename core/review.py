"""Commands that read a campaign file without sending: ``preview``, ``export-bounces`` and
``export-domains``.

``mxmailer preview --state F --row N`` prints the exact message recipient N (1-based, in
import order) receives, built by the same code as the engine's (template, merge fields,
List-Unsubscribe, DKIM). A recipient already tried keeps its Message-ID and Date, so the
preview of a retry is the retry's bytes; one not yet tried gets the ones it would get now.
``--decoded`` prints headers decoded and the parts instead, as the window's preview does.

``mxmailer export-bounces --state F --output FILE`` writes the addresses that bounced for
their own reasons (unknown mailbox, disabled account...) as a suppression list for the
next campaign (``mxmailer send --suppression FILE``).

``mxmailer export-domains --state F --output FILE.csv`` writes the per-domain summary
(:mod:`core.domain_summary`): delivered, bounced, greylisted, median delivery delay and
the bounces' most common replies, per recipient domain.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.dkim import DKIMError
from core.domain_summary import export_domain_summary
from core.outgoing import OutgoingMessages
from core.store import CampaignStore, RecipientState, StoreError
from core.suppression import write_suppression
from core.template import MessagePreview, TemplateError, date_header, describe, new_message_id

EXIT_OK, EXIT_USAGE = 0, 2


def add_preview_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=Path, required=True, help="the campaign file")
    parser.add_argument("--row", type=int, default=1, help="the recipient, 1 = the first row")
    parser.add_argument(
        "--decoded", action="store_true", help="headers decoded and parts listed, not raw bytes"
    )


def add_export_arguments(
    parser: argparse.ArgumentParser, output: str = "the suppression file"
) -> None:
    parser.add_argument("--state", type=Path, required=True, help="the campaign file")
    parser.add_argument("--output", type=Path, required=True, help=output)


def preview_message(store: CampaignStore, row: int, *, at: float | None = None) -> bytes:
    """The bytes recipient ``row`` (1-based) is sent: the API the window's preview uses.

    Raises LookupError for a row the campaign does not have, TemplateError or DKIMError
    when the message or the key cannot be used.
    """
    recipient = _recipient(store, row)
    messages = OutgoingMessages(store.message, store.settings)
    now = time.time() if at is None else at
    rendered = messages.render(
        recipient.fields,
        to=recipient.email,
        message_id=recipient.message_id or new_message_id(store.sender),
        date=recipient.date_header or date_header(now),
    )
    return rendered.data


def run_preview(args: argparse.Namespace) -> int:
    try:
        with CampaignStore.open(args.state, read_only=True)[0] as store:
            data = preview_message(store, args.row)
    except (StoreError, TemplateError, DKIMError, LookupError) as error:
        print(f"mxmailer preview: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.decoded:
        print(_decoded(describe(data)))
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def run_export_bounces(args: argparse.Namespace) -> int:
    try:
        with CampaignStore.open(args.state, read_only=True)[0] as store:
            addresses = store.bounced_addresses()
            others = len(store.bounced_addresses("")) + len(store.bounced_addresses("sender"))
        written = write_suppression(args.output, addresses)
    except StoreError as error:
        print(f"mxmailer export-bounces: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # named after the file asked for, not a temporary one
        print(f"mxmailer export-bounces: cannot write {args.output}: {error.strerror}",
              file=sys.stderr)
        return EXIT_USAGE
    print(f"{written} bounced address(es) written to {args.output}", file=sys.stderr)
    if others:
        print(
            f"{others} other bounce(s) left out: the servers blamed the sender or gave no "
            "clear reason, so those addresses may be fine",
            file=sys.stderr,
        )
    return EXIT_OK


def run_export_domains(args: argparse.Namespace) -> int:
    try:
        with CampaignStore.open(args.state, read_only=True)[0] as store:
            domains = export_domain_summary(store, args.output)
    except StoreError as error:
        print(f"mxmailer export-domains: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{domains} domain(s) summarized in {args.output}", file=sys.stderr)
    return EXIT_OK


def _recipient(store: CampaignStore, row: int) -> RecipientState:
    if row < 1:
        raise LookupError(f"--row {row}: rows are numbered from 1")
    try:
        return store.get(row)
    except KeyError as error:
        total = sum(store.counts().values())
        raise LookupError(f"--row {row}: the campaign has {total} rows") from error


def _decoded(preview: MessagePreview) -> str:
    lines = [f"{name}: {value}" for name, value in preview.headers]
    if preview.text is not None:
        lines += ["", "--- text ---", preview.text]
    if preview.html is not None:
        lines += ["", "--- html ---", preview.html]
    for attachment in preview.attachments:
        lines.append(
            f"--- attachment: {attachment.filename} ({attachment.content_type}, "
            f"{attachment.size} bytes)"
        )
    return "\n".join(lines)
