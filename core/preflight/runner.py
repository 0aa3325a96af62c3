"""Runs the checks: concurrently, each within its time limit, every outcome a result.

A check that runs out of time or raises is reported as *unknown* with the reason (a
preflight must never hang the window or stop a send by crashing); the shared facts
still being found are cancelled at the end, so nothing outlives the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from core.preflight import (
    dkim_record,
    dmarc,
    dnsbl,
    helo,
    port25,
    providers,
    relay_checks,
    reverse,
    spf_check,
    starttls,
    unsubscribe,
)
from core.preflight.facts import Facts
from core.preflight.inputs import Preflight
from core.preflight.report import CheckResult, Report, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    key: str
    title: str
    run: Callable[[Facts], Awaitable[list[CheckResult]]]


#: The sender domain's checks: the same whichever route the mail takes.
DOMAIN_CHECKS: Final = (
    Check(spf_check.KEY, spf_check.TITLE, spf_check.check),
    Check(dkim_record.KEY, dkim_record.TITLE, dkim_record.check),
    Check(dmarc.KEY, dmarc.TITLE, dmarc.check),
    Check(unsubscribe.KEY, unsubscribe.TITLE, unsubscribe.check),
    Check(providers.KEY, providers.TITLE, providers.check),
)

#: Every check, in the order they are shown (the network first, then the domain).
CHECKS: Final = (
    Check(port25.KEY, port25.TITLE, port25.check),
    Check("rdns", "Reverse DNS", reverse.check),
    Check(helo.KEY, helo.TITLE, helo.check),
    Check(dnsbl.KEY, dnsbl.TITLE, dnsbl.check),
    *DOMAIN_CHECKS,
    Check(starttls.KEY, starttls.TITLE, starttls.check),
)


def _not_applicable(key: str, title: str, why: str) -> Check:
    """A direct-route check, shown in relay mode as not applicable, with ``why``."""
    return Check(
        key, title, relay_checks.not_applicable(key, title, "the relays deliver the mail, " + why)
    )


#: Relay mode: the relays first, then the domain (SPF for the relays' addresses), then
#: the direct route's checks, shown as not applicable (they are about this machine
#: delivering to the recipients' MX hosts, which it does not do in relay mode).
RELAY_CHECKS: Final = (
    Check(relay_checks.REACH_KEY, relay_checks.REACH_TITLE, relay_checks.reach),
    Check(relay_checks.TLS_KEY, relay_checks.TLS_TITLE, relay_checks.tls),
    Check(relay_checks.AUTH_KEY, relay_checks.AUTH_TITLE, relay_checks.auth),
    *DOMAIN_CHECKS,
    _not_applicable(port25.KEY, port25.TITLE, "so this machine never connects to port 25."),
    _not_applicable(
        "rdns",
        "Reverse DNS",
        "so receivers see the relays' addresses and reverse DNS, not this machine's.",
    ),
    _not_applicable(
        helo.KEY, helo.TITLE, "so receivers see the relays' HELO names, not this machine's."
    ),
    _not_applicable(
        dnsbl.KEY,
        dnsbl.TITLE,
        "so a listing of this machine's address (a home address in the PBL, say) does not"
        " matter to receivers.",
    ),
    _not_applicable(
        starttls.KEY,
        starttls.TITLE,
        "so encryption to the recipients' servers is the relays' business; the connection"
        " to the relay is checked above.",
    ),
)


def checks_for(preflight: Preflight) -> tuple[Check, ...]:
    """The checks of the route ``preflight`` takes: direct, or through relays."""
    return CHECKS if preflight.network.relay is None else RELAY_CHECKS


async def run_preflight(
    preflight: Preflight, checks: tuple[Check, ...] | None = None
) -> Report:
    """Every check of the route (``checks_for``), or the ``checks`` given."""
    if checks is None:
        checks = checks_for(preflight)
    facts = Facts(preflight)
    try:
        found = await asyncio.gather(*(_run(check, facts) for check in checks))
    finally:
        facts.close()
    return Report(tuple(result for results in found for result in results))


async def _run(check: Check, facts: Facts) -> list[CheckResult]:
    limit = facts.network.check_timeout
    try:
        async with asyncio.timeout(limit):
            return await check.run(facts)
    except TimeoutError:
        return [CheckResult(check.key, check.title, Status.UNKNOWN,
                            f"The check did not finish within {limit:g} s.",
                            "Check the network and the DNS servers, then run it again.")]
    except Exception as error:  # a bug or a surprise: shown, never a crash of the run
        log.exception("preflight check %s failed", check.key)
        return [CheckResult(check.key, check.title, Status.UNKNOWN,
                            f"The check could not run: {type(error).__name__}: {error}.",
                            "Please report this.")]
