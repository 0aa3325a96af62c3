"""The SPF check: the sender domain's SPF record evaluated for each outgoing address.

Receivers (and DMARC) count a message as authenticated by SPF only on ``pass``; a fail
or softfail for our own address means the domain's record does not list it yet, which
the user fixes by adding it.
"""

from __future__ import annotations

from core.preflight.facts import Facts, public_problem
from core.preflight.report import CheckResult, Status, worst
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


async def spf_for(facts: Facts, address: str) -> SPFOutcome:
    """The SPF outcome for ``address`` (shared with the DMARC check)."""
    campaign = facts.campaign
    return await check_host(facts.lookups, address, campaign.sender_domain, campaign.sender,
                            campaign.helo)


async def check(facts: Facts) -> list[CheckResult]:
    domain = facts.campaign.sender_domain
    addresses = [o.address for o in await facts.outgoing()
                 if o.address is not None and public_problem(o.address) is None]
    if not addresses:
        return [CheckResult(KEY, TITLE, Status.UNKNOWN,
                            "Not checked: no public outgoing address is known.",
                            "Give the public address with --source-address to check it.")]
    outcomes = [(address, await spf_for(facts, address)) for address in addresses]
    status = worst([STATUS[outcome.result] for _, outcome in outcomes])
    text = " ".join(
        f"SPF {outcome.result.value} for {address}: {outcome.reason}."
        for address, outcome in outcomes
    )
    record = next((outcome.record for _, outcome in outcomes if outcome.record), None)
    if record:
        text += f" Record: {record!r}."
    bad = {outcome.result for _, outcome in outcomes}
    fix = ""
    if SPFResult.PERMERROR in bad:
        fix = (f"Correct the SPF record of {domain}: one record, valid terms, at most 10 "
               "DNS lookups (flatten includes you do not need).")
    elif bad & {SPFResult.FAIL, SPFResult.SOFTFAIL, SPFResult.NEUTRAL}:
        first = addresses[0]
        mechanism = "ip4" if ":" not in first else "ip6"
        fix = (f"Add {mechanism}:{first} to the SPF record of {domain} (before its 'all').")
    elif SPFResult.NONE in bad:
        first = addresses[0]
        mechanism = "ip4" if ":" not in first else "ip6"
        fix = (f"Publish a TXT record at {domain}: 'v=spf1 {mechanism}:{first} -all' (add "
               "your other sending services). Gmail and Yahoo require SPF or DKIM.")
    elif SPFResult.TEMPERROR in bad:
        fix = "Try again; if it persists, check the domain's DNS servers."
    return [CheckResult(KEY, TITLE, status, text, fix)]
