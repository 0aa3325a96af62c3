"""Pre-flight in relay mode, against the lab's DNS and aiosmtpd submission servers on
loopback (``tests.integration.relay_servers``): the relay reachable, TLS as configured
with the certificate verified, AUTH offered (never used: no password is given), SPF for
the relay's addresses, and the direct route's checks shown as not applicable."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Final

from core.lab import LabTLS
from core.lab.world import LabWorld
from core.preflight import Report, Status
from core.preflight.inputs import RelayRoute, relay_route
from core.relay import Relay
from tests.integration.relay_servers import SubmissionServer
from tests.preflight.support import preflight

USER: Final = "alice"
#: Only the server knows it: the checks are never given a password.
PASSWORD: Final = "relay-secret-never-sent"
RELAY_NAME: Final = "relay.lab.test"
RELAY_KEYS: Final = ("relay", "relay-tls", "relay-auth")
DIRECT_ONLY: Final = ("port25", "rdns", "helo", "dnsbl", "starttls")


def lab_tls() -> LabTLS:
    """A certificate for the relay's name and 127.0.0.1, from a fresh test CA."""
    return LabTLS((RELAY_NAME, "127.0.0.1"))


def route(
    port: int, tmp_path: Path, tls: LabTLS | None, *, host: str = RELAY_NAME,
    implicit_tls: bool = False, user: str | None = USER,
) -> RelayRoute:
    cafile = str(tls.write_ca(tmp_path / "relay-ca.pem")) if tls is not None else None
    return RelayRoute((Relay(host, port),), implicit_tls, cafile, user)


async def relay_report(world: LabWorld, key: Path, relay: RelayRoute,
                       **changes: object) -> Report:
    world.zone.add_a(RELAY_NAME, "127.0.0.1")
    return await preflight(world, key, net={"relay": relay, "probe_timeout": 2.0}, **changes)


def lights(report: Report) -> dict[str, Status]:
    return {result.key: result.status for result in report.results}


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_good_relay_passes_and_the_direct_checks_are_not_applicable(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    tls = lab_tls()
    async with SubmissionServer(USER, PASSWORD, tls=tls) as server:
        report = await relay_report(world, key, route(server.port, tmp_path, tls))
    assert lights(report) == {
        **dict.fromkeys((*RELAY_KEYS, "spf", "dkim", "dmarc", "unsubscribe", "providers"),
                        Status.PASS),
        **dict.fromkeys(DIRECT_ONLY, Status.NOT_APPLICABLE),
    }, report.results
    assert report.exit_code == 0
    reach, tls_result, auth = (report.get(k) for k in RELAY_KEYS)
    assert "submission.lab.test" in reach.result  # the relay's own banner
    assert "STARTTLS" in tls_result.result and "CA file" in tls_result.result
    assert "PLAIN" in auth.result and "LOGIN" in auth.result
    assert "tried at Start" in auth.result and "password" in auth.result
    assert "relay mode" in report.get("dnsbl").result
    # no login was made (none could be: the checks have no password); the probe went
    # through TLS and ended there
    assert server.auth_commands == [] and server.logins == [] and server.messages == []
    assert server.connections == 1
    # this machine's address was never looked up: no PTR, no blocklist query
    assert world.dns is not None
    assert world.dns.queries("1.0.0.127.in-addr.arpa", "PTR") == 0
    assert world.dns.queries("1.0.0.127.bl.test", "A") == 0
    assert world.dns.queries(RELAY_NAME, "A") == 1  # the relay's name, through the lab
    assert world.server("mx.good.test").recorder.connections == []  # no port 25 probe


async def test_implicit_tls_on_its_own_port(world: LabWorld, key: Path, tmp_path: Path) -> None:
    tls = lab_tls()
    async with SubmissionServer(USER, PASSWORD, security="tls", tls=tls) as server:
        relay = route(server.port, tmp_path, tls, implicit_tls=True)
        report = await relay_report(world, key, relay)
    assert report.get("relay").status is Status.PASS
    result = report.get("relay-tls")
    assert result.status is Status.PASS and "TLS from the first byte" in result.result
    assert server.auth_commands == []


async def test_implicit_tls_reads_the_auth_offered_after_the_greeting(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    tls = lab_tls()
    async with SubmissionServer(USER, PASSWORD, security="tls", tls=tls) as server:
        report = await relay_report(world, key, route(server.port, tmp_path, tls,
                                                      implicit_tls=True))
    assert report.get("relay-auth").status is Status.PASS, report.get("relay-auth")


async def test_implicit_tls_to_a_starttls_port_is_red_and_says_so(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    tls = lab_tls()
    async with SubmissionServer(USER, PASSWORD, tls=tls) as server:
        report = await relay_report(world, key, route(server.port, tmp_path, tls,
                                                      implicit_tls=True))
    result = report.get("relay-tls")
    assert result.status is Status.FAIL and "TLS failed" in result.result
    assert "STARTTLS" in result.fix
    assert "plain text" in report.get("relay").result


async def test_an_untrusted_certificate_is_red_and_says_what_to_give(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    async with SubmissionServer(USER, PASSWORD, tls=lab_tls()) as server:
        # the CA file given is another CA's: the relay's certificate is not trusted
        report = await relay_report(world, key, route(server.port, tmp_path, lab_tls()))
    result = report.get("relay-tls")
    assert result.status is Status.FAIL and report.exit_code == 1
    assert "not trusted" in result.result and "certificate verify failed" in result.result
    assert "CA" in result.fix and "--relay-cafile" in result.fix
    assert report.get("relay").status is Status.PASS  # it answered; TLS is the problem
    assert report.get("relay-auth").status is Status.UNKNOWN  # never reached through TLS
    assert server.auth_commands == []


async def test_a_certificate_for_another_name_is_red(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    tls = LabTLS(("other.lab.test",))
    async with SubmissionServer(USER, PASSWORD, tls=tls) as server:
        report = await relay_report(world, key, route(server.port, tmp_path, tls))
    result = report.get("relay-tls")
    assert result.status is Status.FAIL and RELAY_NAME in result.result
    assert "does not name" in result.result


async def test_a_relay_down_is_red(world: LabWorld, key: Path, tmp_path: Path) -> None:
    report = await relay_report(world, key, route(free_port(), tmp_path, lab_tls()))
    result = report.get("relay")
    assert result.status is Status.FAIL and report.exit_code == 1
    assert "could not connect" in result.result and RELAY_NAME in result.result
    assert "port" in result.fix
    assert report.get("relay-tls").status is Status.UNKNOWN
    assert report.get("relay-auth").status is Status.UNKNOWN


async def test_a_relay_name_that_does_not_resolve_is_red(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    relay = route(587, tmp_path, None, host="nowhere.lab.test")
    report = await relay_report(world, key, relay)
    result = report.get("relay")
    assert result.status is Status.FAIL and "could not be resolved" in result.result
    assert report.get("spf").status is Status.UNKNOWN


async def test_one_relay_down_of_two_warns(world: LabWorld, key: Path, tmp_path: Path) -> None:
    tls = lab_tls()
    async with SubmissionServer(USER, PASSWORD, tls=tls) as server:
        relay = route(server.port, tmp_path, tls)
        two = RelayRoute((Relay(RELAY_NAME, free_port()), *relay.relays), False, relay.cafile,
                         USER)
        report = await relay_report(world, key, two)
    result = report.get("relay")
    assert result.status is Status.WARN and "could not connect" in result.result
    assert "answered" in result.result


async def test_a_relay_that_offers_no_starttls_is_red(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    async with SubmissionServer(USER, PASSWORD, security="none") as server:
        report = await relay_report(world, key, route(server.port, tmp_path, lab_tls()))
    result = report.get("relay-tls")
    assert result.status is Status.FAIL and "does not offer STARTTLS" in result.result
    assert "--relay-security tls" in result.fix


async def test_a_login_configured_needs_plain_or_login_offered(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    tls = lab_tls()
    async with SubmissionServer(USER, PASSWORD, tls=tls, mechanisms=("LOGIN",)) as server:
        relay = route(server.port, tmp_path, tls)
        only_login = await relay_report(world, key, relay)
        without_user = await relay_report(
            world, key, route(server.port, tmp_path, tls, user=None)
        )
    result = only_login.get("relay-auth")
    assert result.status is Status.PASS and "AUTH LOGIN" in result.result
    # the relay offers AUTH, but no user is configured: a relay that requires it refuses
    unset = without_user.get("relay-auth")
    assert unset.status is Status.WARN and "--relay-user" in unset.fix
    assert server.auth_commands == []


async def test_spf_is_evaluated_for_the_relays_address(
    world: LabWorld, key: Path, tmp_path: Path
) -> None:
    tls = lab_tls()
    zone = world.zone
    zone.add_txt("nospf.test", "v=spf1 ip4:192.0.2.10 -all")
    zone.add_txt("neutral.test", "v=spf1 ?all")
    async with SubmissionServer(USER, PASSWORD, tls=tls) as server:
        relay = route(server.port, tmp_path, tls)
        passing = await relay_report(world, key, relay)
        failing = await relay_report(world, key, relay, sender="news@nospf.test")
        neutral = await relay_report(world, key, relay, sender="news@neutral.test")
    ok = passing.get("spf")
    assert ok.status is Status.PASS and "relay" in ok.result and "127.0.0.1" in ok.result
    bad = failing.get("spf")
    assert bad.status is Status.FAIL and "SPF fail" in bad.result
    assert "include:" in bad.fix and "ip4:127.0.0.1" in bad.fix and "nospf.test" in bad.fix
    meh = neutral.get("spf")
    assert meh.status is Status.WARN and "include:" in meh.fix


def test_the_options_make_a_route_without_a_password(tmp_path: Path) -> None:
    tls = lab_tls()
    cafile = str(tls.write_ca(tmp_path / "ca.pem"))
    made = relay_route([f"{RELAY_NAME}:2587", "[::1]"], implicit_tls=False, user=USER,
                       cafile=cafile)
    assert made == RelayRoute((Relay(RELAY_NAME, 2587), Relay("::1", 587)), False, cafile, USER)
    assert relay_route([], implicit_tls=False) is None
    for bad in ({"user": USER}, {"cafile": cafile}):
        try:
            relay_route([], implicit_tls=False, **bad)
        except ValueError as error:
            assert "need --relay" in str(error)
        else:
            raise AssertionError(f"{bad} without --relay was accepted")
