"""Addresses in headers: an addr-spec made safe whatever a value holds, and the mailbox
templates of From, Reply-To, Cc and To.

Only a display name is ever RFC 2047-encoded (RFC 2047 §5(3)); an address's domain goes
out in its ASCII (A-label) form, so that only a non-ASCII local part leaves raw UTF-8 in
a header (RFC 6532), the one case where the message needs SMTPUTF8.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email import errors, headerregistry, policy

import idna

from core.message.errors import TemplateError
from core.message.fields import EMAIL, FIELD, Context, Segments, Slot, find, slot
from core.message.fields import segments as text_segments
from core.message.words import fold, hard_fold, phrase

# RFC 5322 §3.2.3 atext and RFC 6532's UTF-8, written as what they exclude (controls,
# space, specials): a class holding the range up to U+10FFFF takes 7 ms to compile.
_ATEXT = r'[^\x00-\x20"(),.:;<>@\[\\\]\x7f]+'
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
#: RFC 5322 §3.2.4 quoted-string (spaces, UTF-8 per RFC 6532, quoted pairs): an address
#: the importer normalised as ``"quoted local"@domain`` is already one, not to quote again.
_QUOTED_STRING = re.compile(r'"(?:[^"\\\x00-\x1f\x7f]|\\[\x20-\x7e\t])*"')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_DOMAIN = re.compile(r"[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*|\[[!-Z^-~]*\]")
_DOTS = re.compile(r"\.{2,}")
# The addresses nearly every recipient has: ASCII dot-atom @ an ASCII host name.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*"
    r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
)
# ASCII other than letters, digits, "-" and ".": not [^A-Za-z0-9\-.\u0080-\U0010ffff],
# which says the same but takes 7 ms to compile.
_NOT_IN_DOMAIN = re.compile(r"[\x00-,/:-@\[-`{-\x7f]")
#: RFC 1035 §2.3.4: a domain name is at most 255 octets.
_DOMAIN_MAX = 255
# An RFC 2047 encoded word: fields inside one are found once the stdlib has decoded it.
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def addr_spec(address: str) -> str:
    """``local@domain`` that parses as one address, whatever ``address`` holds.

    A local part that is neither a dot-atom nor already a quoted-string is quoted; a
    non-ASCII domain is given its A-label; characters no address can hold (controls, or
    spaces in a domain) are dropped.
    """
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    address = _CONTROL.sub("", address).strip()
    local, at, domain = address.rpartition("@")
    domain = _domain(domain) if at else ""
    if not domain:  # no address at all: the text, quoted, is all there is to show
        local, at = address, ""
    if not (_DOT_ATOM.fullmatch(local) or _QUOTED_STRING.fullmatch(local)):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{local}@{domain}" if at else local


@functools.lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    """A dot-atom domain (RFC 5322 §3.4.1): a DNS root dot ("example.com.") or an empty
    label would make the address unreadable."""
    if domain.isascii() and _ASCII_DOMAIN.fullmatch(domain):
        return domain
    domain = _DOTS.sub(".", _NOT_IN_DOMAIN.sub("", domain)).strip(".")
    if domain.isascii():
        return domain
    return a_label(domain) or domain  # raw UTF-8: the message will need SMTPUTF8


@functools.lru_cache(maxsize=4096)
def a_label(domain: str) -> str | None:
    """The ASCII form of a domain as the importer gives it for RCPT TO: IDNA 2008 with
    UTS #46 mapping, non-transitional (``straße.de`` is ``xn--strae-oqa.de``, not
    ``strasse.de``), as email-validator does. A name IDNA 2008 refuses gets Python's
    IDNA 2003 codec, less what no host name can hold; None when neither takes it."""
    if len(domain) > _DOMAIN_MAX:
        return None  # no such domain, and IDNA's work grows with the square of a label
    try:
        mapped = idna.uts46_remap(domain, std3_rules=False, transitional=False)
        return ".".join(idna.alabel(label).decode("ascii") for label in mapped.split("."))
    except (idna.IDNAError, UnicodeError):
        pass
    try:
        fallback = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    # IDNA 2003 maps some characters to ones no host name holds ("⑴" is "(1)").
    return _DOTS.sub(".", _NOT_IN_DOMAIN.sub("", fallback)).strip(".") or None


@dataclass(frozen=True, slots=True)
class Mailbox:
    """``display <address>``, both possibly holding fields."""

    display: Segments
    address: Segments

    def tokens(self, values: Mapping[str, str]) -> list[str]:
        words = phrase(self.display.fill(values)) if self.display else []
        return [*words, f"<{addr_spec(self.address.fill(values))}>"]


@dataclass(frozen=True, slots=True)
class Group:
    """``display: member, member;`` (RFC 5322 §3.4), e.g. ``undisclosed-recipients:;``."""

    display: Segments
    members: tuple[Mailbox, ...]

    def tokens(self, values: Mapping[str, str]) -> list[str]:
        words = phrase(self.display.fill(values)) or ['""']
        words[-1] += ":"
        words += _listed(self.members, values)
        words[-1] += ";"
        return words


def _listed(items: tuple[Mailbox | Group, ...], values: Mapping[str, str]) -> list[str]:
    tokens: list[str] = []
    for index, item in enumerate(items):
        if index:
            tokens[-1] += ","
        tokens += item.tokens(values)
    return tokens


@dataclass(frozen=True, slots=True)
class AddressHeader:
    """A whole address header, rendered per recipient."""

    name: str
    items: tuple[Mailbox | Group, ...]

    def __call__(self, values: Mapping[str, str]) -> bytes:
        return fold(self.name, _listed(self.items, values))


@dataclass(frozen=True, slots=True)
class RecipientHeader:
    """``To``: the template's display name, if any, and always the recipient's address.
    Rendered for every message, so the common case (no display name) is one format."""

    name: str
    display: Segments

    def __call__(self, values: Mapping[str, str]) -> bytes:
        address = addr_spec(values[EMAIL])
        if self.display.parts:
            return fold(self.name, [*phrase(self.display.fill(values)), f"<{address}>"])
        return hard_fold(f"{self.name}: <{address}>\r\n".encode())


def recipient_header(name: str, display: Segments) -> RecipientHeader:
    return RecipientHeader(name, display)


def parse_addresses(name: str, value: str) -> tuple[Mailbox | Group, ...]:
    """An address header's value compiled to mailbox templates.

    The stdlib parser reads the syntax (quoting, comments, encoded words); each field is
    first replaced by an atom that cannot occur in the value, so that a default holding
    a comma or a quote cannot change the header's structure.
    """
    tag = next(f"z{n}q" for n in itertools.count() if f"z{n}q" not in value)
    matches: list[re.Match[str]] = []
    encoded = [word.span() for word in _ENCODED_WORD.finditer(value)] if "=?" in value else []
    where = f"the {name} header"
    find(_ENCODED_WORD.sub(" ", value) if encoded else value, where)  # a "{{" that is no field

    def mark(match: re.Match[str]) -> str:
        if any(start <= match.start() < end for start, end in encoded):
            return match.group(0)
        matches.append(match)
        return f"mxf{len(matches) - 1}{tag}"

    marked = FIELD.sub(mark, value)
    try:
        header = policy.default.header_factory("to", marked)
    except (errors.HeaderParseError, IndexError, ValueError) as error:
        raise TemplateError(f"the {name} header cannot be read as addresses: {error}") from error
    if not isinstance(header, headerregistry.AddressHeader):  # pragma: no cover - stdlib
        raise TemplateError(f"the {name} header cannot be read as addresses")
    placeholder = re.compile(rf"mxf(\d+){tag}")

    def compiled(text: str) -> Segments:
        parts: list[str | Slot] = []
        position = 0
        for found in placeholder.finditer(text):
            parts += text_segments(text[position : found.start()], Context.TEXT, where)
            parts.append(slot(matches[int(found.group(1))], Context.TEXT))
            position = found.end()
        parts += text_segments(text[position:], Context.TEXT, where)
        return Segments(parts)

    def mailbox(address: headerregistry.Address) -> Mailbox:
        spec = address.username + ("@" + address.domain if address.domain else "")
        return Mailbox(compiled(address.display_name), compiled(spec))

    items: list[Mailbox | Group] = []
    for group in header.groups:
        members = tuple(mailbox(address) for address in group.addresses)
        if group.display_name is None:
            items += members
        else:
            items.append(Group(compiled(group.display_name), members))
    return tuple(items)
