"""DNS blocklists: is the outgoing address listed (Spamhaus ZEN by default)?

A DNSBL is asked ``<reversed address>.<zone>`` A (IPv4: octets reversed; IPv6: nibbles
reversed, RFC 5782 §2.1-2.4). NXDOMAIN: not listed. An address in 127.0.0.0/8: listed,
its last octet says why (Spamhaus' codes, which most lists follow). Answers in
127.255.255.0/24 are Spamhaus' *error* codes, not listings: the query came through a
public resolver it blocks (.254), too many queries (.255), a mistyped zone (.252); the
result is then *unknown*, never "clean". A PBL listing (127.0.0.10/11) is not a spam
judgement: the address's provider says mail should not go direct from it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Final

import dns.reversename

from core.preflight.facts import Facts
from core.preflight.report import (
    RELAY_ADVICE,
    CheckResult,
    Status,
    no_public_address,
    worst,
)

KEY = "dnsbl"
TITLE = "DNS blocklists"

#: Spamhaus ZEN's return codes (https://www.spamhaus.org/faq/section/DNSBL%20Usage).
MEANINGS: Final = {
    2: "SBL: a known spam source",
    3: "SBL CSS: a snowshoe or low-reputation spam source",
    4: "XBL: an infected or exploited machine",
    5: "XBL: an infected or exploited machine",
    6: "XBL: an infected or exploited machine",
    7: "XBL: an infected or exploited machine",
    9: "SBL DROP: a hijacked or criminal network",
    10: "PBL (listed by the provider): your provider says don't send mail direct from here",
    11: "PBL (listed by Spamhaus): this range should not send mail direct",
}
PBL_CODES: Final = frozenset({10, 11})
_ERRORS: Final = ipaddress.ip_network("127.255.255.0/24")
_LISTED: Final = ipaddress.ip_network("127.0.0.0/8")


def query_name(address: str, zone: str) -> str:
    """``1.2.0.192.zen.spamhaus.org`` for 192.0.2.1 (RFC 5782 §2.1, §2.4)."""
    reverse = dns.reversename.from_address(address).to_text(omit_final_dot=True)
    label = reverse.removesuffix(".in-addr.arpa").removesuffix(".ip6.arpa")
    return f"{label}.{zone.strip('.')}"


async def check(facts: Facts) -> list[CheckResult]:
    addresses = await facts.public_addresses()
    if not addresses:
        return [no_public_address(KEY, TITLE)]
    pairs = [(address, zone) for address in addresses for zone in facts.network.dnsbl_zones]
    found = await asyncio.gather(*(_ask(facts, address, zone) for address, zone in pairs))
    status = worst([status for status, _ in found])
    text = " ".join(line for _, line in found)
    if status is Status.PASS:
        return [CheckResult(KEY, TITLE, Status.PASS, text)]
    if status is Status.UNKNOWN:
        return [CheckResult(KEY, TITLE, Status.UNKNOWN, text,
                            "Use your own or your provider's DNS resolver (Spamhaus refuses "
                            "queries from public resolvers), then run the checks again.")]
    pbl_only = all("PBL" in line for found_status, line in found if found_status is Status.FAIL)
    fix = (f"Do not send direct from this address: {RELAY_ADVICE}." if pbl_only else
           "Find out why (the list's lookup page explains the listing and how to be "
           f"removed) and fix the cause before asking for removal; meanwhile {RELAY_ADVICE}.")
    return [CheckResult(KEY, TITLE, Status.FAIL, text, fix)]


async def _ask(facts: Facts, address: str, zone: str) -> tuple[Status, str]:
    answer = await facts.lookups.query(query_name(address, zone), "A")
    if answer.failed:
        return Status.UNKNOWN, f"{zone}: could not be asked about {address} ({answer.problem})."
    if not answer.records:
        return Status.PASS, f"{address} is not listed on {zone}."
    codes = sorted({ipaddress.ip_address(record) for record in answer.records})
    if all(code in _ERRORS for code in codes):
        shown = ", ".join(str(code) for code in codes)
        return Status.UNKNOWN, (
            f"{zone} answered {shown} about {address}: an error code, not a listing (it "
            "blocks queries through public DNS resolvers or too many queries), so the "
            "listing is unknown."
        )
    meanings = [
        MEANINGS.get(int(code.packed[-1]), f"listed ({code})")
        for code in codes
        if code in _LISTED and code not in _ERRORS
    ]
    if not meanings:  # an address outside 127/8: a resolver that rewrites NXDOMAIN
        shown = ", ".join(str(code) for code in codes)
        return Status.UNKNOWN, (
            f"{zone} answered {shown} about {address}, which is no blocklist answer (a DNS "
            "resolver that rewrites answers?), so the listing is unknown."
        )
    return Status.FAIL, f"{address} is listed on {zone}: {'; '.join(meanings)}."
