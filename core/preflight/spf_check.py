"""The SPF check: the sender domain's SPF record evaluated for each outgoing address,
or in relay mode for each relay's addresses (the relays hand the mail to receivers).

Receivers (and DMARC) count a message as authenticated by SPF only on ``pass``; a fail
or softfail for our own address means the domain's record does not list it yet, which
the user fixes by adding it; for a relay, by adding the relay provider's ``include:``
(or the relay's ``ip4:``/``ip6:``).
"""

from __future__ import annotations

from core.preflight.facts import Facts, public_problem
from core.preflight.report import CheckResult, Status, no_public_address, worst
from core.preflight.spf import SPFOutcome, SPFResult, check_host

KEY = "spf"
TITLE = "SPF of the sender domain"

STATUS = {
    SPFResult.PASS: Status.PASS,
    SPFResult.FAIL: Status.FAIL,
    SPFResult.SOFTFAIL: Status.FAIL,
    SPFResult.PERMERROR: Status.FAIL,
    SPFResult.NEUTRAL: Status.WARN,
    SPFResult.NONE: Status.WARN,
    SPFResult.TEMPERROR: Status.UNKNOWN,
}


async def _spf_for(facts: Facts, address: str) -> SPFOutcome:
    """The SPF outcome of the sender domain for ``address``."""
    campaign = facts.campaign
    return await check_host(facts.lookups, address, campaign.sender_domain, campaign.sender,
                            campaign.helo)


async def check(facts: Facts) -> list[CheckResult]:
    if facts.network.relay is not None:
        return await _relays(facts)
    domain = facts.campaign.sender_domain
    addresses = await facts.public_addresses()
    if not addresses:
        return [no_public_address(KEY, TITLE)]
    outcomes = [(address, await _spf_for(facts, address)) for address in addresses]
    status, text = _found(outcomes)
    bad = {outcome.result for _, outcome in outcomes}
    mechanism = _mechanism(addresses[0])
    fix = ""
    if SPFResult.PERMERROR in bad:
        fix = _permerror_fix(domain)
    elif bad & {SPFResult.FAIL, SPFResult.SOFTFAIL, SPFResult.NEUTRAL}:
        fix = (f"Add {mechanism} to the SPF record of {domain} (before its 'all').")
    elif SPFResult.NONE in bad:
        fix = (f"Publish a TXT record at {domain}: 'v=spf1 {mechanism} -all' (add "
               "your other sending services). Gmail and Yahoo require SPF or DKIM.")
    elif SPFResult.TEMPERROR in bad:
        fix = TEMPERROR_FIX
    return [CheckResult(KEY, TITLE, status, text, fix)]


#: What to do when the domain's DNS servers did not answer.
TEMPERROR_FIX = "Try again; if it persists, check the domain's DNS servers."


def _permerror_fix(domain: str) -> str:
    return (f"Correct the SPF record of {domain}: one record, valid terms, at most 10 "
            "DNS lookups (flatten includes you do not need).")


def _mechanism(address: str) -> str:
    """The SPF mechanism that authorises ``address`` alone."""
    return f"{'ip4' if ':' not in address else 'ip6'}:{address}"


def _found(outcomes: list[tuple[str, SPFOutcome]]) -> tuple[Status, str]:
    """The worst light of ``outcomes`` (each named by what it was for) and what they say,
    with the record evaluated."""
    status = worst([STATUS[outcome.result] for _, outcome in outcomes])
    text = " ".join(
        f"SPF {outcome.result.value} for {name}: {outcome.reason}." for name, outcome in outcomes
    )
    record = next((outcome.record for _, outcome in outcomes if outcome.record), None)
    if record:
        text += f" Record: {record!r}."
    return status, text


#: Relay addresses evaluated at most (a relay name with many addresses).
MAX_RELAY_ADDRESSES = 10


async def _relays(facts: Facts) -> list[CheckResult]:
    """Relay mode: SPF for the relays' addresses (resolved through the configured
    nameservers). A relay with a private address is not evaluated: receivers see the
    address it delivers from, which is not known here."""
    domain = facts.campaign.sender_domain
    found = await facts.relay_addresses()
    addresses: list[tuple[str, str]] = []  # (address, relay)
    skipped: list[str] = []
    for each in found:
        for address in each.addresses:
            if public_problem(address) is None:
                addresses.append((address, each.relay.name))
            else:
                skipped.append(f"{each.relay.name} ({address})")
    addresses = list(dict.fromkeys(addresses))[:MAX_RELAY_ADDRESSES]
    unresolved = [f"{each.relay.name}: {each.problem}" for each in found if not each.addresses]
    if not addresses:
        why = []
        if skipped:
            why.append(f"the relays' addresses are private ({', '.join(skipped)}): "
                       "receivers see the address the relay delivers from")
        if unresolved:
            why.append(f"no relay address was found ({'; '.join(unresolved)})")
        return [CheckResult(KEY, TITLE, Status.UNKNOWN,
                            f"Not checked: {'; '.join(why) or 'no relay address'}.",
                            f"Make sure the SPF record of {domain} authorises the addresses "
                            "your relays deliver from (your relay provider's include:).")]
    outcomes = [(address, relay, await _spf_for(facts, address)) for address, relay in addresses]
    status, text = _found(
        [(f"relay {relay} at {address}", outcome) for address, relay, outcome in outcomes]
    )
    bad = {outcome.result for _, _, outcome in outcomes}
    failing = [address for address, _, outcome in outcomes
               if outcome.result is not SPFResult.PASS]
    mechanism = _mechanism(failing[0] if failing else addresses[0][0])
    fix = ""
    if SPFResult.PERMERROR in bad:
        fix = _permerror_fix(domain)
    elif bad & {SPFResult.FAIL, SPFResult.SOFTFAIL, SPFResult.NEUTRAL}:
        fix = (f"Add include:… of your relay provider (its documentation names it) or "
               f"{mechanism} of your relay to the SPF record of {domain}, before "
               "its 'all'.")
    elif SPFResult.NONE in bad:
        fix = (f"Publish a TXT record at {domain}: 'v=spf1 include:… -all' with your relay "
               f"provider's include (or {mechanism} of your relay). Gmail and "
               "Yahoo require SPF or DKIM.")
    elif SPFResult.TEMPERROR in bad:
        fix = TEMPERROR_FIX
    if fix and status is not Status.UNKNOWN:
        fix += (" A relay may deliver from other addresses than the one it receives on: "
                "the provider's include: covers those.")
    return [CheckResult(KEY, TITLE, status, text, fix)]
