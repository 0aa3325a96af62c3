"""DNS questions the preflight checks ask that delivery never does: TXT (SPF, DKIM,
DMARC), PTR (reverse DNS), DNSBL A records, and plain A/AAAA.

Built on the same dnspython asyncio resolver as ``core.dns`` (its configuration: the
system's nameservers or the given ones, EDNS, no dnspython cache), so a preflight asks
exactly the nameservers a send would. Every outcome is a value (:class:`Answer`): the
checks decide what a timeout means (usually *unknown*), never an exception. One run asks
each name and type once, however many checks want it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename

from core.dns import DEFAULT_ATTEMPTS, make_resolver


@dataclass(frozen=True, slots=True)
class Answer:
    """The records found (as text: TXT strings joined, names without the final dot), or
    why none: ``nxdomain`` (the name does not exist), NODATA (no records, no problem), or
    ``problem`` (no usable answer: timeout, SERVFAIL, REFUSED; asking later may help)."""

    records: tuple[str, ...] = ()
    nxdomain: bool = False
    problem: str | None = None

    @property
    def failed(self) -> bool:
        return self.problem is not None


class Lookups:
    """Cached, coalesced lookups for one preflight run."""

    def __init__(self, nameservers: Sequence[tuple[str, int]] | None, timeout: float) -> None:
        self._resolver = make_resolver(nameservers, timeout, DEFAULT_ATTEMPTS)
        self._timeout = timeout
        self._asked: dict[tuple[str, str], asyncio.Task[Answer]] = {}

    async def query(self, name: str, rdtype: str) -> Answer:
        key = (name.lower().rstrip("."), rdtype.upper())
        task = self._asked.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._query(*key))
            self._asked[key] = task
        return await asyncio.shield(task)

    async def txt(self, name: str) -> Answer:
        return await self.query(name, "TXT")

    async def ptr(self, address: str) -> Answer:
        return await self.query(dns.reversename.from_address(address).to_text(), "PTR")

    async def addresses(self, host: str) -> Answer:
        """A and AAAA together; a problem only if neither answered."""
        four, six = await asyncio.gather(self.query(host, "A"), self.query(host, "AAAA"))
        records = four.records + six.records
        if four.failed and six.failed:
            return Answer(problem=four.problem)
        return Answer(records, nxdomain=four.nxdomain and six.nxdomain)

    async def _query(self, name: str, rdtype: str) -> Answer:
        kind = dns.rdatatype.from_text(rdtype)
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._resolver.resolve(
                    dns.name.from_text(name), kind, raise_on_no_answer=False, search=False
                )
        except dns.resolver.NXDOMAIN:
            return Answer(nxdomain=True)
        except (dns.exception.Timeout, TimeoutError):
            return Answer(problem=f"no answer for {name} {rdtype} in {self._timeout:g} s")
        except dns.resolver.NoNameservers:
            return Answer(problem=f"the DNS servers could not answer {name} {rdtype}")
        except dns.exception.DNSException as error:
            return Answer(problem=f"DNS error for {name} {rdtype}: {error}")
        if answer.rrset is None:
            return Answer()
        return Answer(tuple(_text(rdata) for rdata in answer.rrset))


def _text(rdata: object) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is not None:  # TXT: one value, however it was split (RFC 7208 §3.3)
        return b"".join(strings).decode("utf-8", "replace")
    target = getattr(rdata, "target", None)
    if target is not None:  # PTR, CNAME
        return str(target.to_text(omit_final_dot=True)).lower()
    exchange = getattr(rdata, "exchange", None)
    if exchange is not None:  # MX
        return str(exchange.to_text(omit_final_dot=True)).lower()
    return str(rdata)
