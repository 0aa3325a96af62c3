"""LabServer as a well-behaved ESMTP server: what it offers, answers and records."""

from __future__ import annotations

import pytest

from core.lab import Behaviour, Fault, LabServer, ReceivedMessage, Stage
from tests.lab.client import RawClient

BODY = b"Subject: hello\r\n\r\nline one\r\n..a stuffed dot\r\n"


async def test_ehlo_advertises_the_usual_extensions() -> None:
    async with LabServer() as server, await RawClient.connect(server.address) as client:
        greeting = await client.reply()
        assert greeting.first == "220 mx.lab.test ESMTP MX Mailer lab"
        ehlo = await client.command("EHLO client.lab.test")
    assert ehlo.code == 250
    assert ehlo.lines == (
        "mx.lab.test",
        "PIPELINING",
        "SIZE 10485760",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "SMTPUTF8",
    )


async def test_chunking_and_a_smaller_size_are_advertised_when_asked() -> None:
    behaviour = Behaviour(chunking=True, size_limit=1000, smtputf8=False)
    async with LabServer(behaviour) as server, await RawClient.connect(server.address) as client:
        ehlo = await client.hello()
    assert "CHUNKING" in ehlo.lines
    assert "SIZE 1000" in ehlo.lines
    assert "SMTPUTF8" not in ehlo.lines


async def test_a_message_is_recorded_exactly_dot_unstuffed() -> None:
    async with LabServer() as server, await RawClient.connect(server.address) as client:
        await client.hello()
        end = await client.send_mail("a@sender.test", ["b@rcpt.test", "c@rcpt.test"], BODY)
        assert end.code == 250
        assert end.lines[0].startswith("2.0.0 Ok: queued as ")
        assert (await client.command("QUIT")).first == "221 2.0.0 Bye"
        assert await client.read_some() == b""
    assert server.messages == [
        ReceivedMessage(
            "a@sender.test",
            ("b@rcpt.test", "c@rcpt.test"),
            b"Subject: hello\r\n\r\nline one\r\n.a stuffed dot\r\n",
            tls=False,
            helo="client.lab.test",
            connection=1,
        )
    ]
    assert server.stats.transactions == 1
    assert server.connections[0].commands == [
        "EHLO client.lab.test",
        "MAIL FROM:<a@sender.test>",
        "RCPT TO:<b@rcpt.test>",
        "RCPT TO:<c@rcpt.test>",
        "DATA",
        "QUIT",
    ]


async def test_empty_body_and_a_leading_dot_line() -> None:
    async with LabServer() as server, await RawClient.connect(server.address) as client:
        await client.hello()
        assert (await client.send_mail("", ["b@rcpt.test"], b"")).code == 250
        assert (await client.send_mail("", ["b@rcpt.test"], b"..\r\n")).code == 250
    assert [m.data for m in server.messages] == [b"", b".\r\n"]
    assert server.messages[0].sender == ""


async def test_a_pipelined_batch_in_one_segment_is_answered_in_order() -> None:
    async with LabServer() as server, await RawClient.connect(server.address) as client:
        await client.hello()
        await client.send(
            b"MAIL FROM:<a@sender.test> SIZE=100 BODY=8BITMIME\r\n"
            b"RCPT TO:<b@rcpt.test>\r\n"
            b"RCPT TO:<c@rcpt.test>\r\n"
            b"DATA\r\n"
        )
        replies = await client.replies(4)
        assert [r.first for r in replies] == [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
        ]
        # The body, the next transaction and QUIT in one segment too.
        await client.send(
            b"one\r\n.\r\nMAIL FROM:<x@sender.test>\r\nRCPT TO:<y@rcpt.test>\r\nDATA\r\n"
        )
        replies = await client.replies(4)
        assert [r.code for r in replies] == [250, 250, 250, 354]
        await client.send(b"two\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        replies = await client.replies(4)
        assert [r.first for r in replies][1:] == ["250 2.0.0 Ok", "250 2.0.0 Ok", "221 2.0.0 Bye"]
    assert [(m.sender, m.recipients, m.data) for m in server.messages] == [
        ("a@sender.test", ("b@rcpt.test", "c@rcpt.test"), b"one\r\n"),
        ("x@sender.test", ("y@rcpt.test",), b"two\r\n"),
    ]
    assert server.messages[0].mail_options == ("SIZE=100", "BODY=8BITMIME")


async def test_many_pipelined_transactions_arrive_once_each() -> None:
    count = 300

    def envelope(i: int) -> bytes:
        return b"MAIL FROM:<s@sender.test>\r\nRCPT TO:<r%d@rcpt.test>\r\nDATA\r\n" % i

    async with LabServer() as server, await RawClient.connect(server.address) as client:
        await client.hello()
        await client.send(envelope(0))
        assert [r.code for r in await client.replies(3)] == [250, 250, 354]
        for i in range(1, count):
            # The end of one message and the whole envelope of the next, in one write.
            await client.send(b"message %d\r\n.\r\n" % (i - 1) + envelope(i))
            assert [r.code for r in await client.replies(4)] == [250, 250, 250, 354]
        await client.send(b"message %d\r\n.\r\nQUIT\r\n" % (count - 1))
        assert [r.code for r in await client.replies(2)] == [250, 221]
    assert [m.data for m in server.messages] == [b"message %d\r\n" % i for i in range(count)]
    assert [m.recipients for m in server.messages] == [(f"r{i}@rcpt.test",) for i in range(count)]


async def test_esmtp_without_pipelining() -> None:
    async with (
        LabServer(Behaviour(pipelining=False)) as server,
        await RawClient.connect(server.address) as client,
    ):
        ehlo = await client.hello()
        assert "PIPELINING" not in ehlo.lines
        assert (await client.send_mail("a@s.test", ["b@r.test"], b"x\r\n")).code == 250
    assert len(server.messages) == 1


async def test_helo_only_server() -> None:
    async with (
        LabServer(Behaviour(helo_only=True)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.reply()
        assert (await client.command("EHLO client.lab.test")).first == (
            "502 Error: command not recognized"
        )
        assert (await client.command("HELO client.lab.test")).first == "250 mx.lab.test"
        refused = await client.command("MAIL FROM:<a@s.test> SIZE=10")
        assert refused.code == 555
        assert (await client.send_mail("a@s.test", ["b@r.test"], b"x\r\n")).first.startswith(
            "250 Ok: queued as"  # no enhanced status codes without EHLO
        )
    assert server.messages[0].helo == "client.lab.test"


async def test_size_limit_on_mail_and_on_the_body() -> None:
    async with (
        LabServer(Behaviour(size_limit=100)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        assert (await client.command("MAIL FROM:<a@s.test> SIZE=101")).first == (
            "552 5.3.4 Message size exceeds fixed limit"
        )
        too_big = await client.send_mail("a@s.test", ["b@r.test"], b"y" * 300 + b"\r\n")
        assert too_big.first == "552 5.3.4 Error: message file too big"
        fits = await client.send_mail("a@s.test", ["b@r.test"], b"z" * 50 + b"\r\n")
        assert fits.code == 250
    assert [m.data for m in server.messages] == [b"z" * 50 + b"\r\n"]


async def test_an_overlong_command_line_gets_500_and_the_connection_goes_on() -> None:
    async with LabServer() as server, await RawClient.connect(server.address) as client:
        await client.hello()
        await client.send(b"NOOP " + b"x" * 5000 + b"\r\nNOOP\r\n")
        assert [r.first for r in await client.replies(2)] == [
            "500 5.5.2 Error: line too long",
            "250 2.0.0 Ok",
        ]
        # The same, with the line's end arriving in a later segment.
        await client.send(b"NOOP " + b"x" * 5000)
        assert (await client.reply()).code == 500
        await client.send(b"x" * 100 + b"\r\nNOOP\r\n")
        assert (await client.reply()).first == "250 2.0.0 Ok"


async def test_commands_out_of_sequence_are_refused() -> None:
    async with LabServer() as server, await RawClient.connect(server.address) as client:
        await client.reply()
        assert (await client.command("MAIL FROM:<a@s.test>")).code == 503
        await client.command("EHLO c.test")
        assert (await client.command("RCPT TO:<b@r.test>")).code == 503
        assert (await client.command("DATA")).code == 503
        assert (await client.command("MAIL FROM:<a@s.test>")).code == 250
        assert (await client.command("MAIL FROM:<a@s.test>")).code == 503
        assert (await client.command("DATA")).first == "554 5.5.1 Error: no valid recipients"
        assert (await client.command("RSET")).code == 250
        assert (await client.command("FOO")).first == "500 5.5.2 Error: command not recognized"
        assert (await client.command("RCPT TO:<héllo@r.test>")).code == 503
        assert (await client.command("MAIL FROM:<ü@s.test>")).code == 553
        assert (await client.command("MAIL FROM:<ü@s.test> SMTPUTF8")).code == 250
        assert (await client.command("RCPT TO:<é@r.test>")).code == 250
    assert server.messages == []


async def test_too_many_errors_end_the_connection() -> None:
    async with (
        LabServer(Behaviour(max_errors=3)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.reply()
        await client.send(b"X\r\nX\r\nX\r\nX\r\nX\r\n")
        replies = await client.replies(4)
        assert [r.code for r in replies] == [500, 500, 500, 421]
        assert await client.read_some() == b""


async def test_bdat_when_chunking_is_offered() -> None:
    async with (
        LabServer(Behaviour(chunking=True)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.send(b"MAIL FROM:<a@s.test>\r\nRCPT TO:<b@r.test>\r\nBDAT 6\r\nhello\n")
        replies = await client.replies(3)
        assert replies[2].first == "250 2.0.0 6 octets received"
        await client.send(b"BDAT 10 LAST\r\n.world\r\n\r\n")
        assert (await client.reply()).code == 250
    assert server.messages[0].data == b"hello\n.world\r\n\r\n"


async def test_idle_client_gets_421() -> None:
    async with (
        LabServer(Behaviour(idle_timeout=0.2)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.reply()
        assert (await client.reply()).first == "421 4.4.2 Error: timeout exceeded"
        assert await client.read_some() == b""


async def test_the_end_of_data_split_across_segments() -> None:
    async with LabServer() as server, await RawClient.connect(server.address) as client:
        await client.hello()
        await client.send(b"MAIL FROM:<a@s.test>\r\nRCPT TO:<b@r.test>\r\nDATA\r\n")
        await client.replies(3)
        for piece in (b"one\r", b"\n", b".", b".two\r\n", b"\r\n.", b"\r", b"\nNOOP\r\n"):
            await client.send(piece)
        assert [r.code for r in await client.replies(2)] == [250, 250]
        await client.send(b"MAIL FROM:<a@s.test>\r\nRCPT TO:<b@r.test>\r\nDATA\r\n")
        await client.replies(3)
        await client.send(b".")  # an empty message, its lone dot line in two pieces
        await client.send(b"\r\n")
        assert (await client.reply()).code == 250
    assert [m.data for m in server.messages] == [b"one\r\n.two\r\n\r\n", b""]


async def test_an_oversized_body_in_many_segments_is_read_to_its_end_and_refused() -> None:
    async with (
        LabServer(Behaviour(size_limit=1000)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.hello()
        await client.send(b"MAIL FROM:<a@s.test>\r\nRCPT TO:<b@r.test>\r\nDATA\r\n")
        await client.replies(3)
        line = b"y" * 98 + b"\r\n"
        for _ in range(50):
            await client.send(line * 40)  # 200 KB in all
        await client.send(b"\r\n.\r\nNOOP\r\n")
        replies = await client.replies(2)
        assert [r.first for r in replies] == [
            "552 5.3.4 Error: message file too big",
            "250 2.0.0 Ok",
        ]
        assert (await client.send_mail("a@s.test", ["b@r.test"], line)).code == 250
    assert [m.data for m in server.messages] == [line]


async def test_too_many_commands_end_the_connection() -> None:
    async with (
        LabServer(Behaviour(max_commands=3)) as server,
        await RawClient.connect(server.address) as client,
    ):
        await client.reply()
        await client.send(b"NOOP\r\n" * 5)
        assert [r.code for r in await client.replies(4)] == [250, 250, 250, 421]
        assert await client.read_some() == b""


async def test_without_enhanced_status_codes_replies_carry_none() -> None:
    async with (
        LabServer(Behaviour(enhanced_status_codes=False)) as server,
        await RawClient.connect(server.address) as client,
    ):
        assert "ENHANCEDSTATUSCODES" not in (await client.hello()).lines
        assert (await client.command("MAIL FROM:<a@s.test>")).first == "250 Ok"
        assert (await client.command("RCPT TO:<b@r.test>")).first == "250 Ok"


def test_a_behaviour_is_a_hashable_value() -> None:
    faults = [Fault(Stage.MAIL, 451, "4.3.0 later")]
    behaviour = Behaviour(faults=faults)  # type: ignore[arg-type]  # a list is accepted
    assert behaviour.faults == tuple(faults)
    assert hash(behaviour) == hash(Behaviour(faults=tuple(faults)))
    with pytest.raises(ValueError):
        Behaviour(size_limit=0)
