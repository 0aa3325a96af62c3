"""The route a campaign file remembers (core.relay.CampaignRoute) and how ``mxmailer
send``'s options keep, replace or refuse it (core.relay_cli)."""

from __future__ import annotations

import argparse
import json
import sys

import pytest

from core import relay_cli
from core.credentials import RELAY
from core.relay import ROUTE, CampaignRoute, campaign_route, relay_config, with_route

PASSWORD = "unit-route-secret"


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)
    monkeypatch.setenv(RELAY.env, PASSWORD)


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    relay_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_a_relay_route_is_stored_without_the_password_and_read_back() -> None:
    config = relay_config(
        ["[::1]:2525", "smtp.example.test"], implicit_tls=True, user="news", prompt=lambda _: ""
    )
    assert config.credentials is not None and config.credentials.password == PASSWORD
    route = CampaignRoute.of(config)
    assert route == CampaignRoute(("[::1]:2525", "smtp.example.test:465"), True, "", "news")
    settings = with_route({"helo": "example.test"}, route)
    assert PASSWORD not in json.dumps(settings)
    assert campaign_route(json.loads(json.dumps(settings))) == route
    assert route.describe() == "the relays [::1]:2525, smtp.example.test:465"


def test_direct_and_nothing_stored_are_told_apart() -> None:
    assert campaign_route({}) is None
    direct = campaign_route(with_route({}, CampaignRoute()))
    assert direct == CampaignRoute() and direct.direct
    assert CampaignRoute.of(None) == CampaignRoute()


@pytest.mark.parametrize(
    "value",
    [
        "relay",
        {"via": "pigeon"},
        {"via": "relay", "relays": [], "security": "starttls"},
        {"via": "relay", "relays": ["smtp.example.test:0"], "security": "starttls"},
        {"via": "relay", "relays": ["smtp.example.test"], "security": "plaintext"},
        {"via": "relay", "relays": ["smtp.example.test"], "security": "tls", "user": 7},
        None,  # "route": null, edited by hand
        {"via": "direct", "relays": ["smtp.example.test"]},
    ],
)
def test_a_route_that_cannot_be_read_is_refused_not_taken_for_direct(value: object) -> None:
    with pytest.raises(ValueError, match="stored route"):
        campaign_route({ROUTE: value})


STORED = CampaignRoute(("smtp.example.test:587",), user="news")


def test_without_options_a_resumed_campaign_keeps_its_relays() -> None:
    args = options()
    config = relay_cli.relay_config(args, STORED)
    assert config is not None and CampaignRoute.of(config) == STORED
    assert relay_cli.route_note(args, STORED, STORED) == (
        "resuming through the relay smtp.example.test:587 stored in the campaign (--relay "
        "to replace it, --direct to send to the recipients' own MX hosts)"
    )
    # Nothing left to send: no login, so no password is needed.
    unsent = relay_cli.relay_config(args, STORED, login=False)
    assert unsent is not None and unsent.credentials is None


def test_relay_or_direct_replace_the_stored_route_and_say_so() -> None:
    other = options("--relay", "smtp2.example.test")
    config = relay_cli.relay_config(other, STORED)
    assert config is not None and config.relays[0].host == "smtp2.example.test"
    note = relay_cli.route_note(other, STORED, CampaignRoute.of(config))
    assert note is not None and "replacing the relay smtp.example.test:587" in note
    direct = options("--direct")
    assert relay_cli.relay_config(direct, STORED) is None
    note = relay_cli.route_note(direct, STORED, CampaignRoute())
    assert note is not None and note.startswith("resuming with direct delivery")
    assert relay_cli.route_note(options(), None, CampaignRoute()) is None  # nothing to say
    assert relay_cli.route_note(options(), CampaignRoute(), CampaignRoute()) is None


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--relay", "smtp.example.test", "--direct"], "cannot be used together"),
        (["--direct", "--relay-user", "news"], "need --relay"),
        (["--relay-security", "tls"], "need --relay"),
    ],
)
def test_contradicting_options_are_refused(argv: list[str], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        relay_cli.relay_config(options(*argv), STORED)
