"""DMARC (RFC 7489): does the From domain publish a policy, and will this campaign's
mail be aligned with it?

Found at ``_dmarc.<From domain>``, else at the organisational domain's (§6.6.3; the
organisational domain is ``core.destinations.registered_domain``'s guess, not the full
Public Suffix List). Aligned means an authenticated identifier matches the From domain:
the envelope sender's domain (SPF) or the DKIM ``d=`` (DKIM), exactly under strict
alignment (``aspf=s``/``adkim=s``), by organisational domain under relaxed. Whether SPF
passes and DKIM verifies is the SPF and DKIM checks' business; here only whether either
*could* satisfy DMARC.
"""

from __future__ import annotations

from core.destinations import registered_domain
from core.preflight.dkim_record import tags
from core.preflight.facts import Facts
from core.preflight.report import CheckResult, Status

KEY = "dmarc"
TITLE = "DMARC of the From domain"


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    identifier, from_domain = identifier.lower(), from_domain.lower()
    if mode == "s":
        return identifier == from_domain
    return registered_domain(identifier) == registered_domain(from_domain)


async def record_for(facts: Facts, domain: str) -> tuple[str | None, str | None, str]:
    """(record, problem, where): the DMARC record at ``domain`` or its organisational
    domain."""
    places = [domain]
    organisation = registered_domain(domain)
    if organisation != domain:
        places.append(organisation)
    for place in places:
        name = f"_dmarc.{place}"
        answer = await facts.lookups.txt(name)
        if answer.failed:
            return None, answer.problem, name
        found = [text for text in answer.records if text.replace(" ", "").lower()
                 .startswith("v=dmarc1;") or text.strip().lower() == "v=dmarc1"]
        if found:
            return found[0], None, name
    return None, None, f"_dmarc.{domain}"


async def check(facts: Facts) -> list[CheckResult]:
    campaign = facts.campaign
    from_domain = campaign.from_domain
    record, problem, where = await record_for(facts, from_domain)
    if problem is not None:
        return [CheckResult(KEY, TITLE, Status.UNKNOWN,
                            f"The DMARC record at {where} could not be read: {problem}.",
                            "Try again; if it persists, check the domain's DNS servers.")]
    if record is None:
        return [CheckResult(KEY, TITLE, Status.FAIL,
                            f"{from_domain} publishes no DMARC record: Gmail and Yahoo require "
                            "one from bulk senders.",
                            f"Publish a TXT record at _dmarc.{from_domain}: 'v=DMARC1; p=none; "
                            f"rua=mailto:dmarc@{from_domain}' (tighten p= later).")]
    policy = tags(record)
    spf_mode, dkim_mode = policy.get("aspf", "r").lower(), policy.get("adkim", "r").lower()
    via: list[str] = []
    if aligned(campaign.sender_domain, from_domain, spf_mode):
        via.append(f"SPF (envelope sender {campaign.sender_domain})")
    if campaign.dkim is not None and aligned(campaign.dkim.domain, from_domain, dkim_mode):
        via.append(f"DKIM (d={campaign.dkim.domain})")
    found = f"{where}: {record!r}."
    if not via:
        signing = campaign.dkim.domain if campaign.dkim else "none"
        return [CheckResult(KEY, TITLE, Status.FAIL,
                            f"{found} Neither the envelope sender's domain "
                            f"({campaign.sender_domain}) nor the DKIM domain ({signing}) "
                            f"aligns with the From domain {from_domain}: DMARC will fail.",
                            f"Send from an address at {from_domain}, or sign DKIM with "
                            f"d={from_domain}.")]
    return [CheckResult(KEY, TITLE, Status.PASS,
                        f"{found} Aligned through {' and '.join(via)}; policy "
                        f"p={policy.get('p', '?')}.")]
