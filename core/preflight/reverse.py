"""Reverse DNS of the outgoing address, forward-confirmed (FCrDNS), IPv4 and IPv6 apart.

Receivers look up the PTR of the connecting address and then that name's A/AAAA: if the
two do not meet, many (Gmail, Microsoft, most spam filters) reject or junk the mail.
Only whoever owns the address (the hosting or internet provider) can set its PTR; home
connections usually cannot, which is one more reason for relay mode.
"""

from __future__ import annotations

from core.preflight.facts import Facts, Outgoing, public_problem
from core.preflight.report import RELAY_ADVICE, CheckResult, Status

TITLE = "Reverse DNS (IPv{version})"


def key(version: int) -> str:
    return f"rdns-ipv{version}"


async def check(facts: Facts) -> list[CheckResult]:
    return [await _one(facts, outgoing) for outgoing in await facts.outgoing()]


async def _one(facts: Facts, outgoing: Outgoing) -> CheckResult:
    version = outgoing.version
    title = TITLE.format(version=version)
    address = outgoing.address
    if address is None:
        return CheckResult(key(version), title, Status.UNKNOWN,
                           f"Not checked: {outgoing.why}.",
                           f"Nothing to do unless you send over IPv{version}; to check an "
                           "address, give it with --source-address.")
    private = public_problem(address)
    if private is not None:
        return CheckResult(key(version), title, Status.UNKNOWN, f"Not checked: {private}.",
                           "Give the public address with --source-address to check it.")
    found = await facts.reverse(address)
    if found.confirmed is not None:
        return CheckResult(key(version), title, Status.PASS,
                           f"{address} has reverse DNS {found.confirmed}, which resolves "
                           "back to it.")
    if found.problem is not None and not found.names:
        return CheckResult(key(version), title, Status.UNKNOWN,
                           f"The reverse DNS of {address} could not be read: {found.problem}.",
                           "Try again; if it persists, check the DNS servers.")
    owner = (f"Ask whoever provides {address} (your hosting or internet provider) to set "
             "its PTR record to a host name of your domain, e.g. mail.example.com")
    if not found.names:
        return CheckResult(key(version), title, Status.FAIL,
                           f"{address} has no reverse DNS (no PTR record): many receivers "
                           "reject mail from such addresses.",
                           f"{owner}, with an A/AAAA record back to {address}; if they "
                           f"cannot, {RELAY_ADVICE}.")
    names = ", ".join(found.names)
    return CheckResult(key(version), title, Status.FAIL,
                       f"{address} has reverse DNS {names}, but that name does not resolve "
                       f"back to {address}" + (f" ({found.problem})" if found.problem else "")
                       + ": it is not forward-confirmed.",
                       f"Publish an {'A' if version == 4 else 'AAAA'} record for {found.names[0]}"
                       f" pointing to {address}, or: {owner}.")
