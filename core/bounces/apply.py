"""What a bounce or an unsubscribe mail changes in a campaign: the matching and the rules.

Owns matching mails to the campaign's recipients and the changes they make, through the
store's public API only (``states``, ``get``, ``record``, ``flush``). A mail is read into
:class:`Finding`s, and what it changes is flushed before :meth:`CampaignMatcher.read`
returns: a later mail about the same recipient starts from the saved row.

Matching a bounce, strongest evidence first:

1. the returned message's **Message-ID**: the engine gives each recipient its own, at
   the first attempt. A bounce naming a Message-ID this campaign never sent is someone
   else's mail: it is left alone, never matched by address.
2. a **VERP** envelope: a bounce delivered to ``news+ann=example.test@sender.test`` for
   the campaign's sender ``news@sender.test`` is about ``ann@example.test``. (The
   engine sends with one envelope sender today; this is read for when it does not.)
3. the DSN's **Original-Recipient / Final-Recipient** address, when the bounce returned
   no Message-ID.

What changes: a ``failed`` report turns a recipient that was delivered (or possibly
delivered: AMBIGUOUS) into BOUNCED, with the report's status and diagnostic, and the
fault ``core.faults.classify_fault`` finds in them, so ``export-bounces`` (recipient
faults only) lists it. ``delayed`` reports change nobody. An unsubscribe request (see
``core.bounces.unsubscribe``) marks its recipient's ``reason`` with
:data:`UNSUBSCRIBED`; a recipient not delivered also becomes SUPPRESSED, so nothing
sends to it again. Only the matched recipient's row ever changes, and reading the same
mail twice changes nothing more.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message

from core.bounces.dsn import Action, Bounce, RecipientStatus, envelope_addresses, read_bounce
from core.bounces.unsubscribe import UnsubscribeRule
from core.faults import classify_fault
from core.message.fields import EMAIL
from core.recipients import ascii_domain
from core.store import CampaignStore, RecipientState, RecipientUpdate, Status, iso_utc

#: Written in the reason of a recipient who asked to unsubscribe; found again by it.
UNSUBSCRIBED = "unsubscribed by mail"

#: Statuses a later failure report turns into BOUNCED: the server accepted the message.
ACCEPTED = frozenset({Status.DELIVERED, Status.AMBIGUOUS})


class Kind(enum.Enum):
    BOUNCED = "bounced later"
    DELAYED = "delayed, ignored"
    UNSUBSCRIBED = "unsubscribe"
    UNCHANGED = "matched, nothing to change"
    UNMATCHED = "unmatched"


@dataclass(frozen=True, slots=True)
class Finding:
    """What one mail (or one recipient of a bounce) was found to be, and for whom."""

    kind: Kind
    email: str  # the campaign's recipient, or the address the mail named ("" if none)
    detail: str


def address_key(address: str) -> str:
    """One mailbox however a server wrote it: local part lower-cased, A-label domain."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    try:
        domain = ascii_domain(domain)
    except ValueError:
        domain = domain.lower()
    return f"{local.lower()}@{domain}"


def _values(state: RecipientState) -> dict[str, str]:
    return {**state.fields, EMAIL: state.email}


class CampaignMatcher:
    """Reads mails against one open, writable campaign and records what they change."""

    def __init__(self, store: CampaignStore, rule: UnsubscribeRule | None) -> None:
        self.store = store
        self.rule = rule
        self._by_message_id: dict[str, int] = {}
        self._by_address: dict[str, int] = {}
        self._by_token: dict[tuple[str, ...], int | None] = {}  # None: two rows share it
        with_token = rule is not None and bool(rule.names)
        for state in store.states():
            if state.message_id:
                # Ours are lower-case hex at a lower-case domain: a server that changed
                # the case (some rewrite headers) still names the same message.
                self._by_message_id[state.message_id.lower()] = state.id
            self._by_address.setdefault(f"{state.email.rpartition('@')[0].lower()}@{state.domain}",
                                        state.id)
            if with_token and rule is not None:
                token = rule.key(_values(state))
                self._by_token[token] = None if token in self._by_token else state.id
        sender_local, _, sender_domain = store.sender.rpartition("@")
        self._verp_prefix = f"{sender_local.lower()}+"
        self._verp_domain = address_key(f"x@{sender_domain}").partition("@")[2]

    # ---- one mail --------------------------------------------------------------------

    def read(self, raw: bytes, *, at: float) -> list[Finding]:
        """Read one mail, save what it changes, and say what it was."""
        mail = message_from_bytes(raw, policy=policy.compat32)
        bounce = read_bounce(mail)
        if bounce is not None:
            return list(self._bounce(mail, bounce, at))
        if self.rule is not None:
            request = self.rule.read(mail)
            if request is not None:
                return [self._unsubscribe(request.token, request.sender, at)]
        return [Finding(Kind.UNMATCHED, "", "neither a bounce nor an unsubscribe request")]

    def _bounce(self, mail: Message, bounce: Bounce, at: float) -> Iterator[Finding]:
        if bounce.message_id:
            row = self._by_message_id.get(bounce.message_id.lower())
            if row is None:
                yield Finding(Kind.UNMATCHED, ", ".join(_named(bounce)),
                              f"a bounce of {bounce.message_id}, not a message of this campaign")
                return
            yield self._apply(row, _block_for(self.store.get(row), bounce), bounce, at)
            return
        verp = self._verp(envelope_addresses(mail))
        if verp is not None:
            yield self._apply(verp, _block_for(self.store.get(verp), bounce), bounce, at)
            return
        for block in bounce.recipients:
            row = next(
                (self._by_address[key] for key in map(address_key, block.addresses)
                 if key in self._by_address),
                None,
            )
            if row is None:
                yield Finding(Kind.UNMATCHED, block.final_recipient or block.original_recipient,
                              "a bounce for an address that is not in this campaign")
            else:
                yield self._apply(row, block, bounce, at)

    def _verp(self, addresses: list[str]) -> int | None:
        """The recipient a VERP return address names (``news+ann=example.test@...``)."""
        for address in addresses:
            key = address_key(address)
            local, _, domain = key.rpartition("@")
            if domain != self._verp_domain or not local.startswith(self._verp_prefix):
                continue
            tag = local[len(self._verp_prefix) :]
            user, equals, host = tag.rpartition("=")
            if equals and user and host:
                row = self._by_address.get(address_key(f"{user}@{host}"))
                if row is not None:
                    return row
        return None

    def _apply(
        self, row: int, block: RecipientStatus | None, bounce: Bounce, at: float
    ) -> Finding:
        state = self.store.get(row)
        if block is None:
            return Finding(Kind.UNCHANGED, state.email,
                           "the bounce lists several addresses and none is this recipient's")
        if block.action is Action.DELAYED:
            return Finding(Kind.DELAYED, state.email, f"delayed: {block.status} {block.diagnostic}")
        if block.action is not Action.FAILED:
            return Finding(Kind.UNCHANGED, state.email, f"a report of '{block.action.value}'")
        if state.status not in ACCEPTED:
            return Finding(Kind.UNCHANGED, state.email,
                           f"a failure report for a recipient that is {state.status.value}")
        reply = block.reply()
        fault, problem = classify_fault(reply)
        source = bounce.reporting_mta or "the receiving system"
        reason = f"bounced after it was accepted: a delivery report from {source} ({iso_utc(at)})"
        if UNSUBSCRIBED in state.reason:
            reason = f"{state.reason}; {reason}"
        self._save(
            state.to_update(
                status=Status.BOUNCED,
                code=reply.code,
                enhanced=str(reply.enhanced) if reply.enhanced else block.status,
                text=reply.text,
                fault=fault.value,
                reason=reason,
            )
        )
        why = f" ({problem.explanation})" if problem is not None else ""
        return Finding(Kind.BOUNCED, state.email,
                       f"{reply}; fault: {fault.value or 'unknown'}{why}")

    def _save(self, update: RecipientUpdate) -> None:
        self.store.record(update)
        self.store.flush()

    # ---- unsubscribe -------------------------------------------------------------------

    def _unsubscribe(self, token: tuple[str, ...], sender: str, at: float) -> Finding:
        if token:  # a token that names nobody is not overruled by a From header
            row = self._by_token.get(token)
            how = "by its token"
        else:
            row = self._by_address.get(address_key(sender)) if sender else None
            how = f"by its sender {sender}"
        if row is None:
            return Finding(Kind.UNMATCHED, sender,
                           "an unsubscribe request that names no recipient of this campaign")
        state = self.store.get(row)
        if UNSUBSCRIBED in state.reason:
            return Finding(Kind.UNCHANGED, state.email, "unsubscribed already")
        reason = f"{UNSUBSCRIBED} ({iso_utc(at)})"
        reason = f"{state.reason}; {reason}" if state.reason else reason
        status = state.status
        if status not in (Status.DELIVERED, Status.INVALID):
            status = Status.SUPPRESSED  # nothing is sent to it again, retries included
        self._save(state.to_update(status=status, reason=reason,
                                          next_attempt_at=None, wait_reason=""))
        return Finding(Kind.UNSUBSCRIBED, state.email, f"unsubscribe request matched {how}")


def _named(bounce: Bounce) -> list[str]:
    return [address for block in bounce.recipients for address in block.addresses[:1]]


def _block_for(state: RecipientState, bounce: Bounce) -> RecipientStatus | None:
    """The block of ``bounce`` about ``state``: the one naming its address, else the only
    one (forwarding: the final recipient is another address)."""
    key = address_key(state.email)
    for block in bounce.recipients:
        if key in map(address_key, block.addresses):
            return block
    return bounce.recipients[0] if len(bounce.recipients) == 1 else None


def unsubscribed_addresses(store: CampaignStore) -> list[str]:
    """Every recipient of the campaign who asked to unsubscribe by mail, in id order."""
    return [state.email for state in store.states() if UNSUBSCRIBED in state.reason]
