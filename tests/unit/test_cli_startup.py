"""What ``mxmailer`` imports before it does anything: every run pays it, and the send
benchmark counts it in messages/s. Each check runs a fresh interpreter and reads its
``sys.modules``, so a module-level import of something heavy makes it fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli

REPOSITORY = Path(__file__).resolve().parents[2]

#: Third-party packages that only some paths need (DKIM keys, address checks, CSV
#: encoding detection, DNS) and the commands that are not ``send``.
RARE = ("cryptography", "email_validator", "charset_normalizer", "keyring", "getpass")
OTHER_COMMANDS = ("core.preflight", "core.bounces", "core.review", "core.lab", "gui")
#: What ``--version`` and ``--help`` must not import either: any command's module.
COMMANDS = (*OTHER_COMMANDS, "core.send", "core.engine", "core.store", "dns", "asyncio")


def imported_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPOSITORY, capture_output=True, text=True,
        check=True, timeout=60,
    )
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return modules


def among(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


@pytest.mark.parametrize("argv", [["--version"], ["--help"], []])
def test_version_and_help_import_no_command(argv: list[str]) -> None:
    code = (
        "import contextlib, io, core.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    core.cli.main({argv!r})"
    )
    modules = imported_after(code)
    assert among(modules, COMMANDS + RARE) == []


def test_send_imports_what_sending_needs_and_no_other_command() -> None:
    modules = imported_after(
        "import core.cli\ncore.cli.build_parser(['send']).parse_args(['send'])"
    )
    assert "core.send" in modules and "core.engine" in modules
    assert among(modules, OTHER_COMMANDS + RARE) == []


def test_a_dkim_key_and_an_address_check_import_their_packages_when_used(
    tmp_path: Path,
) -> None:
    """The other side of the tests above: the deferred imports do happen, where needed."""
    key = tmp_path / "ed.key"
    key.write_text("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n")  # a 32-byte seed
    key.chmod(0o600)
    modules = imported_after(
        "from core.dkim import DKIMSigner\nfrom core.recipients import check_address\n"
        f"DKIMSigner({str(key)!r}, selector='s', domain='d.test')\n"
        "assert not isinstance(check_address('ann@example.com'), str)"
    )
    assert "cryptography" in modules and "email_validator" in modules


def test_every_command_is_listed_and_only_the_chosen_one_gets_its_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser(()).parse_args(["--help"])
    listing = capsys.readouterr().out
    assert all(name in listing for name in cli.COMMANDS)
    parser = cli.build_parser(["probe"])
    args = parser.parse_args(["probe", "127.0.0.1", "25", "--tls", "off"])
    assert (args.command, args.port, args.tls, args.run) == ("probe", 25, "off", cli._run_probe)
    with pytest.raises(SystemExit):
        parser.parse_args(["send", "--sender", "a@b.test"])  # send's options were not added
    assert "unrecognized arguments: --sender" in capsys.readouterr().err


def test_the_full_parser_knows_every_commands_options() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["preflight", "--dnsbl", "zone.test"])
    assert args.dnsbl == ["zone.test"] and args.run is not None
    assert parser.parse_args(["send", "--relay-user", "u"]).relay_user == "u"


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["send", "--state", "x"], "send"),
        (["--version"], None),
        ([], None),
        (["-h", "preflight", "--state", "send"], "preflight"),
    ],
)
def test_chosen_command(argv: list[str], command: str | None) -> None:
    assert cli.chosen_command(argv) == command
