"""The SMTP client protocol, sans-IO: bytes in, events out; commands in, bytes out.

Never imports asyncio, sockets or clocks. ``core.connection`` is the only driver.
"""

from core.smtp.body import Body, encode_body
from core.smtp.classify import ReplyKind, Verdict, classify, is_greylisting, retry_hint
from core.smtp.errors import (
    BodyLineTooLongError,
    LocalProtocolError,
    RemoteProtocolError,
    SMTPError,
    UnsafeArgumentError,
)
from core.smtp.extensions import Extensions, parse_ehlo
from core.smtp.reply import EnhancedStatus, Reply, ReplyParser
from core.smtp.session import (
    ClientSession,
    Closed,
    Credentials,
    Event,
    FailureKind,
    Outcome,
    Phase,
    Ready,
    RecipientResult,
    SessionConfig,
    SessionFailed,
    StartTLS,
    TLSPolicy,
    Transaction,
    TransactionDone,
)

__all__ = [
    "Body",
    "BodyLineTooLongError",
    "ClientSession",
    "Closed",
    "Credentials",
    "EnhancedStatus",
    "Event",
    "Extensions",
    "FailureKind",
    "LocalProtocolError",
    "Outcome",
    "Phase",
    "Ready",
    "RecipientResult",
    "RemoteProtocolError",
    "Reply",
    "ReplyKind",
    "ReplyParser",
    "SMTPError",
    "SessionConfig",
    "SessionFailed",
    "StartTLS",
    "TLSPolicy",
    "Transaction",
    "TransactionDone",
    "UnsafeArgumentError",
    "Verdict",
    "classify",
    "encode_body",
    "is_greylisting",
    "parse_ehlo",
    "retry_hint",
]
