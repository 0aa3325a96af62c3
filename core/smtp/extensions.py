"""What a server offers, parsed from its EHLO reply (RFC 5321 §4.1.1.1, §2.2.2)."""

from __future__ import annotations

from dataclasses import dataclass

from core.smtp.reply import Reply


@dataclass(frozen=True, slots=True)
class Extensions:
    """The service extensions a server advertised.

    ``size_limit`` is ``None`` when SIZE was not advertised and ``0`` when it was
    advertised without a limit (RFC 1870 §4).
    """

    keywords: frozenset[str] = frozenset()
    size_limit: int | None = None
    auth_mechanisms: frozenset[str] = frozenset()
    esmtp: bool = True

    @property
    def pipelining(self) -> bool:  # RFC 2920
        return "PIPELINING" in self.keywords

    @property
    def eightbitmime(self) -> bool:  # RFC 6152
        return "8BITMIME" in self.keywords

    @property
    def smtputf8(self) -> bool:  # RFC 6531
        return "SMTPUTF8" in self.keywords

    @property
    def starttls(self) -> bool:  # RFC 3207
        return "STARTTLS" in self.keywords

    @property
    def enhanced_status_codes(self) -> bool:  # RFC 2034
        return "ENHANCEDSTATUSCODES" in self.keywords

    @property
    def chunking(self) -> bool:  # RFC 3030; recorded, BDAT not used
        return "CHUNKING" in self.keywords

    @property
    def size(self) -> bool:  # RFC 1870
        return self.size_limit is not None


#: What a server that only answered HELO offers: nothing.
NO_EXTENSIONS = Extensions(esmtp=False)


def parse_ehlo(reply: Reply) -> Extensions:
    """Read the keywords of a 250 EHLO reply; the first line is the server's name."""
    keywords: set[str] = set()
    size_limit: int | None = None
    auth: frozenset[str] = frozenset()
    for line in reply.lines[1:]:
        words = line.split()
        if not words:
            continue
        keyword = words[0].upper()
        keywords.add(keyword)
        if keyword == "SIZE":
            limit = words[1] if len(words) > 1 else ""
            size_limit = int(limit) if limit.isascii() and limit.isdigit() else 0
        elif keyword == "AUTH":
            auth = frozenset(word.upper() for word in words[1:])
    return Extensions(frozenset(keywords), size_limit, auth)
