"""The shared templates through a real Postfix: ``mxmailer send`` in a subprocess finds
Postfix as the MX of a lab domain (through the lab's DNS) and delivers the personalised,
DKIM-signed messages; what Postfix stored in its Maildir is read back as a mail reader
reads it and checked against expectations computed from the inputs alone (text, HTML,
attachment bytes, lines that start with a dot, Subject, To), and dkimpy verifies each
signature as stored, Postfix's trace headers on top, against the key published in the
lab DNS and fetched over UDP.

One Postfix (no greylisting: that has its own tests) serves the module; each campaign
mails its own local parts, so each test reads only its own messages. Skipped without
Postfix, except under CI, where it fails (``tests.integration.mta``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.lab import LabDNS, LabZone
from tests.integration.campaign_input import (
    ADDED,
    MESSAGES,
    PASS,
    RECIPIENTS,
    TEMPLATES,
    DKIMKey,
    Template,
    campaign_options,
    check_content,
    check_signature_tags,
    check_unsubscribe,
    dkim_verdict,
    header_names,
    make_key,
    message_id,
    parse,
    read_rows,
    run_cli,
    write_rows,
)
from tests.integration.mta import PostfixMX, split_prepended
from tests.integration.test_cli_send import send_args

DOMAIN = "campaign.test"
#: simple.csv's first rows: six different names, most of them not ASCII.
ROWS = 6

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def mx() -> Iterator[PostfixMX]:
    with PostfixMX(DOMAIN, greylist_delay=None) as server:
        yield server


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DKIMKey]:
    directory = tmp_path_factory.mktemp("dkim")
    return {kind: make_key(kind, directory) for kind in ("rsa", "ed25519")}


def postfix_recipients(path: Path, prefix: str) -> dict[str, dict[str, str]]:
    """simple.csv's first rows moved to Postfix's domain (its users are ``[a-z0-9_-]``),
    written to ``path``: address -> fields."""
    rows = read_rows(RECIPIENTS / "simple.csv")[:ROWS]
    moved = {f"{prefix}-{row.address.split('@')[0]}@{DOMAIN}": row.fields for row in rows}
    names = list(rows[0].fields)
    write_rows(
        path,
        ["email", *names],
        [[address, *(fields[n] for n in names)] for address, fields in moved.items()],
    )
    return moved


@pytest.mark.parametrize("name", TEMPLATES)
async def test_a_shared_template_through_postfix_arrives_intact_and_signed(
    tmp_path: Path, mx: PostfixMX, keys: dict[str, DKIMKey], name: str
) -> None:
    message_path = MESSAGES / name
    template = Template.read(message_path)
    zone = LabZone().mx_for(DOMAIN, {f"mx.{DOMAIN}": mx.address})
    for key in keys.values():
        zone.add_txt(key.txt_name, key.txt)
    stem = name.split("-")[0].removesuffix(".eml")
    campaigns: dict[str, dict[str, dict[str, str]]] = {}
    stored: dict[str, bytes] = {}
    async with LabDNS(zone) as dns:
        for kind, key in keys.items():
            recipients = tmp_path / f"{kind}.csv"
            campaigns[kind] = postfix_recipients(recipients, f"{stem}-{kind}")
            code, _, err = await run_cli(
                *send_args(recipients, message_path),
                *campaign_options(key),
                "--nameserver",
                dns.nameserver,
                "--port",
                str(mx.port),
                "--state",
                tmp_path / f"{kind}.mxm",
                "--timeout",
                "10",
                "--progress",
                "none",
            )
            assert code == 0, err + mx.log_tail()
        for addresses in campaigns.values():
            for address in addresses:
                [stored[address]] = await mx.wait_for_messages(1, address)
        server = (dns.host, dns.port)
        # As stored, trace headers and all, with the CRLF line ends of the wire.
        verdicts = await asyncio.to_thread(
            lambda: {a: dkim_verdict(m.replace(b"\n", b"\r\n"), server) for a, m in stored.items()}
        )
    assert verdicts == dict.fromkeys(stored, PASS)
    ids = set()
    for kind, addresses in campaigns.items():
        for address, fields in addresses.items():
            traces, content = split_prepended(stored[address])
            assert any(trace.lower().startswith(b"received:") for trace in traces)
            message = parse(content.replace(b"\n", b"\r\n"))
            check_content(message, template, address, fields)
            check_unsubscribe(message, address)
            check_signature_tags(message, keys[kind])
            assert header_names(message) == template.expected_headers(*ADDED), address
            ids.add(message_id(message))
    assert len(ids) == len(stored) == 2 * ROWS
