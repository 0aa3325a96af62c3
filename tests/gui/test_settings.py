"""Settings (validation, the file, the dialog) and the real-delivery path: the guard
that keeps sandbox campaigns in the lab, the confirmation with the count, the banner,
and a real campaign run end to end — against a lab world, never the system resolver.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PySide6.QtWidgets import QDialogButtonBox
from pytestqt.qtbot import QtBot

import gui.session
from core.dns import parse_nameserver
from core.engine import Engine, EngineConfig
from core.events import EventBus
from core.lab.world import LabWorld, sandbox_world
from core.outgoing import MESSAGE_DRAFT, OutgoingMessages
from core.store import CampaignStore, NewRecipient, Status
from core.template import TemplateError
from gui.banners import Kind
from gui.loop import EngineEventLoop, ErrorReporter
from gui.main_window import Confirm, MainWindow, WindowOptions, real_question
from gui.sandbox import BANNER, LAB_TIMEOUTS
from gui.settings_dialog import SettingsDialog
from gui.settings_model import (
    AppSettings,
    Delivery,
    helo_problem,
    load_settings,
    real_engine_config,
    save_settings,
    validate,
)
from gui.state import Action, RunState, start_blocked
from tests.gui.conftest import running, shown

RUN_TIMEOUT_MS = 30_000
REAL = AppSettings(
    sender="news@sender.test",
    helo="mail.sender.test",
    delivery=Delivery.REAL,
    real_acknowledged=True,
)


# ---- the model --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("mail example.com", "spaces"),
        ("localhost", "localhost"),
        ("LocalHost.", "localhost"),
        ("192.0.2.1", "IP address"),
        ("[192.0.2.1]", "IP address"),
        ("2001:db8::1", "IP address"),
        ("mailhost", "fully qualified"),
    ],
)
def test_a_bad_helo_name_is_refused_with_the_reason(name: str, why: str) -> None:
    assert why in (helo_problem(name) or "")
    assert why in validate(AppSettings(helo=name))["helo"]


def test_a_good_helo_name_and_the_senders_domain_pass() -> None:
    assert helo_problem("mail.example.com") is None
    assert validate(AppSettings(sender="news@example.com")) == {}
    assert AppSettings(sender="news@example.com").helo_name == "example.com"


def test_numbers_are_checked() -> None:
    assert "concurrency" in validate(AppSettings(concurrency=0))
    assert "exceed" in validate(AppSettings(concurrency=4, per_destination=5))["per_destination"]
    assert "greylist_retry" in validate(AppSettings(greylist_retry=0))
    assert "backoff" in validate(AppSettings(backoff=-1))
    assert "lifetime" in validate(AppSettings(lifetime=10))
    assert "shorter" in validate(AppSettings(greylist_retry=3600, lifetime=600))["lifetime"]
    assert validate(AppSettings()) == {}


def test_unsubscribe_and_sender_are_checked() -> None:
    assert (
        "https"
        in validate(AppSettings(list_unsubscribe_url="http://x.test/u"))["list_unsubscribe_url"]
    )
    assert "list_unsubscribe_mailto" in validate(AppSettings(list_unsubscribe_mailto="nope"))
    assert "sender" in validate(AppSettings(sender="not an address"))


@pytest.fixture(scope="module")
def key_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = rsa.generate_private_key(65537, 2048)
    path = tmp_path_factory.mktemp("dkim") / "key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def test_dkim_is_checked_with_the_signer(key_pem: Path, tmp_path: Path) -> None:
    good = AppSettings(sender="news@example.com", dkim_key=str(key_pem), dkim_selector="mx1")
    assert validate(good) == {}
    assert "selector" in validate(dataclasses.replace(good, dkim_selector=""))["dkim_key"]
    assert "key file" in validate(AppSettings(dkim_selector="mx1"))["dkim_key"]
    missing = validate(dataclasses.replace(good, dkim_key=str(tmp_path / "none.pem")))
    assert missing["dkim_key"].startswith("DKIM:")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    assert validate(dataclasses.replace(good, dkim_key=str(garbage)))["dkim_key"].startswith(
        "DKIM:"
    )
    readable = tmp_path / "readable.pem"
    readable.write_bytes(key_pem.read_bytes())
    readable.chmod(0o644)
    assert "chmod 600" in validate(dataclasses.replace(good, dkim_key=str(readable)))["dkim_key"]
    bad_selector = validate(dataclasses.replace(good, dkim_selector="has space"))
    assert "selector" in bad_selector["dkim_key"]


def test_real_delivery_needs_the_acknowledgement_and_a_sender() -> None:
    assert AppSettings().delivery is Delivery.SANDBOX and not AppSettings().real
    unticked = validate(AppSettings(sender="news@x.test", delivery=Delivery.REAL))
    assert "real_acknowledged" in unticked
    assert "sender" in validate(AppSettings(delivery=Delivery.REAL, real_acknowledged=True))
    assert validate(REAL) == {} and REAL.real


def test_settings_survive_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "app" / "settings.json"
    assert load_settings(path) == AppSettings()  # no file: the sandbox
    settings = dataclasses.replace(
        REAL, concurrency=20, per_destination=2, greylist_retry=400.0, starttls="require"
    )
    save_settings(path, settings)
    assert load_settings(path) == settings
    path.write_text("{not json")
    assert load_settings(path) == AppSettings()
    # Real delivery without the acknowledgement (edited by hand) falls back to the sandbox.
    path.write_text(json.dumps({"delivery": "real", "sender": "a@b.test"}))
    assert load_settings(path).delivery is Delivery.SANDBOX


def test_the_real_engine_config_follows_the_settings() -> None:
    settings = dataclasses.replace(REAL, concurrency=7, per_destination=3, lifetime=3600.0)
    config = real_engine_config(settings)
    assert (config.helo, config.concurrency, config.per_destination) == (
        "mail.sender.test",
        7,
        3,
    )
    assert config.retry.lifetime == 3600.0 and config.port == 25


# ---- the dialog -------------------------------------------------------------------------


def test_the_dialog_defaults_to_the_sandbox_and_blocks_ok_while_invalid(qtbot: QtBot) -> None:
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert dialog.sandbox_choice.isChecked() and ok.isEnabled()
    assert not dialog.acknowledge.isEnabled()
    dialog.helo.setText("localhost")
    assert not ok.isEnabled()
    assert "localhost" in dialog.errors["helo"].text()
    assert not dialog.errors["helo"].isHidden()
    dialog.helo.setText("mail.sender.test")
    assert ok.isEnabled() and dialog.errors["helo"].isHidden()
    dialog.real_choice.setChecked(True)
    assert not ok.isEnabled()  # neither the box ticked nor a sender
    dialog.acknowledge.setChecked(True)
    dialog.sender_edit.setText("news@sender.test")
    assert ok.isEnabled()
    assert dialog.settings() == REAL


# ---- the window -------------------------------------------------------------------------


class Recorder:
    """The configurations the engine was built with, and the factory's calls."""

    def __init__(self, factory: Callable[[AppSettings], EngineConfig]) -> None:
        self.factory = factory
        self.factory_calls = 0
        self.configs: list[EngineConfig] = []

    def make_config(self, settings: AppSettings) -> EngineConfig:
        self.factory_calls += 1
        return self.factory(settings)


@pytest.fixture
def lab(qloop: EngineEventLoop, qtbot: QtBot) -> Iterator[LabWorld]:
    with running(sandbox_world(greylist_seconds=1), qloop, qtbot) as world:
        yield world


def lab_factory(world: LabWorld) -> Callable[[AppSettings], EngineConfig]:
    """The real path's configuration, pointed at the lab's DNS and port (never port 25
    or the system's resolver)."""

    def make(settings: AppSettings) -> EngineConfig:
        return dataclasses.replace(
            real_engine_config(settings),
            nameservers=(parse_nameserver(world.nameserver),),
            port=world.port,
            timeouts=LAB_TIMEOUTS,
            dns_timeout=2.0,
        )

    return make


def refuse_real(settings: AppSettings) -> EngineConfig:
    raise AssertionError("the real configuration was asked for")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(refuse_real)


@pytest.fixture
def window(
    qloop: EngineEventLoop,
    reporter: ErrorReporter,
    tmp_path: Path,
    qtbot: QtBot,
    confirm: Confirm,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[MainWindow]:
    configs = recorder.configs

    class RecordingEngine(Engine):
        def __init__(self, store: CampaignStore, config: EngineConfig, bus: EventBus) -> None:
            configs.append(config)
            super().__init__(store, config, bus)

    monkeypatch.setattr(gui.session, "Engine", RecordingEngine)

    options = WindowOptions(
        tmp_path / "data", greylist_seconds=1, config_factory=recorder.make_config
    )
    # These tests are about the count confirmation and the run: the pre-flight panel
    # shown before it is tested in tests/gui/test_preflight_panel.py.
    window = MainWindow(options, reporter, confirm=confirm, preflight=lambda _, go: go())
    with shown(window, qtbot, reporter):
        yield window


def real_campaign(path: Path, emails: list[str]) -> Path:
    """A campaign file as ``mxmailer send --state`` makes it: no sandbox marker."""
    with CampaignStore.create(
        path,
        sender="news@sender.test",
        message=b"From: news@sender.test\nSubject: Hello {{email}}\n\nHi\n",
        settings={"helo": "sender.test"},
    ) as store:
        store.add_recipients(
            [NewRecipient(email, email.rpartition("@")[2], {}) for email in emails]
        )
    return path


def test_the_settings_start_as_the_sandbox_and_are_saved(
    window: MainWindow, tmp_path: Path
) -> None:
    assert window.settings == AppSettings()
    dialog = window.open_settings()
    assert dialog.sandbox_choice.isChecked()
    dialog.helo.setText("mail.sender.test")
    dialog.accept()
    assert window.settings.helo == "mail.sender.test"
    assert load_settings(tmp_path / "data" / "settings.json") == window.settings


def test_the_banner_follows_the_open_campaign(window: MainWindow, tmp_path: Path) -> None:
    assert window.sandbox_banner.isHidden()
    window.open_sandbox()
    assert window.sandbox_banner.text == BANNER and window.sandbox_banner.kind is Kind.INFO
    assert "nothing leaves this computer" in window.sandbox_banner.text
    window.apply_settings(REAL)  # real delivery chosen: a sandbox campaign stays in the lab
    assert window.sandbox_banner.text == BANNER
    assert window.open_file(real_campaign(tmp_path / "real.mxm", ["ada@plain.test"]))
    banner = window.sandbox_banner
    assert banner.text.startswith("Real delivery: mail goes to recipients' servers")
    assert banner.kind is Kind.WARNING and not banner.isHidden()
    assert "news@sender.test" in banner.text
    assert "[REAL DELIVERY]" in window.windowTitle()
    window.apply_settings(AppSettings())
    assert "Not sendable now" in banner.text
    assert Action.START not in {k for k, a in window.action_for.items() if a.isEnabled()}


def test_a_sandbox_campaign_never_gets_a_real_config_even_with_real_delivery(
    window: MainWindow, qtbot: QtBot, recorder: Recorder, questions: list[tuple[str, str]]
) -> None:
    window.apply_settings(REAL)
    window.open_sandbox()
    session = window.session
    assert session is not None and session.lab is not None and not session.real
    window.start()
    qtbot.waitUntil(lambda: bool(recorder.configs), timeout=RUN_TIMEOUT_MS)
    window.stop()
    qtbot.waitUntil(lambda: window.context().run is not RunState.STOPPING, timeout=RUN_TIMEOUT_MS)
    world = session.lab.world
    (config,) = recorder.configs
    assert config.nameservers == (parse_nameserver(world.nameserver),)
    assert config.port == world.port and config.helo == "sender.test"
    assert recorder.factory_calls == 0
    assert questions == []  # no real-delivery question for the lab


def test_the_confirmation_says_the_count_and_the_sender_and_no_sends_nothing(
    window: MainWindow, tmp_path: Path, recorder: Recorder, questions: list[tuple[str, str]]
) -> None:
    assert real_question(12345, "news@sender.test").startswith(
        "Send 12,345 messages from news@sender.test to real recipients?"
    )
    window.apply_settings(REAL)
    emails = ["ada@plain.test", "alan@plain.test", "zoe@plain.test"]
    assert window.open_file(real_campaign(tmp_path / "real.mxm", emails))
    assert Action.START in {k for k, a in window.action_for.items() if a.isEnabled()}
    window.start()  # the fixture answers No
    ((title, text),) = questions
    assert title == "Real delivery"
    assert text.startswith("Send 3 messages from news@sender.test to real recipients?")
    assert window.context().run is RunState.READY
    assert recorder.factory_calls == 0 and recorder.configs == []
    session = window.session
    assert session is not None and session.store.counts()[Status.QUEUED] == 3


def test_a_real_campaign_as_someone_else_is_refused(
    window: MainWindow, tmp_path: Path, questions: list[tuple[str, str]]
) -> None:
    window.apply_settings(dataclasses.replace(REAL, sender="other@sender.test"))
    assert window.open_file(real_campaign(tmp_path / "real.mxm", ["ada@plain.test"]))
    assert "other@sender.test" in window.action_for[Action.START].toolTip()
    window.start()
    assert questions == [] and window.context().run is RunState.READY


def test_a_real_campaign_runs_end_to_end_against_the_lab(
    window: MainWindow,
    lab: LabWorld,
    tmp_path: Path,
    qtbot: QtBot,
    recorder: Recorder,
    answers: list[bool],
    questions: list[tuple[str, str]],
    key_pem: Path,
) -> None:
    recorder.factory = lab_factory(lab)  # the real path, pointed at the lab
    answers.append(True)
    settings = dataclasses.replace(
        REAL,
        dkim_key=str(key_pem),
        dkim_selector="mx1",
        list_unsubscribe_url="https://sender.test/u",
        greylist_retry=2.0,  # the lab greylists for a second
    )
    window.apply_settings(settings)
    emails = ["ada@plain.test", "alan@plain.test", "grace@grey.test", "nobody@bounce.test"]
    assert window.open_file(real_campaign(tmp_path / "real.mxm", emails))
    window.start()
    assert questions[0][1].startswith("Send 4 messages from news@sender.test")
    qtbot.waitUntil(lambda: window.context().run is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)
    assert recorder.factory_calls == 1
    (config,) = recorder.configs
    assert config.nameservers == (parse_nameserver(lab.nameserver),)
    assert config.port == lab.port and config.helo == "mail.sender.test"
    session = window.session
    assert session is not None
    counts = session.store.counts()
    assert counts[Status.DELIVERED] == 3 and counts[Status.BOUNCED] == 1
    assert sorted(lab.delivered_to()) == sorted(emails[:3])
    messages = lab.messages()
    assert {message.helo for message in messages} == {"mail.sender.test"}
    assert all(b"DKIM-Signature:" in message.data for message in messages)
    assert all(b"List-Unsubscribe:" in message.data for message in messages)
    assert session.store.settings["helo"] == "mail.sender.test"


def test_stop_pressed_before_the_engine_exists_sends_nothing(
    window: MainWindow,
    lab: LabWorld,
    tmp_path: Path,
    qtbot: QtBot,
    recorder: Recorder,
    answers: list[bool],
) -> None:
    """Start schedules the run; Stop (enabled while starting) must win over it."""
    recorder.factory = lab_factory(lab)
    answers.append(True)
    window.apply_settings(dataclasses.replace(REAL, greylist_retry=2.0))
    assert window.open_file(real_campaign(tmp_path / "real.mxm", ["ada@plain.test"]))
    window.start()
    assert window.context().run is RunState.STARTING
    window.stop()
    qtbot.waitUntil(
        lambda: window.context().run
        not in (RunState.STARTING, RunState.STOPPING, RunState.RUNNING),
        timeout=RUN_TIMEOUT_MS,
    )
    assert lab.delivered_to() == []


def test_a_real_campaign_made_from_a_csv_is_a_draft_until_its_message_is_written(
    window: MainWindow,
    lab: LabWorld,
    tmp_path: Path,
    qtbot: QtBot,
    recorder: Recorder,
    answers: list[bool],
) -> None:
    recorder.factory = lab_factory(lab)
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,first_name\nada@plain.test,Ada\nalan@plain.test,Alan\n")
    sandbox_only = window.import_csv(csv_file)
    assert sandbox_only is not None and not sandbox_only.real_choice.isEnabled()
    sandbox_only.reject()  # sandbox settings: only a sandbox campaign may be made

    window.apply_settings(dataclasses.replace(REAL, greylist_retry=2.0))
    dialog = window.import_csv(csv_file)
    assert dialog is not None
    assert dialog.sandbox_choice.isChecked() and dialog.real_choice.isEnabled()
    qtbot.waitUntil(lambda: not dialog.working, timeout=RUN_TIMEOUT_MS)
    dialog.real_choice.setChecked(True)
    assert "A real campaign from news@sender.test" in dialog.note.text()
    dialog.import_button.click()
    qtbot.waitUntil(lambda: window.message_editor is not None, timeout=RUN_TIMEOUT_MS)

    draft = window.session
    assert draft is not None and draft.real and draft.store.sender == "news@sender.test"
    assert draft.store.settings["helo"] == "mail.sender.test"
    assert not window.action_for[Action.START].isEnabled()
    assert start_blocked(window.context()) == (
        "Write the campaign's message first (Campaign ▸ Edit message)."
    )
    with pytest.raises(TemplateError, match="not written yet"):  # mxmailer send refuses too
        OutgoingMessages(draft.store.message, draft.store.settings)

    editor = window.message_editor
    assert editor is not None and "news@sender.test" in editor.from_edit.text()
    editor.subject_edit.setText("Hello {{first_name}}")
    editor.text_edit.setPlainText("Dear {{first_name}},\nthe real thing.\n")
    editor.refresh()
    assert editor.save_button.isEnabled()
    editor.save_button.click()
    qtbot.waitUntil(lambda: window.session is not draft, timeout=RUN_TIMEOUT_MS)

    written = window.session
    assert written is not None and written.real and not window.context().draft
    assert MESSAGE_DRAFT not in written.store.settings
    assert window.action_for[Action.START].isEnabled()
    answers.append(True)
    window.start()
    qtbot.waitUntil(lambda: window.context().run is RunState.FINISHED, timeout=RUN_TIMEOUT_MS)
    assert sorted(lab.delivered_to()) == ["ada@plain.test", "alan@plain.test"]
    subjects = sorted(
        line
        for message in lab.messages()
        for line in message.data.split(b"\r\n")
        if line.startswith(b"Subject:")
    )
    assert subjects == [b"Subject: Hello Ada", b"Subject: Hello Alan"]
