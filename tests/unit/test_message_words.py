"""Header text on the wire: encoded words, display names, folding, addresses, MIME
parameters. Each checked against the stdlib's decoder, the reader's view."""

from __future__ import annotations

import email.header
import re
from email import policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.message.address import addr_spec
from core.message.params import mime_header
from core.message.words import (
    encoded_words,
    fold,
    fold_text,
    hard_fold,
    phrase,
    unstructured,
)


def _decoded(words: str) -> str:
    """RFC 2047 decoding by the stdlib's legacy decoder, which joins adjacent words."""
    return str(email.header.make_header(email.header.decode_header(words)))


@given(st.text(min_size=1), st.integers(0, 80))
def test_encoded_words_decode_back_and_respect_their_lengths(text: str, first: int) -> None:
    words = encoded_words(text, first)
    assert all(word.isascii() for word in words)
    assert len(words[0]) <= max(first, 24)
    assert all(len(word) <= 75 for word in words[1:])
    assert _decoded(" ".join(words)) == text


def test_encoded_words_choose_q_for_latin_text_and_b_for_cjk() -> None:
    assert encoded_words("Zo\u00eb") == ["=?utf-8?q?Zo=C3=AB?="]
    assert encoded_words("\u65e5\u672c\u8a9e") == ["=?utf-8?b?5pel5pys6Kqe?="]


def test_a_word_is_never_cut_inside_a_character() -> None:
    for word in encoded_words("\U0001f4ec" * 40):
        # Each word holds whole characters: each decodes on its own.
        assert set(_decoded(word)) == {"\U0001f4ec"}


@pytest.mark.parametrize("text", ["\u00e9t\u00e9 " * 12, "\u65e5\u672c " * 30])
def test_words_are_cut_at_spaces_where_they_can_be(text: str) -> None:
    words = encoded_words(text)
    assert len(words) > 1
    for word in words[1:]:
        assert _decoded(word).startswith(" ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Hello Ann", b"Subject: Hello Ann\r\n"),
        ("  padded\t", b"Subject: padded\r\n"),
        ("", b"Subject:\r\n"),
        ("Zo\u00eb", b"Subject: =?utf-8?q?Zo=C3=AB?=\r\n"),
        ("=?utf-8?q?x?=", b"Subject: =?utf-8?b?PT91dGYtOD9xP3g/PQ==?=\r\n"),
        ("bell\x07", b"Subject: =?utf-8?q?bell=07?=\r\n"),
    ],
)
def test_unstructured(value: str, expected: bytes) -> None:
    assert unstructured("Subject", value) == expected


def test_long_ascii_text_is_folded_at_its_spaces() -> None:
    value = " ".join(["word"] * 40) + "  two  spaces"
    header = unstructured("Subject", value)
    lines = header.split(b"\r\n")[:-1]
    assert all(len(line) <= 78 for line in lines)
    assert all(line[:1] == b" " for line in lines[1:])
    message = email.message_from_bytes(header + b"\r\n", policy=policy.default)
    assert str(message["Subject"]) == value


@given(st.text(max_size=300))
def test_unstructured_decodes_back_within_998(value: str) -> None:
    value = re.sub("[\r\n\0]", " ", value)
    header = unstructured("Subject", value)
    assert header.isascii()
    assert all(len(line) <= 998 for line in header.split(b"\r\n"))
    message = email.message_from_bytes(header + b"\r\n", policy=policy.default)
    assert str(message["Subject"]) == value.strip(" \t")


@pytest.mark.parametrize(
    ("display", "tokens"),
    [
        ("Ann Lee", ["Ann", "Lee"]),
        ("  Ann \t Lee ", ["Ann", "Lee"]),
        ("Lee, Ann", ['"Lee, Ann"']),
        ('Say "hi"\\', ['"Say \\"hi\\"\\\\"']),
        ("Zo\u00eb", ["=?utf-8?q?Zo=C3=AB?="]),
        ("=?utf-8?q?x?=", ["=?utf-8?b?PT91dGYtOD9xP3g/PQ==?="]),
        ("", []),
    ],
)
def test_phrase(display: str, tokens: list[str]) -> None:
    assert phrase(display) == tokens


def test_a_long_atom_is_encoded_so_it_can_be_folded() -> None:
    tokens = phrase("x" * 300)
    assert all(len(token) <= 60 for token in tokens)
    assert _decoded(" ".join(tokens)) == "x" * 300


def test_fold_breaks_between_tokens_only() -> None:
    header = fold("To", [f"<user{n}@example.test>," for n in range(10)])
    lines = header.split(b"\r\n")[:-1]
    assert all(len(line) <= 78 for line in lines)
    assert b"".join(lines).replace(b",<", b", <") == (
        b"To: " + b" ".join(f"<user{n}@example.test>,".encode() for n in range(10))
    )


def test_hard_fold_is_the_last_resort_within_998() -> None:
    line = b"List-Id: <" + "\u00e9".encode() * 700 + b">\r\n"
    folded = hard_fold(line)
    assert all(len(part) <= 998 for part in folded.split(b"\r\n"))
    assert folded.startswith(b"List-Id:\r\n <")  # at the space first: nothing inserted
    assert b"".join(folded.split()) == b"".join(line.split())  # nothing lost
    folded.decode("utf-8")  # never cut inside a character
    assert hard_fold(b"Short: x\r\n") == b"Short: x\r\n"


@pytest.mark.parametrize(
    "value",
    [
        "a" + " " * 1200 + "b",
        "a" + " \t" * 700 + "b",
        "a " + "x" * 1200 + " " * 999 + "b",
        " " * 2000 + "\u00e9" * 800,
        "<https://x.test/" + "y" * 990 + "> " + " " * 1000 + "(z)",
    ],
)
def test_no_folded_line_is_only_whitespace(value: str) -> None:
    """A header line of nothing but spaces may read as the blank line that ends the
    header section: runs of spaces on an over-long line are one space."""
    folded = fold_text("List-Help", value)
    lines = folded.split(b"\r\n")[:-1]
    assert all(line.strip(b" \t") for line in lines), lines
    assert max(map(len, lines)) <= 998
    assert b"".join(folded.split()) == b"List-Help:" + b"".join(value.encode().split())


def test_hard_fold_folds_at_a_space_where_it_can() -> None:
    line = b"References: " + b" ".join(b"<%d@x.test>" % n for n in range(200)) + b"\r\n"
    folded = hard_fold(line)
    assert folded.replace(b"\r\n", b"") == line[:-2]  # unfolding gives the line back
    assert all(0 < len(part) <= 998 for part in folded.split(b"\r\n")[:-1])


def test_fold_text_keeps_raw_utf8_and_whitespace() -> None:
    assert fold_text("List-Id", " Caf\u00e9 <c.list>") == "List-Id: Caf\u00e9 <c.list>\r\n".encode()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("ann@example.test", "ann@example.test"),
        ("j\u00fcrgen@b\u00fccher.test", "j\u00fcrgen@xn--bcher-kva.test"),
        ("a b@example.test", '"a b"@example.test'),
        ('a"b\\c@example.test', '"a\\"b\\\\c"@example.test'),
        ("ann@example.test.", "ann@example.test"),
        ("ann@exa..mple.test", "ann@exa.mple.test"),
        ("ann@", '"ann@"'),
        ("@", '"@"'),
        ("ann", "ann"),
        ("", '""'),
        ("a\x01nn@example.test", "ann@example.test"),
        ("x@[192.0.2.1]", "x@[192.0.2.1]"),
        ("x@exa mple.test", "x@example.test"),
        # Already a quoted-string (the importer's normal form): kept, not quoted again.
        ('"quoted local"@example.test', '"quoted local"@example.test'),
        ('"a\\"b"@example.test', '"a\\"b"@example.test'),
        ('"open@example.test', '"\\"open"@example.test'),
    ],
)
def test_addr_spec(address: str, expected: str) -> None:
    assert addr_spec(address) == expected


@given(st.text())
def test_addr_spec_always_parses_as_one_address(address: str) -> None:
    address = re.sub("[\r\n\0]", " ", address)
    header = policy.default.header_factory("to", f"Name <{addr_spec(address)}>")
    assert len(header.addresses) == 1  # type: ignore[attr-defined]
    assert header.addresses[0].display_name == "Name"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"charset": "utf-8"}, b'Content-Type: text/plain; charset="utf-8"\r\n'),
        ({"name": "a b.txt"}, b'Content-Type: text/plain; name="a b.txt"\r\n'),
        ({"name": 'a"b.txt'}, b"Content-Type: text/plain; name*=utf-8''a%22b.txt\r\n"),
        ({"name": "\u00e9.txt"}, b"Content-Type: text/plain; name*=utf-8''%C3%A9.txt\r\n"),
    ],
)
def test_mime_header(params: dict[str, str], expected: bytes) -> None:
    assert mime_header("Content-Type", "text/plain", params) == expected


@given(st.text(min_size=1, max_size=200).filter(lambda s: "\0" not in s))
def test_mime_parameters_decode_back(name: str) -> None:
    header = mime_header("Content-Disposition", "attachment", {"filename": name})
    assert header.isascii()
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    message = email.message_from_bytes(header + b"\r\n", policy=policy.default)
    # The header's parameters, not get_filename(), which strips quotes it finds in a value.
    assert message["Content-Disposition"].params["filename"] == name
