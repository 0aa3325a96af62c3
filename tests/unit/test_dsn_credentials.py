"""Where ``mxmailer bounces`` finds the IMAP password: keyring, environment, prompt."""

from __future__ import annotations

import sys
import types

import pytest

from core.credentials import IMAP, RELAY, PasswordError

KEYRING_SERVICE, PASSWORD_ENV, imap_password = IMAP.service, IMAP.env, IMAP.password


def fake_keyring(monkeypatch: pytest.MonkeyPatch, answer: object) -> list[tuple[str, str]]:
    """A ``keyring`` module whose get_password returns (or raises) ``answer``."""
    asked: list[tuple[str, str]] = []

    def get_password(service: str, name: str) -> object:
        asked.append((service, name))
        if isinstance(answer, Exception):
            raise answer
        return answer

    module = types.ModuleType("keyring")
    module.get_password = get_password  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", module)
    return asked


def test_the_keyring_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_keyring(monkeypatch, "from-keyring")
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert imap_password("bounces@sender.test", "imap.test") == "from-keyring"
    assert asked == [(KEYRING_SERVICE, "bounces@sender.test@imap.test")]


@pytest.mark.parametrize("answer", [None, "", RuntimeError("no backend")])
def test_no_keyring_entry_or_backend_falls_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, answer: object
) -> None:
    fake_keyring(monkeypatch, answer)
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert imap_password("u", "imap.test") == "from-env"


def test_without_the_keyring_package_the_environment_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring raises ImportError
    assert IMAP.keyring_password("u", "imap.test") is None
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert imap_password("u", "imap.test") == "from-env"


def test_then_a_prompt_then_a_message_saying_how(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_keyring(monkeypatch, None)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    questions: list[str] = []
    assert imap_password("u", "imap.test", prompt=lambda q: questions.append(q) or "typed") == (
        "typed"
    )
    assert questions == ["IMAP password for u at imap.test: "]
    with pytest.raises(PasswordError) as error:
        imap_password("u", "imap.test", prompt=lambda _: "")
    assert PASSWORD_ENV in str(error.value) and "keyring set" in str(error.value)


@pytest.mark.parametrize("key", [EOFError, KeyboardInterrupt])
def test_ctrl_d_or_ctrl_c_at_the_prompt_is_no_password(
    monkeypatch: pytest.MonkeyPatch, key: type[BaseException]
) -> None:
    """Not a traceback: the command says how to give the password and exits 2."""
    fake_keyring(monkeypatch, None)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)

    def pressed(_: str) -> str:
        raise key

    with pytest.raises(PasswordError, match="keyring set"):
        imap_password("u", "imap.test", prompt=pressed)


def test_the_relay_password_has_its_own_keyring_entry_and_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = fake_keyring(monkeypatch, None)
    monkeypatch.setenv(RELAY.env, "relay-secret")
    monkeypatch.setenv(IMAP.env, "imap-secret")
    assert RELAY.password("alice", "smtp.test") == "relay-secret"
    assert asked == [("MX Mailer relay", "alice@smtp.test")]
    monkeypatch.delenv(RELAY.env)
    with pytest.raises(PasswordError, match="MXMAILER_RELAY_PASSWORD"):
        RELAY.password("alice", "smtp.test", prompt=lambda _: "")
