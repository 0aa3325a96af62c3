"""Coverage-guided fuzzing of the SMTP client's input side with atheris (optional).

Not collected by pytest (its name does not start with ``test_``). Run it where atheris
is installed (``pip install atheris``: it builds on CPython 3.11, Linux x86-64)::

    python -m tests.fuzz.atheris_smtp -max_total_time=600 -rss_limit_mb=1024 corpus/

hypothesis explores what our strategies describe; atheris follows the branches of
``core.smtp`` itself, so it finds inputs no strategy thought of. The first bytes choose
the session's settings and the client's moves, the rest is what the server sends, in
chunks. Any exception but the parser's ``RemoteProtocolError``, and any transaction not
accounted for exactly once, is a crash that atheris reports with the input that made it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from core.smtp import (
        Body,
        ClientSession,
        RemoteProtocolError,
        ReplyParser,
        SessionConfig,
        StartTLS,
        TLSPolicy,
        Transaction,
        TransactionDone,
    )

POLICIES = list(TLSPolicy)
RECIPIENTS = ("ann@dest.test", "bob@dest.test", "j\u00fcrgen@dest.test")


def parse_replies(data: bytes, chunk: int) -> None:
    parser = ReplyParser()
    try:
        for start in range(0, len(data), chunk):
            parser.receive_data(data[start : start + chunk])
            while parser.next_reply() is not None:
                pass
    except RemoteProtocolError:
        pass


def converse(fdp: atheris.FuzzedDataProvider) -> None:
    config = SessionConfig(
        "client.test", tls=POLICIES[fdp.ConsumeIntInRange(0, 2)], pipelining=fdp.ConsumeBool()
    )
    session = ClientSession(config)
    submitted: list[Transaction] = []
    reported: list[Transaction] = []
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        count = fdp.ConsumeIntInRange(1, 3)
        body = Body.from_bytes(b"Subject: x\r\n\r\n" + b"y" * fdp.ConsumeIntInRange(0, 200))
        transaction = Transaction("sender@origin.test", RECIPIENTS[:count], body)
        session.submit(transaction)
        submitted.append(transaction)
    for _ in range(200):  # bounded: the input runs out long before
        if session.closed or fdp.remaining_bytes() == 0:
            break
        session.receive_data(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 512)))
        session.data_to_send(fdp.ConsumeIntInRange(1, 1 << 16))
        while (event := session.next_event()) is not None:
            if isinstance(event, TransactionDone):
                assert all(event.transaction is not t for t in reported), "reported twice"
                reported.append(event.transaction)
            elif isinstance(event, StartTLS):
                session.tls_established()
        if fdp.ConsumeIntInRange(0, 31) == 0:
            session.quit()
    session.connection_lost("input over")
    while (event := session.next_event()) is not None:
        if isinstance(event, TransactionDone):
            reported.append(event.transaction)
    accounted = reported + session.unstarted()
    assert sorted(map(id, accounted)) == sorted(map(id, submitted)), "a transaction lost"


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        chunk = fdp.ConsumeIntInRange(1, 64)
        parse_replies(fdp.ConsumeBytes(fdp.remaining_bytes()), chunk)
    else:
        converse(fdp)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
