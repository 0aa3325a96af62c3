"""The ways the window is started: ``mxmailer-gui --smoke`` as CI runs it, ``mxmailer
gui`` with no screen, and core's command line staying free of Qt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.relay import ROUTE, CampaignRoute
from core.store import CampaignStore, NewRecipient

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: The smoke run takes ~3 s (greylisting 2 s); generous for a loaded CI machine.
TIMEOUT = 90


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", **env}
    return subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd=ROOT, timeout=TIMEOUT
    )


def script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: install the project (make install) to get its scripts")
    return str(path)


def test_mxmailer_gui_smoke_sends_the_sandbox_campaign_and_exits_0(tmp_path: Path) -> None:
    done = run([script("mxmailer-gui"), "--smoke", "--data-dir", str(tmp_path)])
    assert done.returncode == 0, done.stderr
    assert "smoke: 24 recipients: 5 bounced, 18 delivered, 1 invalid" in done.stderr
    assert "ended as expected" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(list(tmp_path.glob("sandbox-*.mxm"))) == 1


def test_mxmailer_gui_with_no_screen_runs_the_smoke_test_instead_of_hanging() -> None:
    done = run([script("mxmailer"), "gui"])
    assert done.returncode == 0, done.stderr
    assert "nobody can see the window: running the sandbox smoke test" in done.stderr
    assert "ended as expected" in done.stderr


def test_mxmailer_gui_help_and_unknown_options() -> None:
    done = run([script("mxmailer"), "gui", "--help"])
    assert done.returncode == 0, done.stderr
    assert "usage: mxmailer gui" in done.stdout and "--smoke" in done.stdout
    wrong = run([script("mxmailer"), "send", "--no-such-option"])
    assert wrong.returncode == 2 and "unrecognized arguments: --no-such-option" in wrong.stderr


def test_core_never_imports_qt() -> None:
    probe = (
        "import sys, core.cli, core.send, core.engine, core.lab.world\n"
        "core.cli.build_parser()\n"
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'qasync')))\n"
        "print(qt)\n"
    )
    done = run([sys.executable, "-c", probe])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_rehearsal_refuses_a_campaign_that_goes_through_a_real_relay(tmp_path: Path) -> None:
    """The campaign file remembers a relay (a stored route wins over Settings): a
    rehearsal must not take its mail, with the keyring's password, to that relay."""
    state = tmp_path / "relayed.mxm"
    with CampaignStore.create(
        state,
        sender="news@sender.test",
        message=b"From: <news@sender.test>\r\nSubject: Hi\r\n\r\nHi\r\n",
        settings={ROUTE: CampaignRoute(relays=("smtp.provider.test:587",)).setting()},
    ) as store:
        store.add_recipients([NewRecipient("ada@plain.test", "plain.test", {})])
    done = run(
        [sys.executable, "-m", "gui.smoke", str(state), "--nameserver", "127.0.0.1:9",
         "--port", "9", "--timeout", "20"],
        MXMAILER_RELAY_PASSWORD="never-used",
    )  # fmt: skip
    assert done.returncode != 0, done.stderr
    assert "a rehearsal reaches only the lab" in done.stderr
    assert "smtp.provider.test:587" in done.stderr
    with CampaignStore.open(state, read_only=True)[0] as store:
        assert store.get(1).attempts == 0  # nothing was tried
