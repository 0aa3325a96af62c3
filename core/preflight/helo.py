"""The HELO name: the name this machine gives in EHLO should be the forward-confirmed
reverse DNS name of its outgoing address (receivers compare them), never ``localhost``
or a bare IP address (RFC 5321 §4.1.1.1 asks for the client's fully qualified name;
filters score the others as spam).
"""

from __future__ import annotations

import ipaddress

from core.preflight.facts import Facts, public_problem
from core.preflight.report import CheckResult, Status

KEY = "helo"
TITLE = "HELO name"


def helo_problem(name: str) -> str | None:
    """Why ``name`` can never be a good HELO name, or None."""
    bare = name.strip().strip("[]").rstrip(".").lower()
    if not bare:
        return "no HELO name is set"
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return f"the HELO name {name} is a bare IP address"
    if bare == "localhost" or bare.endswith((".localhost", ".localdomain")):
        return f"the HELO name {name} is a local name"
    if "." not in bare:
        return f"the HELO name {name} is not a fully qualified host name"
    return None


async def check(facts: Facts) -> list[CheckResult]:
    helo = facts.campaign.helo.rstrip(".").lower()
    problem = helo_problem(helo)
    if problem is not None:
        return [CheckResult(KEY, TITLE, Status.FAIL,
                            f"{problem.capitalize()}: receivers reject or distrust it.",
                            "Set the HELO name (Settings, or --helo) to the reverse DNS name "
                            "of your outgoing address, e.g. mail.example.com.")]
    names: list[str] = []
    unknown: list[str] = []
    for outgoing in await facts.outgoing():
        if outgoing.address is None or public_problem(outgoing.address):
            continue
        reverse = await facts.reverse(outgoing.address)
        if reverse.confirmed is None:
            unknown.append(outgoing.address)
        else:
            names.append(reverse.confirmed)
    if not names:
        why = (f"the outgoing address {', '.join(unknown)} has no forward-confirmed reverse "
               "DNS" if unknown else "the outgoing address is not known")
        return [CheckResult(KEY, TITLE, Status.UNKNOWN,
                            f"{helo} is a proper host name, but {why} to compare it with.",
                            "See the reverse DNS check.")]
    if all(name == helo for name in names):
        return [CheckResult(KEY, TITLE, Status.PASS,
                            f"{helo} is the reverse DNS name of the outgoing address.")]
    return [CheckResult(KEY, TITLE, Status.WARN,
                        f"The HELO name {helo} is not the reverse DNS name of the outgoing "
                        f"address ({', '.join(sorted(set(names)))}).",
                        f"Set the HELO name to {names[0]}.")]
