"""Relay mode in the app's settings: checked inline, kept, and turned into the engine's
relay configuration with the password from the keyring or the environment."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from core.credentials import RELAY
from core.relay import Relay
from gui.settings_dialog import SettingsDialog
from gui.settings_model import (
    AppSettings,
    from_json,
    real_engine_config,
    relay_config,
    to_json,
    validate,
)

RELAYED = AppSettings(
    sender="news@sender.test",
    relays="smtp1.sender.test, [::1]:2525",
    relay_security="starttls",
    relay_user="news",
)


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # the environment decides


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"relays": "smtp.sender.test:99999"}, "the port must be 1..65535"),
        ({"relays": "", "relay_user": "news"}, "needs at least one relay"),
        ({"relay_cafile": "/nowhere/ca.pem"}, "does not exist"),
        ({"relay_security": "plaintext"}, "Relay security must be one of"),
    ],
)
def test_relay_settings_are_checked(changes: dict[str, str], problem: str) -> None:
    assert problem in validate(dataclasses.replace(RELAYED, **changes)).get("relays", "")


def test_the_relays_become_the_engines_relay_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "relays" not in validate(RELAYED)
    monkeypatch.setenv(RELAY.env, "relay-secret")
    relay = real_engine_config(RELAYED).relay
    assert relay is not None
    assert relay.relays == (Relay("smtp1.sender.test", 587), Relay("::1", 2525))
    assert not relay.implicit_tls and relay.credentials is not None
    assert relay.credentials.user == "news" and relay.credentials.password == "relay-secret"
    implicit = relay_config(dataclasses.replace(RELAYED, relay_security="tls"))
    assert implicit is not None and implicit.relays[0].port == 465 and implicit.implicit_tls
    assert real_engine_config(AppSettings()).relay is None  # direct to MX
    assert "relay-secret" not in repr(relay)


def test_a_missing_password_says_where_to_put_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RELAY.env, raising=False)
    with pytest.raises(RuntimeError, match="MXMAILER_RELAY_PASSWORD"):
        relay_config(RELAYED)


def test_the_dialog_keeps_the_relay_fields(qtbot: QtBot, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    settings = dataclasses.replace(RELAYED, relay_cafile=str(ca), relay_security="tls")
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.settings() == settings
    assert from_json(to_json(settings)) == settings
    dialog.relays.setText("smtp.sender.test:0")
    assert "port" in dialog.errors["relays"].text() and not dialog.errors["relays"].isHidden()
