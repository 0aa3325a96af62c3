"""Whose fault is a refusal: the recipient's, or the sender's? One classifier, one place.

A recipient fault (unknown user, mailbox full or disabled) is that recipient's bounce and
belongs in the suppression list. A sender fault (blocklisted address, missing reverse
DNS, SPF/DKIM/DMARC failures, authentication demanded, rate limits) says nothing about
the recipient: its recipients stay queued, the provider is paused, and the user is told
what the servers reported and what usually fixes it. This module only reads replies; it
decides nothing about scheduling.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from core.smtp import EnhancedStatus, Reply


class Fault(enum.Enum):
    RECIPIENT = "recipient"
    SENDER = "sender"
    UNKNOWN = ""


@dataclass(frozen=True, slots=True)
class SenderProblem:
    """What the receiving servers said about the sender, in words a user can act on."""

    kind: str
    explanation: str
    fix: str


#: Relay mode: every relay refused the login (a 5xx to AUTH).
RELAY_LOGIN = SenderProblem(
    "relay-login",
    "the relays refused the login: the user name or password is wrong, or the account is "
    "locked or may not send",
    "check the relay login and its password (the system keyring, or "
    "MXMAILER_RELAY_PASSWORD), then retry the expired recipients",
)
_BLOCKLIST = SenderProblem(
    "blocklist",
    "the receiving server says your sending address or domain is on a blocklist",
    "look your IP address up at the blocklist the reply names and follow its delisting "
    "steps; if your provider forbids direct sending from this address, use relay mode",
)
_REVERSE_DNS = SenderProblem(
    "reverse-dns",
    "the receiving server found no reverse DNS (PTR) for your IP address, or it does not "
    "match your HELO name",
    "ask whoever owns your IP address to set a PTR record to your HELO name, and set the "
    "HELO name in Settings to that same name",
)
_SPF = SenderProblem(
    "spf",
    "the receiving server says SPF does not authorise your IP address to send for your "
    "sender domain",
    "add this machine's IP address to the SPF record (TXT) of your sender domain",
)
_DKIM = SenderProblem(
    "dkim",
    "the receiving server wanted a valid DKIM signature",
    "configure DKIM signing with a key whose public half is published in your DNS",
)
_DMARC = SenderProblem(
    "dmarc",
    "the receiving server rejected the message under your domain's DMARC policy",
    "make SPF or DKIM pass and align with the From domain, or relax the DMARC policy",
)
_AUTHENTICATION = SenderProblem(
    "authentication",
    "the receiving server requires sender authentication (SPF, DKIM, DMARC) it did not find",
    "publish SPF and DKIM for your sender domain and sign your mail",
)
_RATE = SenderProblem(
    "rate-limit",
    "the receiving server is limiting how fast it accepts mail from you",
    "nothing to fix now: MX Mailer slows down for this provider and retries later",
)
_SENDER_ADDRESS = SenderProblem(
    "sender-address",
    "the receiving server refuses your sender address: its domain does not resolve, or "
    "the address is malformed",
    "use a sender address whose domain exists in DNS (with MX or A records)",
)
_REPUTATION = SenderProblem(
    "reputation",
    "the receiving server refused your mail as unsolicited or because of your reputation",
    "check your sending IP and domain reputation and your list hygiene before resuming",
)

# Enhanced codes that name a sender problem by themselves (RFC 3463, RFC 7372, and the
# codes Google and Microsoft document).
_BY_ENHANCED: dict[EnhancedStatus, SenderProblem] = {
    EnhancedStatus(4, 7, 23): _REVERSE_DNS,
    EnhancedStatus(5, 7, 25): _REVERSE_DNS,
    EnhancedStatus(4, 7, 25): _REVERSE_DNS,
    EnhancedStatus(5, 7, 26): _DMARC,
    EnhancedStatus(4, 7, 26): _DMARC,
    EnhancedStatus(5, 7, 27): _SPF,
    EnhancedStatus(4, 7, 27): _SPF,
    EnhancedStatus(5, 7, 20): _DKIM,
    EnhancedStatus(5, 7, 21): _DKIM,
    EnhancedStatus(5, 7, 22): _DKIM,
    EnhancedStatus(5, 7, 515): _AUTHENTICATION,
    EnhancedStatus(4, 7, 32): _AUTHENTICATION,
    EnhancedStatus(5, 7, 23): _SPF,  # Microsoft: "Sender Policy Framework violation"
    EnhancedStatus(4, 7, 28): _RATE,
    EnhancedStatus(4, 7, 650): _RATE,
}

# Words, tried in order, for replies without a telling enhanced code.
_BY_WORDS: tuple[tuple[re.Pattern[str], SenderProblem], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), problem)
    for pattern, problem in (
        (
            r"block ?list|black ?list|\bRBL\b|DNSBL|spamhaus|spamcop|barracuda|\blisted (?:at|on|in"
            r" (?!\w+ directory))|\bbanned\b",
            _BLOCKLIST,
        ),
        (
            r"reverse dns|\brdns\b|\bPTR\b|reverse (?:lookup|hostname)"
            r"|cannot find your (?:hostname|reverse)",
            _REVERSE_DNS,
        ),
        (r"\bDMARC\b", _DMARC),
        (r"\bSPF\b", _SPF),
        (r"\bDKIM\b", _DKIM),
        (r"not authenticated|unauthenticated|authentication (?:required|failed)", _AUTHENTICATION),
        (
            r"rate limit|too many (?:concurrent )?(?:smtp )?(?:messages|connections|recipients)"
            r"|maximum number of concurrent connections|temporarily deferred"
            r"|sending rate|try again later.*(?:volume|rate)",
            _RATE,
        ),
        (r"unsolicited|\bspam\b|reputation|poor reputation|bulk mail", _REPUTATION),
    )
)


def classify_fault(reply: Reply | None) -> tuple[Fault, SenderProblem | None]:
    """The fault a refusal points at, and the sender problem when it is the sender's."""
    if reply is None or reply.code < 400:
        return Fault.UNKNOWN, None
    enhanced = reply.enhanced
    if enhanced is not None:
        if enhanced in _BY_ENHANCED:
            return Fault.SENDER, _BY_ENHANCED[enhanced]
        if enhanced.subject == 7 and 606 <= enhanced.detail <= 649:
            return Fault.SENDER, _BLOCKLIST  # Microsoft: "banned sending IP" family
        if enhanced.subject == 1 and enhanced.detail in (7, 8):
            return Fault.SENDER, _SENDER_ADDRESS  # X.1.7/X.1.8: the *sender's* address
    text = reply.text
    unknown_user = reply.code >= 550 and _NO_SUCH_USER.search(text) is not None
    is_policy = enhanced is not None and enhanced.subject == 7
    if not unknown_user and (reply.code == 421 or is_policy or enhanced is None):
        for pattern, problem in _BY_WORDS:
            if pattern.search(text):
                return Fault.SENDER, problem
    if enhanced is not None and enhanced.subject in (1, 2):
        # X.1.x addressing (unknown user, bad mailbox), X.2.x mailbox (full, disabled).
        return Fault.RECIPIENT, None
    if enhanced is None and unknown_user:
        return Fault.RECIPIENT, None
    return Fault.UNKNOWN, None


_NO_SUCH_USER = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient)|does not exist"
    r"|mailbox unavailable|invalid recipient|recipient rejected|recipient address rejected"
    r"|mailbox not found|doesn't have an? .{0,40}account|not listed in \w+ directory",
    re.IGNORECASE,
)
