"""Relay names, ports and CA files: what the user may give, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.relay import Relay, RelayConfig, parse_relay, relay_hosts, verified_context


@pytest.mark.parametrize(
    ("text", "implicit", "expected"),
    [
        ("smtp.example.test", False, Relay("smtp.example.test", 587)),
        ("smtp.example.test", True, Relay("smtp.example.test", 465)),
        ("smtp.example.test:2525", False, Relay("smtp.example.test", 2525)),
        ("127.0.0.1:25", False, Relay("127.0.0.1", 25)),
        ("[::1]", False, Relay("::1", 587)),
        ("[::1]:2525", True, Relay("::1", 2525)),
    ],
)
def test_relays_parse_with_the_ports_their_security_implies(
    text: str, implicit: bool, expected: Relay
) -> None:
    assert parse_relay(text, implicit_tls=implicit) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("smtp.example.test:0", "the port must be 1..65535"),
        ("smtp.example.test:x", "the port must be 1..65535"),
        ("::1:25", "needs brackets"),
        ("smtp..example.test", "is not a valid host name"),  # an empty label
        ("a" * 64 + ".example.test", "is not a valid host name"),  # a label over 63
        ("", "expected HOST or HOST:PORT"),
    ],
)
def test_what_no_resolver_would_take_is_refused_at_once(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_relay(text)


def test_names_print_as_the_route_and_the_report_show_them() -> None:
    assert Relay("::1", 25).name == "[::1]:25" and Relay("smtp.test", 587).name == "smtp.test:587"


def test_a_ca_file_that_holds_no_certificate_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="cannot be used"):
        verified_context(str(bad))


async def test_a_relay_whose_name_cannot_be_looked_up_is_reported_not_raised() -> None:
    config = RelayConfig((Relay("smtp..example.test", 587), Relay("127.0.0.1", 2525)))
    hosts, problems = await relay_hosts(config)
    assert [host.name for host in hosts] == ["127.0.0.1:2525"]
    assert hosts[0].addresses == ("127.0.0.1",)
    assert len(problems) == 1 and problems[0].startswith("relay smtp..example.test:587: ")
