"""What a lab server does, as frozen values: the script a :class:`~core.lab.LabServer` follows.

Owns the vocabulary of the lab: the stages of a conversation a server can act at
(:class:`Stage`), its STARTTLS stance (:class:`TLSMode`), scripted replies
(:class:`Fault`), scripted misbehaviour (:class:`Hostile`, :class:`Act`), hanging up
mid-DATA on chosen recipients (:class:`HangUp`), greylisting (:class:`Greylist`) and
every limit that keeps a lab server bounded (:class:`Behaviour`).

Nothing here does I/O, keeps state or knows about sockets; a behaviour is a value that
tests build, compare and share between servers. It never names any address: where a
server listens is decided by ``core.lab.loopback`` alone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass

# ---- limits (one source for each; the RFC reasoning next to it) ------------------------

#: RFC 5321 §4.5.3.1.4 allows 512 octets per command line; a lab server accepts 8x that
#: (the SMTP client allows 4 KiB per reply line too) and answers a longer one with 500.
MAX_COMMAND_LINE = 4096
#: Default SIZE (RFC 1870) limit advertised and enforced: 10 MiB, Postfix's default.
DEFAULT_SIZE_LIMIT = 10 * 1024 * 1024
#: RFC 5321 §4.5.3.1.8 asks servers to take at least 100 recipients; Postfix takes 1000.
MAX_RECIPIENTS = 1000
#: Bytes of an oversized body read and thrown away before the server gives up and closes.
MAX_DISCARD = 64 * 1024 * 1024
#: Command lines kept per connection in its record (the count goes on past this).
MAX_LOGGED_COMMANDS = 10_000
#: Default size of :attr:`Act.LONG_LINE`: one mebibyte without a newline.
DEFAULT_LONG_LINE = 1024 * 1024
#: Default bounds of :attr:`Act.ENDLESS`: it stops at whichever comes first.
DEFAULT_ENDLESS_BYTES = 100 * 1024 * 1024
DEFAULT_ENDLESS_SECONDS = 30.0


class Stage(enum.Enum):
    """A point of the conversation where a server answers (or is expected to).

    Each command stage is the reply to that command; ``GREETING`` is the banner,
    ``BODY`` is "while the message body is arriving" (after its first bytes, before its
    end), ``END_OF_DATA`` the reply to the final dot (or to ``BDAT … LAST``) and ``BDAT``
    the reply to any other BDAT chunk.
    """

    GREETING = "greeting"
    EHLO = "ehlo"
    HELO = "helo"
    STARTTLS = "starttls"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    BODY = "body"
    END_OF_DATA = "end-of-data"
    BDAT = "bdat"
    RSET = "rset"
    NOOP = "noop"
    QUIT = "quit"


class TLSMode(enum.Enum):
    """How a server treats STARTTLS (RFC 3207)."""

    NONE = "none"  # not advertised; the command gets 502
    OFFER = "offer"  # advertised and works
    REQUIRE = "require"  # advertised, works, and MAIL before it gets 530
    REFUSE = "refuse"  # advertised, but the command gets 454
    BROKEN = "broken"  # advertised, 220 to the command, then garbage instead of a handshake


class Act(enum.Enum):
    """How a hostile server delivers (or withholds) its reply at a stage.

    The server still decides the reply and its state as usual; the act only changes
    what goes on the wire. Every act is bounded in bytes and time.
    """

    SILENCE = "silence"  # say nothing; read and discard until the client leaves or idle timeout
    CLOSE = "close"  # close the connection without a reply
    GARBAGE = "garbage"  # binary garbage instead of the reply, then silence
    LONG_LINE = "long-line"  # ``long_line_size`` bytes without a newline, then silence
    ENDLESS = "endless"  # endless ``NNN-`` continuation lines until the client leaves or a bound
    DRIP = "drip"  # the reply, one byte per ``drip_interval``
    TALK_AHEAD = "talk-ahead"  # the reply plus an unsolicited "250" in the same write


#: Acts after which a message whose end of data they replace counts as never answered.
UNANSWERING_ACTS = frozenset({Act.SILENCE, Act.CLOSE, Act.GARBAGE, Act.LONG_LINE, Act.ENDLESS})

#: Which addresses a rule applies to: any collection (compared without case) or a predicate.
AddressFilter = Collection[str] | Callable[[str], bool]


def _normalise_filter(only: AddressFilter | None) -> AddressFilter | None:
    if only is None or callable(only):
        return only
    if isinstance(only, str):
        return frozenset({only.lower()})
    return frozenset(address.lower() for address in only)


def _filter_matches(only: AddressFilter | None, address: str) -> bool:
    if only is None:
        return True
    if callable(only):
        return only(address)
    return address.lower() in only


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted reply at one stage, instead of the server's normal one.

    ``text`` follows the code verbatim (put the enhanced status code in it yourself);
    ``{address}`` in it becomes the sender (MAIL) or recipient (RCPT) and a ``\\n`` makes
    a multiline reply. A 421 always closes the connection; ``close`` closes after any
    reply. ``only`` limits a MAIL or RCPT fault to some addresses; ``times`` fires it only
    for its first N matches over the server's life (then the server behaves normally).
    """

    stage: Stage
    code: int
    text: str
    close: bool = False
    only: AddressFilter | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"a reply code is 200..599, not {self.code}")
        if "\r" in self.text:
            raise ValueError("separate reply lines with \\n, not CR")
        if self.only is not None and self.stage not in (Stage.MAIL, Stage.RCPT):
            raise ValueError("only MAIL and RCPT faults can be limited to addresses")
        object.__setattr__(self, "only", _normalise_filter(self.only))

    @property
    def closes(self) -> bool:
        return self.close or self.code == 421

    def matches(self, address: str) -> bool:
        return _filter_matches(self.only, address)

    def lines(self, address: str = "") -> list[str]:
        return self.text.replace("{address}", address).split("\n")


@dataclass(frozen=True, slots=True)
class Hostile:
    """A misbehaviour at one stage: the reply there is delivered as ``act`` says.

    ``times`` limits it to its first N occurrences over the server's life, so a test can
    have the first connection misbehave and the retry succeed.
    """

    stage: Stage
    act: Act
    times: int | None = None


@dataclass(frozen=True, slots=True)
class HangUp:
    """The server hangs up mid-DATA, once for each of ``recipients``: the first transaction
    naming one of them (at this server) loses its connection at ``stage``.

    The two stages are the two sides of the end-of-data marker, which is what a sender
    must reason about. At ``Stage.DATA`` the hang-up replaces the 354: no body went out,
    so the sender knows nothing was taken and may try again. At ``Stage.END_OF_DATA`` it
    replaces the reply to a body received whole: the message is recorded as unanswered,
    and the sender cannot know whether it was taken, so it must not send it again blindly.
    Keyed by recipient (not by a count of connections) so that a test knows in advance
    exactly whom it hits, however the sender batches and orders its transactions.
    """

    stage: Stage
    recipients: frozenset[str]

    def __post_init__(self) -> None:
        if self.stage not in (Stage.DATA, Stage.END_OF_DATA):
            raise ValueError(f"a hang-up is at DATA or END_OF_DATA, not {self.stage.name}")
        object.__setattr__(
            self, "recipients", frozenset(address.lower() for address in self.recipients)
        )


@dataclass(frozen=True, slots=True)
class Greylist:
    """Greylisting at RCPT, keyed by (sender, recipient), remembered per server.

    The first attempt of a pair gets ``451 4.7.1 Greylisted, try again in N seconds``
    (with ``hint``) or ``450 4.2.0 Greylisted`` (without). A later attempt passes once
    ``min_delay`` seconds of the server's clock have passed since the first (0: any later
    attempt passes); earlier ones get the same reply again. A pair that passed stays passed.
    """

    retry_after: int = 300
    hint: bool = True
    min_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Everything a :class:`~core.lab.LabServer` does, fixed for its lifetime.

    The defaults are a well-behaved ESMTP server without STARTTLS.
    """

    hostname: str = "mx.lab.test"
    banner: str = "ESMTP MX Mailer lab"
    #: EHLO is answered 502; HELO works; no extensions at all.
    helo_only: bool = False
    pipelining: bool = True
    size_limit: int = DEFAULT_SIZE_LIMIT
    eightbitmime: bool = True
    smtputf8: bool = True
    enhanced_status_codes: bool = True
    #: Advertise CHUNKING (RFC 3030); BDAT is then accepted.
    chunking: bool = False
    tls: TLSMode = TLSMode.NONE
    faults: tuple[Fault, ...] = ()
    greylist: Greylist | None = None
    hostile: tuple[Hostile, ...] = ()
    hang_ups: tuple[HangUp, ...] = ()
    #: Seconds between bytes under :attr:`Act.DRIP`.
    drip_interval: float = 1.0
    long_line_size: int = DEFAULT_LONG_LINE
    endless_max_bytes: int = DEFAULT_ENDLESS_BYTES
    endless_max_seconds: float = DEFAULT_ENDLESS_SECONDS
    #: A client silent this long gets ``421 4.4.2`` and is closed; it also bounds every
    #: wait of a hostile act and the TLS handshake.
    idle_timeout: float = 30.0
    max_command_line: int = MAX_COMMAND_LINE
    max_recipients: int = MAX_RECIPIENTS
    #: Commands per connection before ``421 4.7.0`` and close.
    max_commands: int = 1_000_000
    #: Bad commands per connection (unknown, out of sequence, too long) before 421.
    max_errors: int = 20

    def __post_init__(self) -> None:
        if self.size_limit <= 0:
            raise ValueError("size_limit must be positive")
        if self.drip_interval < 0 or self.idle_timeout <= 0:
            raise ValueError("intervals must be positive")
        if self.helo_only and self.tls is not TLSMode.NONE:
            raise ValueError("a HELO-only server cannot advertise STARTTLS")
        # Accept lists too, and keep the value hashable.
        object.__setattr__(self, "faults", tuple(self.faults))
        object.__setattr__(self, "hostile", tuple(self.hostile))
        object.__setattr__(self, "hang_ups", tuple(self.hang_ups))

    def faults_at(self, stage: Stage) -> tuple[tuple[int, Fault], ...]:
        return tuple((i, f) for i, f in enumerate(self.faults) if f.stage is stage)

    def hostile_at(self, stage: Stage) -> tuple[tuple[int, Hostile], ...]:
        return tuple((i, h) for i, h in enumerate(self.hostile) if h.stage is stage)


# ---- ready-made faults -----------------------------------------------------------------


def unknown_users(*addresses: str) -> Fault:
    """RCPT of these addresses is rejected the way Postfix rejects an unknown user."""
    return Fault(
        Stage.RCPT,
        550,
        "5.1.1 <{address}>: Recipient address rejected: User unknown",
        only=frozenset(addresses),
    )


def service_closing(stage: Stage) -> Fault:
    """``421 4.3.2`` at ``stage``, then the server closes the connection."""
    return Fault(stage, 421, "4.3.2 Service shutting down, closing transmission channel")
