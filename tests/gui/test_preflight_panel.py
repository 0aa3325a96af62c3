"""The pre-flight panel before a real campaign: opened at Start without freezing the
window, filled with a light per check (checked against a lab: its DNS, PTR, SPF, DKIM,
DMARC and blocklist records and its MX hosts), Cancel sends nothing, Send anyway leads
to the count confirmation and the run; a sandbox campaign never gets it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from pytestqt.qtbot import QtBot

from core.dns import parse_nameserver
from core.engine import EngineConfig
from core.lab import LabTLS
from core.lab.world import LabWorld
from core.preflight import Status
from core.store import CampaignStore, NewRecipient
from core.store import Status as RecipientStatus
from gui.loop import EngineEventLoop, ErrorReporter
from gui.main_window import Confirm, MainWindow, WindowOptions
from gui.preflight_panel import LIGHTS, PreflightPanel, PreflightRunner
from gui.sandbox import LAB_TIMEOUTS
from gui.settings_model import AppSettings, Delivery, real_engine_config
from gui.state import RunState
from gui.status_style import status_color
from tests.gui.conftest import running
from tests.integration.relay_servers import SubmissionServer
from tests.preflight.support import BLOCKLIST, HELO, SELECTOR, SENDER, lab_world, write_key

pytestmark = pytest.mark.gui

WAIT_MS: Final = 30_000


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return write_key(tmp_path / "dkim.pem")


@pytest.fixture
def lab(qloop: EngineEventLoop, qtbot: QtBot, key: Path) -> Iterator[LabWorld]:
    with running(lab_world(key), qloop, qtbot) as world:
        yield world


@pytest.fixture
def window(
    lab: LabWorld,
    reporter: ErrorReporter,
    tmp_path: Path,
    qtbot: QtBot,
    confirm: Confirm,
) -> Iterator[MainWindow]:
    def make(settings: AppSettings) -> EngineConfig:
        """The real path, pointed at the lab (never port 25 or the system's resolver)."""
        return dataclasses.replace(
            real_engine_config(settings), nameservers=(parse_nameserver(lab.nameserver),),
            port=lab.port, timeouts=LAB_TIMEOUTS, dns_timeout=2.0,
        )

    options = WindowOptions(tmp_path / "data", greylist_seconds=1, config_factory=make)
    window = MainWindow(options, reporter, confirm=confirm)
    runner = window.preflight
    assert isinstance(runner, PreflightRunner)
    runner.dnsbl_zones = (BLOCKLIST,)  # the lab's blocklist, never Spamhaus in a test
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    window.show()
    yield window
    window.close()
    if window.session is not None or not closed:
        window.close()
    qtbot.waitUntil(lambda: bool(closed), timeout=WAIT_MS)
    assert reporter.errors == []


def real(key: Path) -> AppSettings:
    return AppSettings(
        sender=SENDER, helo=HELO, delivery=Delivery.REAL, real_acknowledged=True,
        dkim_key=str(key), dkim_selector=SELECTOR,
        list_unsubscribe_url="https://sender.test/unsubscribe",
    )


def open_real_campaign(window: MainWindow, path: Path, emails: list[str]) -> None:
    """A campaign file as ``mxmailer send --state`` makes it (no sandbox marker)."""
    with CampaignStore.create(
        path, sender=SENDER, message=b"From: news@sender.test\nSubject: Hi {{email}}\n\nHi\n",
        settings={"helo": HELO},
    ) as store:
        store.add_recipients([NewRecipient(e, e.rpartition("@")[2], {}) for e in emails])
    assert window.open_file(path)


def panel_of(window: MainWindow) -> PreflightPanel:
    runner = window.preflight
    assert isinstance(runner, PreflightRunner) and runner.panel is not None
    return runner.panel


def checked(window: MainWindow, qtbot: QtBot) -> PreflightPanel:
    """Start a real campaign: the panel opens at once, in its "checking" state (Start
    returned before the checks ended: the window was never blocked), then fills in."""
    window.start()
    panel = panel_of(window)
    assert panel.isVisible() and panel.report is None
    assert not panel.send_button.isEnabled() and "Checking" in panel.summary.text()
    qtbot.waitUntil(lambda: panel.report is not None, timeout=WAIT_MS)
    return panel


def test_the_panel_shows_a_light_per_check_and_cancel_sends_nothing(
    window: MainWindow, lab: LabWorld, key: Path, tmp_path: Path, qtbot: QtBot,
    questions: list[tuple[str, str]],
) -> None:
    window.apply_settings(real(key))
    open_real_campaign(window, tmp_path / "real.mxm", ["ada@good.test", "bob@good.test"])
    panel = checked(window, qtbot)
    report = panel.report
    assert report is not None
    lights = {result.key: result.status for result in report.results}
    assert lights["rdns-ipv6"] is Status.UNKNOWN  # the lab's MX hosts have no IPv6
    assert {k: s for k, s in lights.items() if k != "rdns-ipv6"} == dict.fromkeys(
        ("port25", "rdns-ipv4", "helo", "dnsbl", "spf", "dkim", "dmarc", "unsubscribe",
         "providers", "starttls"), Status.PASS,
    ), report.results
    assert len(panel.lights) == len(report.results)
    for light, result in zip(panel.lights, report.results, strict=True):
        symbol, word, colour_key = LIGHTS[result.status]
        assert light.text() == f"{symbol} {word}"  # a symbol and a word, not colour alone
        assert status_color(colour_key, panel.palette()).name() in light.styleSheet()
    assert panel.send_button.isEnabled() and panel.send_button.isDefault()
    assert panel.summary.text().startswith("No check failed")
    panel.cancel_button.click()
    assert questions == [] and window.context().run is RunState.READY
    session = window.session
    assert session is not None and session.store.counts()[RecipientStatus.QUEUED] == 2
    assert lab.messages() == []


def test_send_anyway_asks_the_count_and_sends(
    window: MainWindow, lab: LabWorld, key: Path, tmp_path: Path, qtbot: QtBot,
    questions: list[tuple[str, str]], answers: list[bool],
) -> None:
    lab.zone.remove("_dmarc.sender.test", "TXT")  # a red light: sending stays possible
    window.apply_settings(real(key))
    open_real_campaign(window, tmp_path / "real.mxm", ["ada@good.test", "bob@plain.test"])
    panel = checked(window, qtbot)
    assert panel.report is not None and panel.report.get("dmarc").status is Status.FAIL
    assert "1 check(s) failed" in panel.summary.text() and panel.cancel_button.isDefault()
    assert questions == []  # the count is asked only after the panel
    answers.append(True)
    panel.send_button.click()
    ((title, text),) = questions
    assert title == "Real delivery" and text.startswith("Send 2 messages from news@sender.test")
    qtbot.waitUntil(lambda: window.context().run is RunState.FINISHED, timeout=WAIT_MS)
    assert sorted(lab.delivered_to()) == ["ada@good.test", "bob@plain.test"]


def test_saying_no_to_the_count_after_the_panel_sends_nothing(
    window: MainWindow, lab: LabWorld, key: Path, tmp_path: Path, qtbot: QtBot,
    questions: list[tuple[str, str]],
) -> None:
    window.apply_settings(real(key))
    open_real_campaign(window, tmp_path / "real.mxm", ["ada@good.test"])
    checked(window, qtbot).send_button.click()  # the fixture then answers No
    assert len(questions) == 1 and window.context().run is RunState.READY
    assert lab.messages() == []


def test_a_sandbox_campaign_never_runs_the_checks(
    window: MainWindow, lab: LabWorld, key: Path, qtbot: QtBot,
    questions: list[tuple[str, str]],
) -> None:
    window.apply_settings(real(key))
    window.open_sandbox()
    session = window.session
    assert session is not None and session.sandboxed
    window.start()
    runner = window.preflight
    assert isinstance(runner, PreflightRunner) and runner.panel is None and questions == []
    qtbot.waitUntil(lambda: window.context().run is not RunState.READY, timeout=WAIT_MS)
    window.stop()
    qtbot.waitUntil(lambda: window.context().run is not RunState.STOPPING, timeout=WAIT_MS)
    assert lab.dns is not None and lab.dns.stats.queries == 0  # our lab was never asked


def test_closing_the_window_while_checking_leaves_nothing_running(
    window: MainWindow, lab: LabWorld, key: Path, tmp_path: Path, qtbot: QtBot,
    qloop: EngineEventLoop,
) -> None:
    window.apply_settings(real(key))
    open_real_campaign(window, tmp_path / "real.mxm", ["ada@tarpit.test"])  # never greets
    window.start()
    panel = panel_of(window)
    assert panel.report is None
    with qtbot.waitSignal(panel.finished, timeout=WAIT_MS):
        window.close()  # the panel is cancelled with the window, and the checks with it
    # well before the tarpit's probe would time out (8 s): the checks were cancelled
    qtbot.waitUntil(lambda: all(task.done() for task in asyncio.all_tasks(qloop)),
                    timeout=3000)


def test_in_relay_mode_the_panel_shows_the_relay_checks(
    window: MainWindow, lab: LabWorld, key: Path, tmp_path: Path, qtbot: QtBot,
    qloop: EngineEventLoop, questions: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MXMAILER_RELAY_PASSWORD", raising=False)  # none needed to check
    tls = LabTLS(("relay.lab.test",))
    lab.zone.add_a("relay.lab.test", "127.0.0.1")
    with running(SubmissionServer("alice", "never-given", tls=tls), qloop, qtbot) as relay:
        window.apply_settings(dataclasses.replace(
            real(key), relays=f"relay.lab.test:{relay.port}", relay_user="alice",
            relay_cafile=str(tls.write_ca(tmp_path / "ca.pem")),
        ))
        open_real_campaign(window, tmp_path / "real.mxm", ["ada@good.test"])
        panel = checked(window, qtbot)
        assert "relays" in panel.windowTitle()
        report = panel.report
        assert report is not None
        lights = {result.key: result.status for result in report.results}
        assert lights == {
            **dict.fromkeys(("relay", "relay-tls", "relay-auth", "spf", "dkim", "dmarc",
                             "unsubscribe", "providers"), Status.PASS),
            **dict.fromkeys(("port25", "rdns", "helo", "dnsbl", "starttls"),
                            Status.NOT_APPLICABLE),
        }, report.results
        assert "tried at Start" in report.get("relay-auth").result
        shown = [light.text() for light in panel.lights]
        assert shown[:3] == ["✔ Pass"] * 3  # the relay's checks come first
        assert shown.count("⊘ Not applicable") == 5
        assert panel.summary.text().startswith("Every check passed")
        panel.cancel_button.click()
        assert relay.auth_commands == [] and relay.messages == []  # no login, no mail
    assert questions == [] and window.context().run is RunState.READY
    assert lab.messages() == []
    assert lab.server("mx.good.test").recorder.connections == []  # no port 25 probe
