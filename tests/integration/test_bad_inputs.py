"""Bad inputs a user will actually make, through ``mxmailer send`` as a user runs it.

Each one must stop the command with exit 2 and one message that names the problem and
says what to do, before anything is sent or imported: no campaign file, not even a
half-made one (``*.importing``), is left behind. The exception is a message over a
server's SIZE, which only that server can tell: each of its recipients fails with the
reason, and the message is never sent.
"""

from __future__ import annotations

import io
import os
import socket
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.lab.world import sandbox_world
from core.template import Attachment, MessageParts, MessageTemplate
from tests.integration.test_cli_send import (
    lab_args,
    mxmailer,
    read_report,
    send_args,
    write_csv,
    write_message,
)

MESSAGE_WITH_FIELD = b"From: <news@sender.test>\nSubject: Hi {{first_name}}\n\nHello.\n"


def xlsx_bytes() -> bytes:
    """A real (tiny) Office Open XML workbook: what Excel saves by default."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as workbook:
        workbook.writestr("[Content_Types].xml", "<Types/>")
        workbook.writestr("xl/workbook.xml", "<workbook/>")
        workbook.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return buffer.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def sparse(path: Path, head: bytes, size: int) -> Path:
    """``head`` then a hole up to ``size`` bytes: a 2 GB file that costs nothing to make."""
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


def list_longer_than_a_sample() -> bytes:
    """Real rows past the first MiB (what is sniffed), so that only the size can tell."""
    return b"email,name\n" + b"".join(b"u%d@plain.test,N\n" % n for n in range(80_000))


#: A case: what to change from a good run (files written in the folder given), and the
#: words the message must hold: the problem, then what to do.
Case = Callable[[Path], dict[str, str | Path]]


def recipients_file(name: str, data: bytes | Callable[[Path], Path]) -> Case:
    def make(folder: Path) -> dict[str, str | Path]:
        path = folder / name
        if callable(data):
            data(path)
        else:
            path.write_bytes(data)
        return {"--recipients": path}

    return make


def message_file(data: bytes) -> Case:
    def make(folder: Path) -> dict[str, str | Path]:
        path = folder / "message.eml"
        path.write_bytes(data)
        return {"--message": path}

    return make


def not_a_key(folder: Path) -> dict[str, str | Path]:
    key = folder / "dkim.pem"
    key.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEga2V5\n-----END CERTIFICATE-----\n")
    key.chmod(0o600)
    return {"--dkim-key": key, "--dkim-selector": "s1"}


def option(name: str, value: str) -> Case:
    return lambda _: {name: value}


@pytest.fixture
def silent_nameserver() -> Iterator[str]:
    """A UDP port that takes queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{silent.getsockname()[1]}"


CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    "xlsx renamed .csv": (
        recipients_file("list.csv", xlsx_bytes()),
        ("is an Excel workbook, not CSV", "File > Save As > CSV UTF-8"),
    ),
    "PNG renamed .csv": (
        recipients_file("list.csv", PNG),
        ("is a PNG image, not CSV", "export the list as CSV UTF-8"),
    ),
    "empty file": (
        recipients_file("list.csv", b""),
        ("is empty", "it needs a header row with an email column"),
    ),
    "2 GB of NULs": (
        recipients_file("list.csv", lambda p: sparse(p, b"", 2 << 30)),
        ("is not a text file (it holds NUL bytes)", "export the list as CSV UTF-8"),
    ),
    "2 GB list": (
        recipients_file("list.csv", lambda p: sparse(p, list_longer_than_a_sample(), 2 << 30)),
        ("is 2,048 MiB; MX Mailer reads lists of at most 256 MiB", "split the list"),
    ),
    "message without From": (
        message_file(b"Subject: Hi\n\nHello.\n"),
        ("the message has no From header", "add one with your address"),
    ),
    "unknown merge field": (
        message_file(MESSAGE_WITH_FIELD),
        ("the message uses fields no column provides: first_name", "(columns: name)"),
    ),
    "DKIM key that is not a key": (
        not_a_key,
        ("dkim.pem is not a private key", "make one with `openssl genpkey"),
    ),
    "sender without a domain": (
        option("--sender", "news"),
        ("--sender 'news': the address has no @", "give the full address"),
    ),
    "sender with an empty domain": (
        option("--sender", "news@"),
        ("--sender 'news@': the address has nothing after the @", "e.g. news@example.com"),
    ),
    "HELO name with spaces": (
        option("--helo", "my laptop"),
        ("--helo 'my laptop': a HELO name is one DNS name, without spaces", "host name"),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_bad_input_exits_2_with_what_to_do_and_leaves_nothing(
    tmp_path: Path, name: str
) -> None:
    make, words = CASES[name]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    options: dict[str, str | Path] = {
        "--recipients": write_csv(inputs / "r.csv", ["ann@plain.test"]),
        "--message": write_message(inputs / "m.eml"),
        "--sender": "news@sender.test",
    }
    options |= make(inputs)
    args = [str(part) for pair in options.items() for part in pair]
    state = tmp_path / "campaign.mxm"
    async with sandbox_world() as world:
        code, _, err = await mxmailer("send", *args, *lab_args(world, state))
        sent = len(world.messages())
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mxmailer send: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0]
    assert sent == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]  # no campaign at all


async def test_a_nameserver_that_does_not_answer_says_which_and_what_to_check(
    tmp_path: Path, silent_nameserver: str
) -> None:
    recipients = write_csv(tmp_path / "r.csv", ["ann@plain.test"])
    code, _, err = await mxmailer(
        *send_args(recipients, write_message(tmp_path / "m.eml")),
        "--nameserver", silent_nameserver, "--timeout", "1",
        "--state", tmp_path / "campaign.mxm", "--progress", "none",
    )  # fmt: skip
    assert code == 2, err
    assert f"{silent_nameserver} did not answer a DNS query within 1 s" in err
    assert "check the --nameserver address and port, and that the server runs" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.eml", "r.csv"]


async def test_a_message_over_the_servers_size_is_never_sent_and_says_why(tmp_path: Path) -> None:
    """50 MB attached; the lab advertises SIZE 10 MiB. The limit is each server's own, so
    only a connection can tell: every recipient is refused before MAIL FROM, with the
    reason and what to do, and the run ends with exit 1 (not delivered)."""
    parts = MessageParts(
        "Club <news@sender.test>",
        "The photos",
        "Attached.",
        attachments=(Attachment("photos.zip", os.urandom(50 << 20)),),
    )
    message = tmp_path / "m.eml"
    message.write_bytes(MessageTemplate.from_parts(parts).source)
    recipients = write_csv(tmp_path / "r.csv", ["ann@plain.test", "bob@plain.test"])
    report = tmp_path / "report.csv"
    async with sandbox_world() as world:
        code, _, err = await mxmailer(
            *send_args(recipients, message),
            "--report", report, *lab_args(world, tmp_path / "campaign.mxm"),
            timeout=180,
        )  # fmt: skip
        received = world.messages()
    assert code == 1, err
    assert received == []
    rows = read_report(report)
    assert [row["status"] for row in rows] == ["bounced", "bounced"]
    for row in rows:
        assert (
            "is larger than the receiving server's limit of 10485760 octets (SIZE)"
            in (row["response"])
        )
        assert "make the message smaller" in row["response"]
