"""STARTTLS at the top destinations: whether the servers most of the campaign goes to
offer encryption (RFC 3207), read from the EHLO reply of the port 25 probes.

Nothing to fix on the sender's side when a receiver lacks it, unless the send settings
*require* STARTTLS: then mail to that destination will fail, and the user should know
before the campaign starts.
"""

from __future__ import annotations

from core.preflight.facts import Facts
from core.preflight.report import CheckResult, Status

KEY = "starttls"
TITLE = "STARTTLS at the top destinations"


async def check(facts: Facts) -> list[CheckResult]:
    probes = [probe for probe in await facts.probes() if probe.extensions is not None]
    if not probes:
        return [CheckResult(KEY, TITLE, Status.UNKNOWN,
                            "No recipient mail server answered EHLO, so STARTTLS is unknown.",
                            "See the port 25 check.")]
    without = [probe for probe in probes if probe.extensions and not probe.extensions.starttls]
    offering = [probe.host for probe in probes if probe not in without]
    if not without:
        return [CheckResult(KEY, TITLE, Status.PASS,
                            f"{', '.join(offering)} offer STARTTLS: mail to them is encrypted.")]
    names = ", ".join(f"{probe.host} ({probe.provider})" for probe in without)
    verb = "does" if len(without) == 1 else "do"
    if facts.network.starttls_required:
        return [CheckResult(
            KEY, TITLE, Status.FAIL,
            f"{names} {verb} not offer STARTTLS, and the settings require it: mail to them "
            "will fail.",
            "Set STARTTLS to 'opportunistic' (encrypt where offered), or remove those "
            "recipients.",
        )]
    return [CheckResult(
        KEY, TITLE, Status.WARN,
        f"{names} {verb} not offer STARTTLS: mail to them travels unencrypted.",
        "Nothing to fix on your side; the receiving provider decides. Mail is still "
        "delivered.",
    )]
