"""Outbound port 25: can this machine reach recipients' MX servers at all, and is it
really them answering?

Many consumer ISPs block outbound port 25 (connections time out or are refused) or send
it through a transparent proxy that answers in the MX's place; the proxy's banner names
the ISP's host, not the MX. A banner naming a host under another registered domain than
the MX's is reported as that hint (Google's MX aspmx.l.google.com greets as
mx.google.com: same registered domain, no warning).
"""

from __future__ import annotations

from core.destinations import registered_domain
from core.preflight.facts import Facts, Probe
from core.preflight.report import RELAY_ADVICE, CheckResult, Status

KEY = "port25"
TITLE = "Outbound port 25"


def banner_host(probe: Probe) -> str:
    """The host name a 220 banner starts with (RFC 5321 §4.3.1), lower case, or ""."""
    if probe.banner is None or not probe.banner.lines:
        return ""
    words = probe.banner.lines[0].split()
    return words[0].lower().rstrip(".") if words else ""


def banner_matches(probe: Probe) -> bool:
    name = banner_host(probe)
    return bool(name) and (
        name == probe.host or registered_domain(name) == registered_domain(probe.host)
    )


async def check(facts: Facts) -> list[CheckResult]:
    probes = await facts.probes()
    if not probes:
        return [CheckResult(KEY, TITLE, Status.UNKNOWN,
                            "No recipient domain has a reachable MX host to try.",
                            "Check the recipient list and the DNS settings.")]
    reached = [probe for probe in probes if probe.connected and probe.banner is not None]
    if not reached:
        tried = "; ".join(f"{p.host} ({p.address}): {p.problem or 'no banner'}" for p in probes)
        return [CheckResult(
            KEY, TITLE, Status.FAIL,
            f"No recipient mail server answered on port {facts.network.port}: {tried}. "
            "Your network (often the internet provider) blocks outgoing port 25.",
            f"Ask your provider to unblock port 25, or {RELAY_ADVICE}.",
        )]
    mismatched = [probe for probe in reached if not banner_matches(probe)]
    refused = [probe for probe in reached if probe.banner and probe.banner.code != 220]
    names = ", ".join(probe.host for probe in reached)
    if mismatched:
        detail = "; ".join(
            f"{p.host} greeted as {banner_host(p) or '(no name)'!r}" for p in mismatched
        )
        return [CheckResult(
            KEY, TITLE, Status.WARN,
            f"Port 25 is open, but {detail}: a banner that does not name the MX host hints "
            "at a transparent proxy of your internet provider that intercepts port 25.",
            f"Ask your provider whether port 25 is proxied; if it is, {RELAY_ADVICE}.",
        )]
    if refused:
        detail = "; ".join(f"{p.host}: {p.banner.code} {p.banner.text}" for p in refused
                           if p.banner is not None)
        return [CheckResult(
            KEY, TITLE, Status.WARN,
            f"Port 25 is open, but a server refused this machine in its greeting: {detail}.",
            "Read the server's reason: it often names a blocklist or a policy; if it is "
            f"about this address, {RELAY_ADVICE}.",
        )]
    if len(reached) < len(probes):
        missed = ", ".join(p.host for p in probes if p not in reached)
        return [CheckResult(
            KEY, TITLE, Status.WARN,
            f"{names} answered on port 25; {missed} did not.",
            "A single silent server may just be down; if it stays so, try again later.",
        )]
    return [CheckResult(KEY, TITLE, Status.PASS,
                        f"{names} answered on port {facts.network.port} with their own name.")]
