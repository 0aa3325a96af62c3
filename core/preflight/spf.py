"""SPF (RFC 7208): may this address send mail for the sender's domain?

A small evaluator of ``check_host()`` on the preflight's own asynchronous lookups (so it
asks the configured nameservers, the lab's in tests, and never blocks the loop): the
mechanisms ``all``, ``include``, ``a``, ``mx``, ``ip4``, ``ip6``, ``exists`` (``ptr``,
which RFC 7208 §5.5 says not to use, counts its lookup and never matches), the
``redirect`` modifier (``exp`` is ignored: we only need the result), macros (§7), the
limit of 10 DNS-querying terms (§4.6.4), of 10 names per ``mx`` and of 2 void lookups.
pyspf was not used: it queries DNS synchronously through its own resolver setup and
would need a new dependency for what is a page of code here.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from core.preflight.lookup import Lookups

#: RFC 7208 §4.6.4: terms that cause DNS queries, per check_host() evaluation in all.
MAX_LOOKUPS: Final = 10
#: §4.6.4: lookups that return no answer (NXDOMAIN or no records) before permerror.
MAX_VOID_LOOKUPS: Final = 2
#: §4.6.4: MX names looked up for one ``mx`` mechanism.
MAX_MX_NAMES: Final = 10

_MODIFIER = re.compile(r"([a-z][a-z0-9_.-]*)=(.*)\Z", re.IGNORECASE)
_MECHANISM = re.compile(r"([+?~-]?)([a-z0-9]+)(.*)\Z", re.IGNORECASE)
_CIDR = re.compile(r"(.*?)(?:/(\d+))?(?://(\d+))?\Z")
_MACRO = re.compile(r"%(?:\{([a-z])(\d*)(r?)([.+,/_=-]*)\}|%|_|-)", re.IGNORECASE)


class SPFResult(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


_QUALIFIERS: Final = {
    "+": SPFResult.PASS, "-": SPFResult.FAIL, "~": SPFResult.SOFTFAIL, "?": SPFResult.NEUTRAL,
}


@dataclass(frozen=True, slots=True)
class SPFOutcome:
    """The result, why (the matching term or the error), the domain's own record, and
    the DNS-querying terms it took."""

    result: SPFResult
    reason: str
    record: str | None
    lookups: int


class _Error(Exception):
    def __init__(self, result: SPFResult, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


async def check_host(lookups: Lookups, address: str, domain: str, sender: str,
                     helo: str = "") -> SPFOutcome:
    """RFC 7208 §4: the SPF result for mail from ``sender`` at ``domain`` sent by
    ``address``."""
    evaluation = _Evaluation(lookups, ipaddress.ip_address(address), sender, helo)
    record: str | None = None
    try:
        record = await evaluation.record(domain)
        if record is None:
            return SPFOutcome(SPFResult.NONE, f"{domain} publishes no SPF record", None, 0)
        result, reason = await evaluation.evaluate(domain, record)
    except _Error as error:
        return SPFOutcome(error.result, error.reason, record, evaluation.count)
    return SPFOutcome(result, reason, record, evaluation.count)


class _Evaluation:
    def __init__(self, lookups: Lookups, ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                 sender: str, helo: str) -> None:
        self.lookups = lookups
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.count = 0
        self.void = 0

    async def record(self, domain: str) -> str | None:
        answer = await self.lookups.txt(domain)
        if answer.failed:
            raise _Error(SPFResult.TEMPERROR, f"the SPF record of {domain} could not be read "
                         f"({answer.problem})")
        found = [text for text in answer.records
                 if text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")]
        if len(found) > 1:
            raise _Error(SPFResult.PERMERROR, f"{domain} publishes {len(found)} SPF records "
                         "(one is allowed)")
        return found[0] if found else None

    def _count(self) -> None:
        self.count += 1
        if self.count > MAX_LOOKUPS:
            raise _Error(SPFResult.PERMERROR, f"more than {MAX_LOOKUPS} DNS lookups (include, "
                         "a, mx, ptr, exists, redirect) are needed")

    def _void(self, records: tuple[str, ...], nxdomain: bool) -> None:
        if nxdomain or not records:
            self.void += 1
            if self.void > MAX_VOID_LOOKUPS:
                raise _Error(SPFResult.PERMERROR, f"more than {MAX_VOID_LOOKUPS} lookups found "
                             "nothing (void lookups)")

    async def evaluate(self, domain: str, record: str) -> tuple[SPFResult, str]:
        redirect: str | None = None
        for term in record.split()[1:]:
            modifier = _MODIFIER.match(term)
            if modifier is not None:
                if modifier.group(1).lower() == "redirect":
                    if redirect is not None:
                        raise _Error(SPFResult.PERMERROR, f"{domain}: two redirect modifiers")
                    redirect = modifier.group(2)
                continue
            mechanism = _MECHANISM.match(term)
            if mechanism is None:
                raise _Error(SPFResult.PERMERROR, f"{domain}: {term!r} is not an SPF term")
            qualifier, name, rest = mechanism.groups()
            if await self._matches(domain, name.lower(), rest):
                result = _QUALIFIERS[qualifier or "+"]
                return result, f"{term!r} in the SPF record of {domain} matched"
        if redirect is not None:
            self._count()
            target = self._expand(redirect, domain)
            redirected = await self.record(target)
            if redirected is None:
                raise _Error(SPFResult.PERMERROR, f"{domain} redirects to {target}, which has "
                             "no SPF record")
            return await self.evaluate(target, redirected)
        return SPFResult.NEUTRAL, f"nothing in the SPF record of {domain} matched"

    async def _matches(self, domain: str, name: str, rest: str) -> bool:
        if name == "all":
            return _bare(name, rest)
        if name in ("ip4", "ip6"):
            return self._ip_match(name, rest)
        if name == "include":
            return await self._include(domain, rest)
        if name in ("a", "mx"):
            return await self._address_match(domain, name, rest)
        if name == "exists":
            self._count()
            answer = await self.lookups.query(self._expand(_argument(name, rest), domain), "A")
            self._temporary(answer.problem)
            self._void(answer.records, answer.nxdomain)
            return bool(answer.records)
        if name == "ptr":
            self._count()  # deprecated (RFC 7208 §5.5): counted, never relied on
            return False
        raise _Error(SPFResult.PERMERROR, f"{domain}: unknown mechanism {name!r}")

    def _ip_match(self, name: str, rest: str) -> bool:
        try:
            network = ipaddress.ip_network(_argument(name, rest), strict=False)
        except ValueError:
            raise _Error(SPFResult.PERMERROR, f"{name}{rest} is not a network") from None
        if network.version != (4 if name == "ip4" else 6):
            raise _Error(SPFResult.PERMERROR, f"{name}{rest} is the wrong address family")
        return network.version == self.ip.version and self.ip in network

    async def _include(self, domain: str, rest: str) -> bool:
        self._count()
        target = self._expand(_argument("include", rest), domain)
        record = await self.record(target)
        if record is None:
            raise _Error(SPFResult.PERMERROR, f"{domain} includes {target}, which has no SPF "
                         "record")
        result, _ = await self.evaluate(target, record)
        return result is SPFResult.PASS

    async def _address_match(self, domain: str, name: str, rest: str) -> bool:
        self._count()
        spec, four, six = _CIDR.match(rest).groups()  # type: ignore[union-attr]
        if spec and not spec.startswith(":"):
            raise _Error(SPFResult.PERMERROR, f"{name}{rest} is not an SPF term")
        target = self._expand(spec[1:], domain) if spec else domain
        length = int(four or 32) if self.ip.version == 4 else int(six or 128)
        if name == "a":
            hosts = [target]
        else:
            answer = await self.lookups.query(target, "MX")
            self._temporary(answer.problem)
            self._void(answer.records, answer.nxdomain)
            if len(answer.records) > MAX_MX_NAMES:
                raise _Error(SPFResult.PERMERROR, f"{target} has more than {MAX_MX_NAMES} MX "
                             "hosts")
            hosts = list(answer.records)
        kind = "A" if self.ip.version == 4 else "AAAA"
        for host in hosts:
            answer = await self.lookups.query(host, kind)
            self._temporary(answer.problem)
            if name == "a":
                self._void(answer.records, answer.nxdomain)
            for record in answer.records:
                network = ipaddress.ip_network(f"{record}/{length}", strict=False)
                if self.ip in network:
                    return True
        return False

    @staticmethod
    def _temporary(problem: str | None) -> None:
        if problem is not None:
            raise _Error(SPFResult.TEMPERROR, problem)

    def _expand(self, spec: str, domain: str) -> str:
        """RFC 7208 §7: macros in a domain-spec."""
        local, _, sender_domain = self.sender.rpartition("@")
        if self.ip.version == 4:
            dotted = str(self.ip)
        else:
            dotted = ".".join(self.ip.exploded.replace(":", ""))
        values = {
            "s": self.sender, "l": local or "postmaster", "o": sender_domain, "d": domain,
            "i": dotted, "p": "unknown", "v": "in-addr" if self.ip.version == 4 else "ip6",
            "h": self.helo or sender_domain,
        }

        def one(match: re.Match[str]) -> str:
            text = match.group(0)
            if text in ("%%", "%_", "%-"):
                return {"%%": "%", "%_": " ", "%-": "%20"}[text]
            letter, digits, reverse, delimiters = match.groups()
            if letter.lower() not in values:
                raise _Error(SPFResult.PERMERROR, f"unknown SPF macro {text!r}")
            parts = re.split(f"[{re.escape(delimiters or '.')}]", values[letter.lower()])
            if reverse:
                parts.reverse()
            if digits:
                if int(digits) == 0:
                    raise _Error(SPFResult.PERMERROR, f"SPF macro {text!r} keeps 0 labels")
                parts = parts[-int(digits):]
            return ".".join(parts)

        if "%" in _MACRO.sub("", spec):
            raise _Error(SPFResult.PERMERROR, f"bad macro in {spec!r}")
        return _MACRO.sub(one, spec).rstrip(".")


def _bare(name: str, rest: str) -> bool:
    if rest:
        raise _Error(SPFResult.PERMERROR, f"{name}{rest} is not an SPF term")
    return True


def _argument(name: str, rest: str) -> str:
    if not rest.startswith(":") or len(rest) < 2:
        raise _Error(SPFResult.PERMERROR, f"{name} needs an argument ({name}:…)")
    return rest[1:]
