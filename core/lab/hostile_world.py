"""A hostile lab world for soaks: recipients over many domains that misbehave on purpose.

Owns the *script* of such a world (:class:`HostileScript`: which domain does what, which
recipients are unknown users or get hung up on, and so what should become of each
recipient) and the :class:`~core.lab.world.LabWorld` that plays it
(:func:`hostile_world`). Both follow from ``(recipients, domains, seed, pace)`` alone, so
two processes that build them from the same numbers get the same world, and a soak's
every expectation is read from the script rather than written into a test.

The shares follow the soak of issue 6: a tenth of the domains greylist (half with a retry
hint, half without), a twentieth each have a tarpit as their preferred MX with a healthy
one behind it, answer 421 at the greeting for their first connections, or reject unknown
users with 550; a fiftieth each publish a null MX or answer SERVFAIL for their first MX
queries; one domain's MX drips every reply a byte at a time; and some recipients of the
plain domains are hung up on mid-DATA, before the body (to be retried) or after it
(which no sender can tell from a delivery). It never chooses timeouts for the sender,
and never names anything outside ``.test`` or loopback.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from core.lab.behaviour import (
    Act,
    Behaviour,
    Fault,
    Greylist,
    HangUp,
    Hostile,
    Stage,
    unknown_users,
)
from core.lab.world import LabWorld


class Kind(enum.Enum):
    """What a domain of a hostile world does."""

    PLAIN = "plain"
    GREYLIST_HINT = "greylists, with a retry hint"
    GREYLIST_SILENT = "greylists, without a hint"
    TARPIT = "tarpit MX first, healthy MX behind it"
    GREETING_421 = "421 at the greeting, then recovers"
    UNKNOWN_USERS = "some users unknown (550)"
    NULL_MX = "null MX"
    SERVFAIL = "SERVFAIL for MX, then heals"
    DRIP = "drips every reply byte by byte"


#: Shares of the domains (rounded half up, at least one each); one more domain drips and
#: the rest are plain.
SHARES: tuple[tuple[Kind, float], ...] = (
    (Kind.GREYLIST_HINT, 0.05),
    (Kind.GREYLIST_SILENT, 0.05),
    (Kind.TARPIT, 0.05),
    (Kind.GREETING_421, 0.05),
    (Kind.UNKNOWN_USERS, 0.05),
    (Kind.NULL_MX, 0.02),
    (Kind.SERVFAIL, 0.02),
)
#: Fewest domains a hostile world has: one of each kind and some plain ones.
MIN_DOMAINS = 20


class Expect(enum.Enum):
    """What should become of a recipient, by the script."""

    DELIVERED = "delivered"
    UNKNOWN_USER = "bounced: unknown user (550)"
    NULL_MX = "bounced: null MX"
    #: Hung up on after its whole body arrived: possibly delivered, and never resent.
    AMBIGUOUS = "ambiguous: hung up on after the end of data"


@dataclass(frozen=True, slots=True)
class Pace:
    """The lab's side of a soak's clock: small numbers, so a retry costs seconds."""

    #: Seconds a greylisting reply with a hint asks the sender to wait.
    greylist_hint: int = 1
    #: A greylisted pair that returns sooner than this is greylisted again.
    greylist_min_delay: float = 1.0
    #: Connections a 421 domain refuses at the greeting before it recovers.
    greeting_421_times: int = 3
    #: MX queries a SERVFAIL domain fails before it heals.
    servfail_times: int = 2
    #: Seconds between the bytes of the dripping MX's replies.
    drip_interval: float = 0.002
    #: Seconds a lab server waits on a silent client (and its tarpits stay silent).
    idle_timeout: float = 10.0
    #: Share of an unknown-users domain's recipients that are unknown.
    unknown_share: float = 0.5
    #: Shares of the plain domains' recipients hung up on before and after their body.
    hang_up_before_body: float = 0.01
    hang_up_after_body: float = 0.002


@dataclass(frozen=True, slots=True)
class HostileScript:
    """Who is who in a hostile world, and what should become of each recipient."""

    seed: int
    pace: Pace
    #: Domain -> its kind, in domain order (``d0.test``, ``d1.test``, …).
    kinds: Mapping[str, Kind]
    #: ``u{i}@d{i % domains}.test``, in that order.
    recipients: tuple[str, ...]
    unknown: frozenset[str]
    hung_up_before_body: frozenset[str]
    hung_up_after_body: frozenset[str]
    _by_domain: dict[str, list[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_domain: dict[str, list[str]] = {}
        for address in self.recipients:
            by_domain.setdefault(address.rpartition("@")[2], []).append(address)
        object.__setattr__(self, "_by_domain", by_domain)

    def domains(self, kind: Kind) -> list[str]:
        return [domain for domain, k in self.kinds.items() if k is kind]

    def recipients_of(self, domain: str) -> list[str]:
        return self._by_domain.get(domain, [])

    def expect(self, address: str) -> Expect:
        kind = self.kinds[address.rpartition("@")[2]]
        if kind is Kind.NULL_MX:
            return Expect.NULL_MX
        if address in self.unknown:
            return Expect.UNKNOWN_USER
        if address in self.hung_up_after_body:
            return Expect.AMBIGUOUS
        return Expect.DELIVERED

    def expected(self) -> dict[str, Expect]:
        """Every recipient's expected end."""
        return {address: self.expect(address) for address in self.recipients}

    def counts(self) -> Counter[Expect]:
        return Counter(self.expected().values())


def hostile_script(
    recipients: int, domains: int, seed: int, pace: Pace | None = None
) -> HostileScript:
    """The script of a world of ``recipients`` over ``domains``, drawn from ``seed``."""
    if domains < MIN_DOMAINS:
        raise ValueError(f"a hostile world has at least {MIN_DOMAINS} domains, not {domains}")
    if recipients < domains:
        raise ValueError("a hostile world has at least one recipient per domain")
    pace = pace or Pace()
    rng = random.Random(seed)
    names = [f"d{n}.test" for n in range(domains)]
    kinds = _deal_kinds(names, rng)
    addresses = tuple(f"u{i}@d{i % domains}.test" for i in range(recipients))
    by_domain: dict[str, list[str]] = {}
    for address in addresses:
        by_domain.setdefault(address.rpartition("@")[2], []).append(address)
    unknown: set[str] = set()
    for domain in names:
        if kinds[domain] is Kind.UNKNOWN_USERS:
            users = by_domain[domain]
            unknown.update(rng.sample(users, max(1, round(len(users) * pace.unknown_share))))
    plain = [a for d in names if kinds[d] is Kind.PLAIN for a in by_domain[d]]
    before = _share(len(plain), pace.hang_up_before_body)
    after = _share(len(plain), pace.hang_up_after_body)
    chosen = rng.sample(plain, before + after)
    return HostileScript(
        seed,
        pace,
        kinds,
        addresses,
        frozenset(unknown),
        frozenset(chosen[:before]),
        frozenset(chosen[before:]),
    )


def _share(total: int, fraction: float) -> int:
    """``fraction`` of ``total`` rounded half up, and at least one if the share is not 0."""
    if fraction <= 0 or total == 0:
        return 0
    return min(total, max(1, int(total * fraction + 0.5)))


def _deal_kinds(names: list[str], rng: random.Random) -> dict[str, Kind]:
    deck: list[Kind] = [kind for kind, share in SHARES for _ in range(_share(len(names), share))]
    deck.append(Kind.DRIP)
    deck += [Kind.PLAIN] * (len(names) - len(deck))
    rng.shuffle(deck)
    return dict(zip(names, deck, strict=True))


def hostile_world(script: HostileScript) -> LabWorld:
    """The lab world that plays ``script``: one MX host per domain (two for a tarpit
    domain, none for a null MX), and the DNS for them all."""
    world = LabWorld()
    pace = script.pace
    for domain, kind in script.kinds.items():
        if kind is Kind.NULL_MX:
            world.zone.null_mx(domain)
            continue
        mx = f"mx.{domain}"
        if kind is Kind.TARPIT:
            tarpit = f"mx-tarpit.{domain}"
            silent = (Hostile(Stage.GREETING, Act.SILENCE),)
            world.host(tarpit, replace(_healthy(tarpit, pace), hostile=silent))
            world.host(mx, _healthy(mx, pace))
            world.domain(domain, tarpit, mx)
            continue
        world.host(mx, _server(script, domain, kind, _healthy(mx, pace)))
        world.domain(domain, mx)
        if kind is Kind.SERVFAIL:
            world.zone.servfail(domain, times=pace.servfail_times, rdtype="MX")
    return world


#: The stages whose replies the dripping MX drips: all of a delivery's.
_DRIPPED = (Stage.GREETING, Stage.EHLO, Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.END_OF_DATA)


def _healthy(hostname: str, pace: Pace) -> Behaviour:
    return Behaviour(hostname=hostname, idle_timeout=pace.idle_timeout)


def _server(script: HostileScript, domain: str, kind: Kind, healthy: Behaviour) -> Behaviour:
    """What a one-MX domain's server does beyond accepting mail."""
    pace = script.pace
    if kind is Kind.GREYLIST_HINT or kind is Kind.GREYLIST_SILENT:
        hint = kind is Kind.GREYLIST_HINT
        greylist = Greylist(pace.greylist_hint, hint=hint, min_delay=pace.greylist_min_delay)
        return replace(healthy, greylist=greylist)
    if kind is Kind.GREETING_421:
        busy = Fault(
            Stage.GREETING, 421, "4.3.2 Too busy, try again later", times=pace.greeting_421_times
        )
        return replace(healthy, faults=(busy,))
    if kind is Kind.UNKNOWN_USERS:
        users = [a for a in script.recipients_of(domain) if a in script.unknown]
        return replace(healthy, faults=(unknown_users(*users),))
    if kind is Kind.DRIP:
        dripped = tuple(Hostile(stage, Act.DRIP) for stage in _DRIPPED)
        return replace(healthy, hostile=dripped, drip_interval=pace.drip_interval)
    if kind is Kind.PLAIN:
        users = script.recipients_of(domain)
        rules = [
            HangUp(stage, frozenset(a for a in users if a in chosen))
            for stage, chosen in (
                (Stage.DATA, script.hung_up_before_body),
                (Stage.END_OF_DATA, script.hung_up_after_body),
            )
            if any(a in chosen for a in users)
        ]
        return replace(healthy, hang_ups=tuple(rules))
    return healthy  # SERVFAIL: its server is healthy, its DNS is not
