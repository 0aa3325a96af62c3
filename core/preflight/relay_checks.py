"""Relay mode's own checks: is each relay reachable and speaking SMTP, does TLS work as
configured (STARTTLS offered and the handshake done, or TLS from the first byte) with the
certificate verified as a send verifies it, and does the relay offer a login the send can
use (AUTH PLAIN or LOGIN) when a relay user is configured?

Read from :meth:`Facts.relay_probes`: one connection per relay, ended after the EHLO
that follows TLS. Pre-flight never logs in (it has no password and needs none): whether
the relay takes the user's password is learnt at Start. Also here: the lights of the
direct route's checks, which are *not applicable* when the mail goes through relays.

Several relays are failover (the first takes the traffic while it answers): a check
fails when no relay passes it, and warns when some do and some do not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.preflight.facts import Facts, RelayProbe
from core.preflight.report import CheckResult, Status, worst
from core.smtp import FailureKind

REACH_KEY = "relay"
REACH_TITLE = "Relay reachable"
TLS_KEY = "relay-tls"
TLS_TITLE = "Relay TLS and certificate"
AUTH_KEY = "relay-auth"
AUTH_TITLE = "Relay login offered"

#: The mechanisms a send logs in with (``core.smtp``: PLAIN, else LOGIN).
MECHANISMS = ("PLAIN", "LOGIN")

_Finding = tuple[Status, str, str]  # light, what was found, the fix
_Run = Callable[[Facts], Awaitable[list[CheckResult]]]


def not_applicable(key: str, title: str, why: str) -> _Run:
    """A direct-route check in relay mode: shown, but neither a pass nor a fail."""

    async def check(_facts: Facts) -> list[CheckResult]:
        return [CheckResult(key, title, Status.NOT_APPLICABLE,
                            f"Not applicable in relay mode: {why}")]

    return check


def _combine(key: str, title: str, found: list[tuple[RelayProbe, _Finding]]) -> list[CheckResult]:
    """One light for the relays: pass if all pass, warn if some do, else the worst."""
    statuses = [status for _, (status, _, _) in found]
    text = " ".join(line for _, (_, line, _) in found)
    fixes = list(dict.fromkeys(fix for _, (status, _, fix) in found
                               if fix and status is not Status.PASS))
    passed = [status is Status.PASS for status in statuses]
    if all(passed):
        return [CheckResult(key, title, Status.PASS, text)]
    if any(passed):
        fix = " ".join(fixes)
        return [CheckResult(
            key, title, Status.WARN, text,
            (f"{fix} " if fix else "") + "Mail goes to the next relay only when one fails; "
            "fix the failing relay or remove it.",
        )]
    return [CheckResult(key, title, worst(statuses), text, " ".join(fixes))]


def _where(probe: RelayProbe) -> str:
    if probe.address is None or probe.address == probe.relay.host:
        return probe.relay.name
    return f"{probe.relay.name} ({probe.address})"


# ---- reachable, and speaking SMTP ----------------------------------------------------


async def reach(facts: Facts) -> list[CheckResult]:
    probes = await facts.relay_probes()
    return _combine(REACH_KEY, REACH_TITLE,
                    [(probe, _reach(facts, probe)) for probe in probes])


def _reach(facts: Facts, probe: RelayProbe) -> _Finding:
    where = _where(probe)
    route = facts.relay
    if probe.address is None:
        return (Status.FAIL, f"{where}: the name could not be resolved ({probe.problem}).",
                "Check the relay's name in the settings (--relay) and the DNS.")
    if probe.failure_kind is FailureKind.LOCAL and not probe.connected:
        return (Status.FAIL, f"{where}: not tried: {probe.problem}.",
                "Give a CA file that holds the relay's CA certificate (PEM).")
    if not probe.connected:
        return (Status.FAIL, f"{where}: could not connect ({probe.problem}).",
                "Check the relay's name and port, that it is running, and that no firewall "
                "blocks the port.")
    if probe.greeted:
        assert probe.banner is not None
        said = f"{probe.banner.code} {probe.banner.text}"
        if route.implicit_tls and probe.tls is None:  # see the TLS check
            return (Status.PASS, f"{where} answered in plain text, not in TLS: {said}.", "")
        return (Status.PASS, f"{where} answered: {said}.", "")
    if probe.banner is not None:  # a greeting that refuses: 554 and the like
        return (Status.FAIL,
                f"{where} refused the connection in its greeting: {probe.banner.code} "
                f"{probe.banner.text}.",
                "Read the relay's reason; ask its administrator to accept connections from "
                "this machine.")
    if route.implicit_tls and probe.failure_kind is FailureKind.TLS:
        return (Status.UNKNOWN,
                f"{where} accepts connections, but its greeting comes inside TLS, which "
                "failed (see the TLS check).", "")
    hint = ("" if route.implicit_tls else
            " If this port speaks TLS from the first byte (usually 465), set the relay "
            "security to TLS (--relay-security tls).")
    return (Status.FAIL,
            f"{where} accepted the connection but gave no SMTP greeting ({probe.problem}).",
            f"Check that the port is the relay's SMTP submission port.{hint}")


# ---- TLS as configured, the certificate verified ---------------------------------------


async def tls(facts: Facts) -> list[CheckResult]:
    probes = await facts.relay_probes()
    return _combine(TLS_KEY, TLS_TITLE, [(probe, _tls(facts, probe)) for probe in probes])


def _tls(facts: Facts, probe: RelayProbe) -> _Finding:
    where = _where(probe)
    route = facts.relay
    trust = f"the CA file {route.cafile}" if route.cafile else "the system's CAs"
    if probe.tls is not None:
        how = "TLS from the first byte" if route.implicit_tls else "STARTTLS"
        return (Status.PASS,
                f"{where}: {how}, {probe.tls.version}, the certificate verified for "
                f"{probe.relay.host} by {trust}.", "")
    # TLS is required: a relay reached without it fails this check, whatever ended the
    # conversation (with TLS from the first byte, a plain-text port ends it as a close).
    reached = probe.connected and probe.failure_kind is not FailureKind.LOCAL and (
        route.implicit_tls or probe.greeted
    )
    if not reached:
        return (Status.UNKNOWN, f"{where}: TLS not tried: the relay was not reached (see "
                "the reachability check).", "")
    problem = probe.problem
    lowered = problem.lower()
    if "does not offer starttls" in lowered:
        return (Status.FAIL, f"{where} does not offer STARTTLS; a relay login and mail are "
                "never sent in the clear.",
                "If the relay speaks TLS from the first byte (usually port 465), set the "
                "relay security to TLS (--relay-security tls); otherwise enable STARTTLS on "
                "the relay.")
    if "mismatch" in lowered:
        return (Status.FAIL, f"{where}: the certificate does not name {probe.relay.host} "
                f"({problem}).",
                "Give the relay by the name its certificate is issued for.")
    if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
        return (Status.FAIL, f"{where}: the certificate is not trusted by {trust} "
                f"({problem}); a send would refuse this relay.",
                "If the relay uses a private CA, give that CA's certificate (--relay-cafile, "
                "or the relay CA file in Settings); otherwise the relay needs a certificate "
                "from a public CA.")
    hint = (" If the relay uses STARTTLS (usually port 587), set the relay security to "
            "STARTTLS (--relay-security starttls)." if route.implicit_tls else "")
    return (Status.FAIL, f"{where}: TLS failed ({problem}).",
            f"Check the relay's port and TLS settings.{hint}")


# ---- the login offered -----------------------------------------------------------------


async def auth(facts: Facts) -> list[CheckResult]:
    probes = await facts.relay_probes()
    return _combine(AUTH_KEY, AUTH_TITLE, [(probe, _auth(facts, probe)) for probe in probes])


def _auth(facts: Facts, probe: RelayProbe) -> _Finding:
    where = _where(probe)
    user = facts.relay.user
    if probe.extensions is None and probe.tls is not None:
        return (Status.UNKNOWN, f"{where}: not known: the conversation ended after TLS, "
                f"before the relay listed what it offers ({probe.problem}).",
                "Run the checks again; if it persists, ask the relay's administrator.")
    if probe.extensions is None:
        return (Status.UNKNOWN, f"{where}: not known: the relay was not reached through TLS "
                "(see the checks above).", "")
    offered = sorted(probe.extensions.auth_mechanisms)
    usable = [mechanism for mechanism in MECHANISMS if mechanism in offered]
    if user is None:
        if offered:
            return (Status.WARN, f"{where} offers AUTH ({' '.join(offered)}), but no relay "
                    "user is configured.",
                    "If the relay requires a login to relay mail, set the relay user "
                    "(--relay-user, or Settings).")
        return (Status.PASS, f"{where}: no login configured and none offered.", "")
    if usable:
        return (Status.PASS,
                f"{where} offers AUTH {' '.join(usable)} after TLS. The login as {user} "
                "itself is tried at Start (pre-flight does not use the password).", "")
    if offered:
        return (Status.FAIL, f"{where} offers only AUTH {' '.join(offered)}; a send logs in "
                "with PLAIN or LOGIN.",
                "Enable AUTH PLAIN or LOGIN (over TLS) on the relay.")
    return (Status.FAIL, f"{where} does not offer AUTH after TLS: the login as {user} at "
            "Start would fail.",
            "Check that the port is the relay's submission port (587 or 465), or remove "
            "the relay user if the relay accepts mail without a login.")
