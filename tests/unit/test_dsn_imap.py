"""Pieces of the IMAP reader that need no server (the server itself: test_bounces_imap)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.bounces.imap import mailbox_utf7


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("INBOX", "INBOX"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("Tom & Jerry", "Tom &- Jerry"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 §5.1.3
        ("Rückläufer", "R&APw-ckl&AOQ-ufer"),
    ],
)
def test_modified_utf7(name: str, wire: str) -> None:
    assert mailbox_utf7(name) == wire


@given(st.text(max_size=40))
def test_modified_utf7_is_printable_ascii_and_reversible(name: str) -> None:
    wire = mailbox_utf7(name)
    assert all(" " <= char <= "~" for char in wire)
    # Python's "utf-7" codec is standard UTF-7: undo the modifications, then decode.
    parts = wire.split("&")
    decoded = parts[0]
    for part in parts[1:]:
        encoded, _, rest = part.partition("-")
        if not encoded:
            decoded += "&" + rest
            continue
        padded = encoded.replace(",", "/")
        decoded += ("+" + padded + "-").encode().decode("utf-7") + rest
    assert decoded == name
