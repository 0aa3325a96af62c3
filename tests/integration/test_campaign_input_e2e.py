"""Campaign input end to end: the shared recipient files and templates, through ``mxmailer
send`` in a subprocess, to the lab's MX servers, and read back as a mail reader reads them.

Every expectation is computed from the inputs (``tests.integration.campaign_input``): the
template read with the standard library's parser, the rows with the ``csv`` module, the
fields merged there. DKIM signatures are checked by dkimpy against a TXT record added to
the lab world's own DNS zone and fetched over UDP, as a receiving MX would.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from core.lab.world import LabWorld, sandbox_world
from tests.integration.campaign_input import (
    ADDED,
    FAIL,
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
    tamper_unsubscribe,
    write_rows,
)
from tests.integration.test_cli_send import lab_args, read_report, send_args

pytestmark = pytest.mark.timeout(90)

SIMPLE = RECIPIENTS / "simple.csv"
WELCOME = MESSAGES / "welcome.eml"

#: messy.csv's rows by their Name cell: what a careful reader of the file expects.
MESSY_DELIVERED = {
    "Doe, John": "john.doe@plain.test",
    "Jane": "jane@plain.test",  # the spaces around it are not part of the address
    "Bob\r\nSmith": "bob@plain.test",
    "Mallory": "mallory@plain.test",
    "Eve\r\nBcc: victim@elsewhere.test": "eve@plain.test",
    "Trailing": "trailing-dot@plain.test",  # a fully qualified domain: the same name
    "Quoted": '"quoted local"@plain.test',
    "Plus": "tag+news@plain.test",
    "Display": "carol@plain.test",  # "Carol <carol@plain.test>"
}
#: Invalid rows by Name, and a word of the reason the report must give.
MESSY_INVALID = {
    "Trent": "line break",
    "NoAt": "no @",
    "Double": "more than one @",
    "Dots": "two dots",
    "Empty": "empty",
    "Long": "64",
}
#: On domains that do not exist (bücher.test): accepted at import, bounced by the DNS.
MESSY_NO_SUCH_DOMAIN = ("IDN", "IDN2")

MESSY_TEMPLATE = (
    "From: Example Club <news@sender.test>\n"
    "Subject: Hello {{name}}\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "Dear {{name}},\n"
    "you are on our list as {{email}} ({{note}}).\n"
)

EXCEL_TEMPLATE = (
    "From: Example Club <news@sender.test>\n"
    "Subject: Hallo {{vorname}} {{nachname}}\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/alternative; boundary="b-excel"\n'
    "\n"
    "--b-excel\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "Hallo {{vorname}} {{nachname}} ({{firma}}), Adresse: {{email}}\n"
    ".Punkt am Zeilenanfang.\n"
    "--b-excel\n"
    "Content-Type: text/html; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "<p>Hallo {{vorname}} {{nachname}} ({{firma}})</p>"
    '<a href="https://sender.test/profil?u={{email}}">Profil</a>\n'
    "--b-excel--\n"
)

CP1252_TEMPLATE = (
    "From: Example Club <news@sender.test>\n"
    "Subject: Bonjour {{name}}\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/alternative; boundary="b-cp1252"\n'
    "\n"
    "--b-cp1252\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "Bonjour {{name}}, votre adresse : {{email}}\n"
    "--b-cp1252\n"
    "Content-Type: text/html; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    '<p>Bonjour <b>{{name}}</b></p><a href="https://sender.test/p?u={{email}}">profil</a>\n'
    "--b-cp1252--\n"
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DKIMKey]:
    directory = tmp_path_factory.mktemp("dkim")
    return {kind: make_key(kind, directory) for kind in ("rsa", "ed25519")}


def nameserver(world: LabWorld) -> tuple[str, int]:
    assert world.dns is not None
    return world.dns.host, world.dns.port


def smtp_commands(world: LabWorld) -> list[str]:
    """Every command line every lab host received."""
    return [
        line
        for host in world.hosts.values()
        if host.server is not None
        for connection in host.server.connections
        for line in connection.commands
    ]


def write_template(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


# ---- the shared templates, personalised, signed, unsubscribable -----------------------------


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
@pytest.mark.parametrize("name", TEMPLATES)
async def test_the_shared_templates_arrive_personalised_signed_and_unsubscribable(
    tmp_path: Path, keys: dict[str, DKIMKey], name: str, kind: str
) -> None:
    key = keys[kind]
    message_path = MESSAGES / name
    template = Template.read(message_path)
    rows = {row.address: row.fields for row in read_rows(SIMPLE)}
    report = tmp_path / "report.csv"
    world = sandbox_world(greylist_seconds=1)
    world.zone.add_txt(key.txt_name, key.txt)
    async with world:
        code, _, err = await run_cli(
            *send_args(SIMPLE, message_path),
            "--report",
            report,
            *campaign_options(key),
            *lab_args(world, tmp_path / "campaign.mxm"),
        )
        received = list(world.messages())
        server = nameserver(world)
        verdicts = await asyncio.to_thread(
            lambda: [dkim_verdict(m.data, server) for m in received]
        )
        tampered = await asyncio.to_thread(
            dkim_verdict, tamper_unsubscribe(received[0].data), server
        )
    assert code == 0, err
    assert {row["email"]: row["status"] for row in read_report(report)} == dict.fromkeys(
        rows, "delivered"
    )
    assert sorted(r for m in received for r in m.recipients) == sorted(rows)
    ids = []
    for arrived in received:
        [recipient] = arrived.recipients
        message = parse(arrived.data)
        check_content(message, template, recipient, rows[recipient])
        check_unsubscribe(message, recipient)
        assert header_names(message) == template.expected_headers(*ADDED)
        check_signature_tags(message, key)
        ids.append(message_id(message))
    assert len(set(ids)) == len(rows)
    assert verdicts == [PASS] * len(rows)
    assert tampered == FAIL  # List-Unsubscribe is covered by the signature


# ---- messy.csv: what is refused, what is dropped, what is neutralised ---------------------------


async def test_the_messy_file_sends_only_valid_rows_and_no_injected_header(
    tmp_path: Path,
) -> None:
    recipients = RECIPIENTS / "messy.csv"
    rows = {row.fields["name"]: row for row in read_rows(recipients, address="e-mail")}
    template_path = write_template(tmp_path / "messy.eml", MESSY_TEMPLATE)
    template = Template.read(template_path)
    report = tmp_path / "report.csv"
    async with sandbox_world(greylist_seconds=1) as world:
        code, _, err = await run_cli(
            *send_args(recipients, template_path),
            "--report",
            report,
            *lab_args(world, tmp_path / "campaign.mxm"),
        )
        received = list(world.messages())
        commands = smtp_commands(world)
    assert code == 1, err  # the two bücher.test rows bounce: that domain does not exist
    reported = read_report(report)
    # Every non-blank row once, except the duplicate (JANE@PLAIN.TEST after jane@).
    assert len(reported) == len(MESSY_DELIVERED) + len(MESSY_INVALID) + len(MESSY_NO_SUCH_DOMAIN)
    assert Counter(row["status"] for row in reported) == {
        "delivered": len(MESSY_DELIVERED),
        "invalid": len(MESSY_INVALID),
        "bounced": len(MESSY_NO_SUCH_DOMAIN),
    }
    assert [row["email"].lower() for row in reported].count("jane@plain.test") == 1
    assert "JANE@PLAIN.TEST" not in [row["email"] for row in reported]
    invalid = {row["email"]: row["detail"] for row in reported if row["status"] == "invalid"}
    assert set(invalid) == {rows[name].address for name in MESSY_INVALID}
    for name, reason in MESSY_INVALID.items():
        assert reason in invalid[rows[name].address], (name, invalid[rows[name].address])
    delivered = {row["email"] for row in reported if row["status"] == "delivered"}
    assert delivered == set(MESSY_DELIVERED.values())
    # Nothing for the invalid rows, nor for any address smuggled into a cell.
    assert sorted(r for m in received for r in m.recipients) == sorted(MESSY_DELIVERED.values())
    assert not [line for line in commands if "elsewhere" in line.lower()]
    by_recipient = {m.recipients[0]: parse(m.data) for m in received}
    for name, address in MESSY_DELIVERED.items():
        if name == "Quoted":  # see test_a_quoted_local_part_is_addressed_as_itself
            continue
        message = by_recipient[address]
        check_content(message, template, address, rows[name].fields)
        assert header_names(message) == template.expected_headers(), address
    eve = by_recipient["eve@plain.test"]
    assert set(header_names(eve)) == {
        "message-id",
        "date",
        "to",
        "from",
        "subject",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
    assert str(eve["Subject"]) == "Hello Eve  Bcc: victim@elsewhere.test"  # CR LF: 2 spaces


async def test_a_quoted_local_part_is_addressed_as_itself(tmp_path: Path) -> None:
    """RCPT TO and the To header must name the same mailbox: ``"quoted local"@plain.test``
    (RFC 5321 §4.1.2 Quoted-string), not a local part holding the quote characters.

    Fails with the code of commit 45286b8: ``core.message.address.addr_spec`` quotes the
    already quoted local part that the importer stores, giving To:
    ``<"\\"quoted local\\""@plain.test>`` while RCPT TO is ``<"quoted local"@plain.test>``."""
    address = '"quoted local"@plain.test'
    recipients = write_rows(tmp_path / "r.csv", ["email", "name"], [[address, "Quoted"]])
    template_path = write_template(tmp_path / "m.eml", MESSY_TEMPLATE.replace("{{note}}", "-"))
    async with sandbox_world() as world:
        code, _, err = await run_cli(
            *send_args(recipients, template_path),
            *campaign_options(None),
            *lab_args(world, tmp_path / "c.mxm"),
        )
        [arrived] = world.messages()
    assert code == 0, err
    assert arrived.recipients == (address,)
    message = parse(arrived.data)
    check_unsubscribe(message, address)
    to = message["To"].addresses
    assert [(a.username, a.domain) for a in to] == [("quoted local", "plain.test")], str(
        message["To"]
    )


# ---- legacy exports: the names arrive as the user typed them ------------------------------------


@pytest.mark.parametrize(
    ("file", "encoding", "delimiter", "address", "template", "spot_checks"),
    [
        pytest.param(
            "excel-semicolon-bom.csv",
            "utf-8-sig",
            ";",
            "e-mail",
            EXCEL_TEMPLATE,
            {
                "max.mustermann@plain.test": "Hallo Max Mustermann",
                "erika@grey.test": "Hallo Erika Mustermann",
                "jürgen@plain.test": "Hallo Jürgen Groß",
            },
            id="excel-utf8-bom-semicolon",
        ),
        pytest.param(
            "windows-1252.csv",
            "cp1252",
            ",",
            "email_address",
            CP1252_TEMPLATE,
            {
                "francois@plain.test": "Bonjour François Ça",
                "renee@plain.test": "Bonjour Renée \u201cQuotes\u201d Dupré",
                "jose@plain.test": "Bonjour José €uro",
            },
            id="windows-1252",
        ),
    ],
)
async def test_names_from_legacy_exports_arrive_decoded(
    tmp_path: Path,
    file: str,
    encoding: str,
    delimiter: str,
    address: str,
    template: str,
    spot_checks: dict[str, str],
) -> None:
    recipients = RECIPIENTS / file
    rows = read_rows(recipients, encoding=encoding, delimiter=delimiter, address=address)
    template_path = write_template(tmp_path / "legacy.eml", template)
    parsed = Template.read(template_path)
    async with sandbox_world(greylist_seconds=1) as world:
        code, _, err = await run_cli(
            *send_args(recipients, template_path), *lab_args(world, tmp_path / "c.mxm")
        )
        received = {m.recipients[0].lower(): parse(m.data) for m in world.messages()}
    assert code == 0, err
    assert sorted(received) == sorted(row.address.lower() for row in rows)
    for row in rows:
        message = received[row.address.lower()]
        # The address as written: JÜRGEN keeps the case of its local part.
        check_content(message, parsed, row.address, row.fields)
    subjects = {recipient: str(message["Subject"]) for recipient, message in received.items()}
    assert subjects == spot_checks


async def test_an_ampersand_in_a_company_name_is_escaped_in_html_only(tmp_path: Path) -> None:
    recipients = RECIPIENTS / "excel-semicolon-bom.csv"
    template_path = write_template(tmp_path / "legacy.eml", EXCEL_TEMPLATE)
    async with sandbox_world(greylist_seconds=1) as world:
        code, _, err = await run_cli(
            *send_args(recipients, template_path), *lab_args(world, tmp_path / "c.mxm")
        )
        [max_] = [parse(m.data) for m in world.messages() if m.recipients[0].startswith("max.")]
    assert code == 0, err
    text, html = max_.get_body(("plain",)), max_.get_body(("html",))
    assert text is not None and html is not None
    assert "(Müller & Söhne GmbH)" in text.get_content()
    assert "(Müller &amp; Söhne GmbH)" in html.get_content()
    assert 'href="https://sender.test/profil?u=max.mustermann%40plain.test"' in html.get_content()


# ---- suppression, bounces, previews --------------------------------------------------------------


async def test_suppressed_addresses_and_domains_are_reported_and_never_contacted(
    tmp_path: Path,
) -> None:
    rows = {row.address: row.fields for row in read_rows(SIMPLE)}
    suppression = tmp_path / "suppress.txt"
    suppression.write_text("# do not mail\nUSER0@Plain.Test\n\n@grey.test\n", encoding="utf-8")
    suppressed = {a for a in rows if a == "user0@plain.test" or a.endswith("@grey.test")}
    assert len(suppressed) == 11
    report = tmp_path / "report.csv"
    async with sandbox_world(greylist_seconds=1) as world:
        code, _, err = await run_cli(
            *send_args(SIMPLE, WELCOME),
            "--suppression",
            suppression,
            "--report",
            report,
            *lab_args(world, tmp_path / "c.mxm"),
        )
        received = sorted(r for m in world.messages() for r in m.recipients)
        grey_connections = world.server("mx.grey.test").stats.connections
        commands = smtp_commands(world)
    reported = {row["email"]: row for row in read_report(report)}
    assert set(reported) == set(rows)
    statuses = {address: row["status"] for address, row in reported.items()}
    assert statuses == {a: "suppressed" if a in suppressed else "delivered" for a in rows}
    assert "USER0@Plain.Test" in reported["user0@plain.test"]["detail"]
    assert "@grey.test" in reported["user1@grey.test"]["detail"]
    assert code == 0, err  # suppressed rows were never to be sent: all the others arrived
    assert received == sorted(set(rows) - suppressed)
    assert grey_connections == 0
    assert not [line for line in commands if "user0@" in line.lower()]


PREVIEW_ROWS = [
    ["ada@plain.test", "Ada", "Lovelace", "London"],
    ["nobody@bounce.test", "No", "Body", "Nowhere"],
    ["zoe@equal.test", "Zoë", "Nguyễn", "Hà Nội"],
    ["unknown@bounce.test", "Un", "Known", "Nowhere"],
    ["bea@bounce.test", "Béa", "Dupont", "Lyon"],
]
BOUNCED = {"nobody@bounce.test", "unknown@bounce.test"}  # bounce.test's unknown users


async def test_export_bounces_then_preview_equals_what_arrived(
    tmp_path: Path, keys: dict[str, DKIMKey]
) -> None:
    key = keys["rsa"]
    recipients = write_rows(
        tmp_path / "r.csv", ["email", "first_name", "last_name", "city"], PREVIEW_ROWS
    )
    state = tmp_path / "campaign.mxm"
    bounces = tmp_path / "bounces.txt"
    world = sandbox_world(greylist_seconds=1)
    world.zone.add_txt(key.txt_name, key.txt)
    async with world:
        code, _, err = await run_cli(
            *send_args(recipients, WELCOME), *campaign_options(key), *lab_args(world, state)
        )
        assert code == 1, err  # two bounced
        received = {m.recipients[0]: m.data for m in world.messages()}
        exported = await run_cli("export-bounces", "--state", state, "--output", bounces)
        previews = await asyncio.gather(
            *(
                run_cli("preview", "--state", state, "--row", str(number))
                for number in range(1, len(PREVIEW_ROWS) + 1)
            ),
            run_cli("preview", "--state", state, "--row", "3", "--decoded"),
        )
        # The exported file is a suppression list for the next campaign.
        again = await run_cli(
            *send_args(recipients, WELCOME),
            "--suppression",
            bounces,
            "--report",
            tmp_path / "again.csv",
            *lab_args(world, tmp_path / "again.mxm"),
        )
        rcpt_nobody = [c for c in smtp_commands(world) if "nobody@bounce.test" in c.lower()]
    assert exported[0] == 0, exported[2]
    entries = [
        line.strip()
        for line in bounces.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(entries) == sorted(BOUNCED)
    delivered = [row[0] for row in PREVIEW_ROWS if row[0] not in BOUNCED]
    assert sorted(received) == sorted(delivered)
    for number, row in enumerate(PREVIEW_ROWS, start=1):
        preview_code, preview, preview_err = previews[number - 1]
        assert preview_code == 0, preview_err
        if row[0] in received:  # the lab adds no trace header: the bytes must be equal
            assert preview == received[row[0]], row[0]
    decoded_code, decoded, decoded_err = previews[-1]
    assert decoded_code == 0, decoded_err
    text = decoded.decode("utf-8")
    assert "Subject: Welcome, Zoë — your membership in Hà Nội" in text
    assert "Hello Zoë Nguyễn," in text
    assert ".A line that starts with a dot must survive SMTP dot-stuffing." in text
    again_code, _, again_err = again
    assert again_code == 0, again_err  # the bounced addresses are now suppressed
    again_rows = {row["email"]: row["status"] for row in read_report(tmp_path / "again.csv")}
    assert again_rows == {
        row[0]: "suppressed" if row[0] in BOUNCED else "delivered" for row in PREVIEW_ROWS
    }
    assert len(rcpt_nobody) == 1  # the first campaign's RCPT TO only
