"""Recipients by mailbox provider: the campaign's domains grouped by the registered
domain of their MX hosts (every Google-hosted domain under google.com), with the bulk
threshold: Gmail and Yahoo treat a sender of 5,000 or more messages a day to their users
as a *bulk sender*, with stricter rules (SPF, DKIM and DMARC, one-click unsubscribe, a
spam rate under 0.3 %).
"""

from __future__ import annotations

from typing import Final

from core.preflight.facts import Facts
from core.preflight.report import CheckResult, Status

KEY = "providers"
TITLE = "Recipients by mailbox provider"

#: Messages a day to one provider from which Gmail and Yahoo apply bulk-sender rules.
BULK_THRESHOLD: Final = 5000
#: Providers named in the result; the rest are summed.
SHOWN: Final = 8


async def check(facts: Facts) -> list[CheckResult]:
    found = await facts.providers()
    if not found.groups:
        return [CheckResult(KEY, TITLE, Status.UNKNOWN,
                            "No recipient domain could be routed, so the providers are "
                            "unknown.", "Check the recipient list and the DNS settings.")]
    parts = [
        f"{group.name}: {group.recipients:,}" + (" (bulk)" if group.recipients >= BULK_THRESHOLD
                                                 else "")
        for group in found.groups[:SHOWN]
    ]
    rest = found.groups[SHOWN:]
    if rest:
        parts.append(f"{len(rest)} more: {sum(group.recipients for group in rest):,}")
    if found.unroutable:
        domains = found.unroutable_domains
        parts.append(f"no route: {found.unroutable:,} ({domains} domain{'s' * (domains != 1)})")
    if found.not_looked_up:
        parts.append(f"not looked up: {found.not_looked_up:,}")
    text = "; ".join(parts) + f". Bulk threshold: {BULK_THRESHOLD:,} a day per provider."
    bulk = [group.name for group in found.groups if group.recipients >= BULK_THRESHOLD]
    if bulk:
        return [CheckResult(KEY, TITLE, Status.WARN,
                            f"{text} Over it at {', '.join(bulk)}: their bulk-sender rules apply.",
                            "Make sure SPF, DKIM, DMARC and one-click unsubscribe pass, keep "
                            "complaints under 0.3 %, or spread the campaign over several days.")]
    return [CheckResult(KEY, TITLE, Status.PASS, text)]
