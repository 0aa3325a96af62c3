"""The app bundle: built with the command ``make app`` runs, then started as a user would.

One build per test run (a session fixture, into a temporary folder, never the
checkout's dist/). The bundle is then run from outside the repository with an
environment that has no Python or virtualenv in it, so it can only work with what it
carries: the window's smoke run (offscreen, the sandbox campaign to the in-process lab,
exit 0), and the command line, from ``--help`` to a real send to ``mxmailer lab``
(both bundled) on loopback.

PyInstaller comes from the ``test`` extra, so this never skips: a missing PyInstaller
is a failure that says how to install it.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core import __version__
from gui.sandbox import SAMPLE_MESSAGE, SAMPLE_RECIPIENTS, SENDER, expected_outcome
from tests.packaging.support import PACKAGING, ROOT

#: A cold build on two cores takes well under a minute; this is the bound, not the wait.
BUILD_TIMEOUT = 600
#: Each run of a bundled program (the smoke run itself takes a few seconds).
RUN_TIMEOUT = 120
#: The bundle's Python modules: Qt bindings the app imports, and nothing more.
QT_MODULES = {"QtCore", "QtGui", "QtWidgets"}
#: A bound on the bundle's size (it is ~175 MiB, mostly Qt, ICU's data, Python and
#: OpenSSL): fails when a change starts pulling in big unused libraries.
MAX_BUNDLE_MIB = 220
#: The smoke run's last line on success (gui/smoke.py).
SMOKE_OK = "smoke: the sandbox campaign ended as expected"
#: Sample rows the command-line send uses: a plain delivery, a failover past a refusing
#: MX and permanent bounces. Greylisted and tarpit domains are left to the window's smoke
#: run: the command line's real retry and timeout floors would make them take minutes.
CLI_DOMAINS = ("plain.test", "failover.test", "bounce.test")

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT + 2 * RUN_TIMEOUT)


@dataclass(frozen=True, slots=True)
class Bundle:
    """A built bundle folder and what building it took."""

    folder: Path
    seconds: float

    @property
    def gui(self) -> Path:
        return self.folder / "mxmailer-gui"

    @property
    def cli(self) -> Path:
        return self.folder / "mxmailer"


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundle]:
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.fail("PyInstaller is missing: pip install -e '.[test]' (it is in the test extra)")
    if not sys.platform.startswith("linux"):
        pytest.fail("only the Linux bundle is built and tested here")
    out = tmp_path_factory.mktemp("app")
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            str(PACKAGING / "build_app.py"),
            "--distpath",
            str(out / "dist"),
            "--workpath",
            str(out / "build"),
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"the build failed:\n{result.stdout}\n{result.stderr}"
    built = Bundle(out / "dist" / "mxmailer", seconds)
    print(f"\nbundle: built in {seconds:.0f} s, {_mib(built.folder):.0f} MiB", file=sys.stderr)
    yield built
    shutil.rmtree(out)  # ~180 MiB and pytest keeps the last runs' temporary folders


def _clean_env(**extra: str) -> dict[str, str]:
    """What a user's session gives the app: no virtualenv, no PYTHONPATH, a UTF-8
    locale. The bundle must not lean on this checkout's Python."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def _run(program: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(program), *args],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def _mib(folder: Path) -> float:
    """The folder's size on disk; its symlinks (PyInstaller links Qt's libraries into
    _internal/) are counted as links, not as second copies."""
    files = (p.lstat() for p in folder.rglob("*") if not p.is_symlink())
    return sum(f.st_size for f in files if not stat.S_ISDIR(f.st_mode)) / 2**20


def test_make_app_runs_the_build_this_test_runs() -> None:
    """The fixture above builds with packaging/build_app.py; so must ``make app``."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^app:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None, "the Makefile has no app target"
    commands = [line.strip() for line in recipe.group(1).splitlines()]
    assert commands[-1] == "$(BIN)/python packaging/build_app.py", commands


def test_the_window_runs_the_sandbox_campaign_offscreen(bundle: Bundle, tmp_path: Path) -> None:
    result = _run(bundle.gui, "--smoke", cwd=tmp_path, QT_QPA_PLATFORM="offscreen")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert SMOKE_OK in result.stderr.splitlines(), output
    assert "24 recipients: 5 bounced, 18 delivered, 1 invalid" in result.stderr, output


def test_the_bundle_carries_its_resources_and_only_the_qt_it_uses(bundle: Bundle) -> None:
    internal = bundle.folder / "_internal"
    for sample in (SAMPLE_RECIPIENTS, SAMPLE_MESSAGE):
        assert (internal / "resources" / "sandbox" / sample.name).read_bytes() == (
            sample.read_bytes()
        )
    assert (internal / "resources" / "icons" / "mxmailer-512.png").is_file()
    bound = {p.name.split(".")[0] for p in (internal / "PySide6").glob("Qt*.so")}
    assert bound == QT_MODULES
    assert not (internal / "tkinter").exists()
    assert _mib(bundle.folder) < MAX_BUNDLE_MIB


def test_the_command_line_answers_help_and_version(bundle: Bundle, tmp_path: Path) -> None:
    version = _run(bundle.cli, "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"mxmailer {__version__}"
    helped = _run(bundle.cli, "--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    for command in ("send", "lab", "preview", "gui"):
        assert re.search(rf"^\s+{command}\b", helped.stdout, re.M), helped.stdout
    window = _run(bundle.gui, "--version", cwd=tmp_path)
    assert window.returncode == 0, window.stderr
    assert window.stdout.strip() == f"mxmailer-gui {__version__}"


def test_the_command_line_sends_to_the_bundled_lab(bundle: Bundle, tmp_path: Path) -> None:
    recipients = tmp_path / "recipients.csv"
    with SAMPLE_RECIPIENTS.open(encoding="utf-8", newline="") as source:
        rows = [r for r in csv.DictReader(source) if r["email"].endswith(CLI_DOMAINS)]
    with recipients.open("w", encoding="utf-8", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = tmp_path / "report.csv"
    with _lab(bundle, tmp_path) as (nameserver, port):
        sent = _run(
            bundle.cli,
            "send",
            "--recipients",
            str(recipients),
            "--message",
            str(SAMPLE_MESSAGE),
            "--sender",
            SENDER,
            "--nameserver",
            nameserver,
            "--port",
            port,
            "--state",
            str(tmp_path / "campaign.mxm"),
            "--report",
            str(report),
            cwd=tmp_path,
        )
    assert sent.returncode == 1, sent.stdout + sent.stderr  # 1: some recipients bounced
    with report.open(encoding="utf-8", newline="") as written:
        statuses = {row["email"]: row["status"] for row in csv.DictReader(written)}
    assert statuses == {row["email"]: expected_outcome(row["email"]) for row in rows}
    assert set(statuses.values()) == {"delivered", "bounced"}


class _Lines:
    """The lab's output, read on a thread so that waiting for a line has a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def first_match(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if found := re.search(pattern, line):
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    pytest.fail(f"the lab did not start: {self.lines}")
                self._changed.wait(left)


@contextlib.contextmanager
def _lab(bundle: Bundle, cwd: Path) -> Iterator[tuple[str, str]]:
    """``mxmailer lab`` from the bundle, for the block; yields (nameserver, port)."""
    process = subprocess.Popen(
        [str(bundle.cli), "lab", "--greylist-seconds", "1"],
        cwd=cwd,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = _Lines(process)
    try:
        found = lines.first_match(r"lab DNS on (\S+); MX hosts listen on port (\d+)", 60)
        yield found.group(1), found.group(2)
    finally:
        process.send_signal(signal.SIGINT)  # the lab stops cleanly on Ctrl-C
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert code == 0, lines.lines
