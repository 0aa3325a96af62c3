"""The window and a campaign's stored route: a real Start stores the route it takes, and
a campaign whose file remembers relays is sent through them whatever the app's Settings
say now (direct, or other relays), the banner, the log and the confirmation saying so.

The relay is an aiosmtpd submission server requiring STARTTLS and AUTH on loopback; the
lab world's MX hosts stand ready to show any mail that went around it. The password is
in the environment only, and never in the campaign file.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core.credentials import RELAY
from core.lab.world import LabWorld, sandbox_world
from core.relay import ROUTE, CampaignRoute, with_route
from core.store import CampaignStore, NewRecipient
from gui.loop import EngineEventLoop, ErrorReporter
from gui.main_window import Confirm, MainWindow, WindowOptions
from gui.state import RunState
from tests.gui.conftest import running, shown
from tests.gui.test_settings import REAL, lab_factory
from tests.integration.relay_servers import SubmissionServer

RUN_TIMEOUT_MS = 30_000
USER = "alice"
PASSWORD = "gui-relay-secret-7f3a"
EMAILS = [f"u{n}@plain.test" for n in range(4)]


@pytest.fixture(autouse=True)
def password_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # never the machine's keyring
    monkeypatch.setenv(RELAY.env, PASSWORD)


@pytest.fixture
def lab(qloop: EngineEventLoop, qtbot: QtBot) -> Iterator[LabWorld]:
    with running(sandbox_world(greylist_seconds=1), qloop, qtbot) as world:
        yield world


@pytest.fixture
def relay(qloop: EngineEventLoop, qtbot: QtBot) -> Iterator[SubmissionServer]:
    with running(SubmissionServer(USER, PASSWORD), qloop, qtbot) as server:
        yield server


@pytest.fixture
def window(
    qloop: EngineEventLoop,
    reporter: ErrorReporter,
    tmp_path: Path,
    qtbot: QtBot,
    confirm: Confirm,
    lab: LabWorld,
) -> Iterator[MainWindow]:
    """The window, its real path pointed at the lab world (direct mail lands there),
    answering the confirmations from ``answers``."""
    options = WindowOptions(tmp_path / "data", greylist_seconds=1, config_factory=lab_factory(lab))
    window = MainWindow(options, reporter, confirm=confirm, preflight=lambda _, go: go())
    with shown(window, qtbot, reporter):
        yield window


def campaign(path: Path, route: CampaignRoute | None) -> Path:
    """A real campaign (as ``mxmailer send`` makes it) whose file remembers ``route``."""
    settings: dict[str, object] = {"helo": "sender.test"}
    with CampaignStore.create(
        path,
        sender=REAL.sender,
        message=b"From: news@sender.test\nSubject: Hello {{email}}\n\nHi\n",
        settings=settings if route is None else with_route(settings, route),
    ) as store:
        store.add_recipients(NewRecipient(email, "plain.test", {}) for email in EMAILS)
    return path


def relay_route(server: SubmissionServer, tmp_path: Path) -> CampaignRoute:
    cafile = server.tls.write_ca(tmp_path / "ca.pem")
    return CampaignRoute(
        (f"127.0.0.1:{server.port}",), cafile=str(Path(cafile).resolve()), user=USER
    )


def stored(window: MainWindow) -> object:
    """The route the open campaign's file remembers."""
    assert window.session is not None
    return window.session.store.settings.get(ROUTE)


def assert_no_password(folder: Path) -> None:
    """Not in the campaign file, its journals, or anything else the run left."""
    leaks = [
        p.name for p in folder.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()
    ]
    assert leaks == []


def run_to_the_end(window: MainWindow, qtbot: QtBot, answers: list[bool]) -> None:
    answers.append(True)
    window.start()
    qtbot.waitUntil(lambda: window.context().run is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)


@pytest.mark.parametrize("settings_say", ["direct", "another relay"])
def test_a_campaign_that_remembers_a_relay_is_sent_through_it_whatever_settings_say(
    window: MainWindow,
    lab: LabWorld,
    relay: SubmissionServer,
    tmp_path: Path,
    qtbot: QtBot,
    answers: list[bool],
    questions: list[tuple[str, str]],
    settings_say: str,
) -> None:
    route = relay_route(relay, tmp_path)
    path = campaign(tmp_path / "relayed.mxm", route)
    # "Another relay": a loopback port nobody listens on (it would fail every recipient).
    other = "" if settings_say == "direct" else "127.0.0.2:2525"
    window.apply_settings(dataclasses.replace(REAL, relays=other))
    assert window.open_file(path)
    name = f"127.0.0.1:{relay.port}"
    says = "direct delivery to the recipients' MX hosts" if not other else f"the relay {other}"
    banner = window.sandbox_banner.text
    assert f"this campaign goes through the relay {name}" in banner
    assert f"not {says} as Settings say" in banner
    assert f"mxmailer send --state {path} --direct" in banner
    assert any(f"is sent through the relay {name}" in line for line in window.log.lines)

    run_to_the_end(window, qtbot, answers)
    ((_, question),) = questions
    assert f"They go through the relay {name}" in question
    assert lab.delivered_to() == []  # nothing went directly to the recipients' MX hosts
    assert sorted(r for m in relay.messages for r in m.recipients) == EMAILS
    assert all(m.encrypted and m.login == USER for m in relay.messages)
    assert any(
        "real delivery:" in line and line.endswith(f"through the relay {name}")
        for line in window.log.lines
    )
    assert any(f"not {says} as Settings say" in line for line in window.log.lines)
    assert stored(window) == route.setting()
    assert_no_password(tmp_path)


@pytest.mark.parametrize("before", [None, CampaignRoute()], ids=["new", "sent-directly"])
def test_a_real_start_stores_the_route_it_takes_and_never_the_password(
    window: MainWindow,
    lab: LabWorld,
    relay: SubmissionServer,
    tmp_path: Path,
    qtbot: QtBot,
    answers: list[bool],
    before: CampaignRoute | None,
) -> None:
    """A campaign not yet sent, or sent directly so far, goes the Settings' way (here a
    relay), and its file remembers that route for the next Start or ``mxmailer send``."""
    route = relay_route(relay, tmp_path)
    path = campaign(tmp_path / "real.mxm", before)
    window.apply_settings(
        dataclasses.replace(
            REAL, relays=route.relays[0], relay_user=USER, relay_cafile=route.cafile
        )
    )
    assert window.open_file(path)
    assert "Note:" not in window.sandbox_banner.text  # the Settings' route is taken
    run_to_the_end(window, qtbot, answers)
    assert lab.delivered_to() == []
    assert sorted(r for m in relay.messages for r in m.recipients) == EMAILS
    assert stored(window) == route.setting()
    assert_no_password(tmp_path)


def test_a_direct_start_is_remembered_as_direct(
    window: MainWindow, lab: LabWorld, tmp_path: Path, qtbot: QtBot, answers: list[bool]
) -> None:
    path = campaign(tmp_path / "real.mxm", None)
    window.apply_settings(REAL)
    assert window.open_file(path)
    run_to_the_end(window, qtbot, answers)
    assert sorted(lab.delivered_to()) == EMAILS
    assert stored(window) == {"via": "direct"}


def test_a_stored_route_that_cannot_be_read_blocks_start(
    window: MainWindow, lab: LabWorld, tmp_path: Path, questions: list[tuple[str, str]]
) -> None:
    path = campaign(tmp_path / "real.mxm", None)
    with CampaignStore.open(path)[0] as store:
        store.set_settings({**store.settings, ROUTE: {"via": "carrier pigeon"}})
    window.apply_settings(REAL)
    assert window.open_file(path)
    assert "stored route" in window.sandbox_banner.text and "--direct" in window.sandbox_banner.text
    window.start()
    assert questions == [] and window.context().run is RunState.READY
    assert lab.delivered_to() == []
