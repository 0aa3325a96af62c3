"""The suppression list: who must never be mailed, read from a file and written to one."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.recipients import Address, check_address
from core.suppression import (
    Rejected,
    SuppressionError,
    SuppressionList,
    extend_suppression,
    write_suppression,
)


def matches(suppression: SuppressionList, address: str) -> str | None:
    checked = check_address(address)
    assert isinstance(checked, Address), address
    return suppression.lookup(checked.key, checked.domain)


def load(tmp_path: Path, data: bytes) -> SuppressionList:
    path = tmp_path / "suppressed.txt"
    path.write_bytes(data)
    return SuppressionList.load(path)


# ---- matching --------------------------------------------------------------------------


def test_addresses_match_ignoring_case_and_form() -> None:
    suppression = SuppressionList(["Ann@Example.test", "j\u00fcrgen@b\u00fccher.test"])
    assert matches(suppression, "ann@example.test") == "Ann@Example.test"
    assert matches(suppression, "ANN@EXAMPLE.TEST.") == "Ann@Example.test"
    assert matches(suppression, "Ann Lee <ann@example.test>") == "Ann@Example.test"
    assert matches(suppression, "J\u00fcrgen@xn--bcher-kva.test") == "j\u00fcrgen@b\u00fccher.test"
    assert matches(suppression, "bob@example.test") is None
    assert matches(suppression, "ann@other.test") is None
    assert len(suppression) == 2


def test_domain_entries_match_the_domain_in_either_form() -> None:
    suppression = SuppressionList(["@B\u00fccher.test", "@xn--tdaa.test"])
    assert matches(suppression, "anyone@xn--bcher-kva.test") == "@B\u00fccher.test"
    assert matches(suppression, "x@B\u00dcCHER.TEST") == "@B\u00fccher.test"
    assert matches(suppression, "y@\u00fc\u00fc.test") == "@xn--tdaa.test"
    # Only that domain: not a subdomain, not a parent.
    assert matches(suppression, "x@mail.b\u00fccher.test") is None
    assert matches(suppression, "x@test.test") is None


def test_contains_takes_any_written_form() -> None:
    suppression = SuppressionList(["ann@x.test", "@spam.test"])
    assert "ANN@x.test" in suppression
    assert "Bob <bob@spam.test>" in suppression
    assert "bob@x.test" not in suppression
    assert "not an address" not in suppression
    assert 42 not in suppression


def test_a_bad_entry_given_in_code_is_an_error() -> None:
    with pytest.raises(ValueError, match="'nope': the address has no @"):
        SuppressionList(["ann@x.test", "nope"])
    with pytest.raises(ValueError, match="'@localhost': the domain has no dot"):
        SuppressionList(["@localhost"])


# ---- loading ---------------------------------------------------------------------------


def test_load_a_list_with_comments_and_blank_lines(tmp_path: Path) -> None:
    suppression = load(
        tmp_path,
        b"# bounced in May\n\nann@x.test\r\n  Bob@X.test  \n   # indented comment\n"
        b"@spam.test\nnot-an-address\n@\n\n",
    )
    assert len(suppression) == 3
    assert matches(suppression, "bob@x.test") == "Bob@X.test"
    assert matches(suppression, "z@spam.test") == "@spam.test"
    assert suppression.rejected == [
        Rejected(7, "not-an-address", "the address has no @"),
        Rejected(8, "@", "the domain is empty"),
    ]


def test_load_a_csv_export_by_its_email_column(tmp_path: Path) -> None:
    suppression = load(
        tmp_path,
        b'\xef\xbb\xbf"First Name";"Email Address";"Reason"\r\n'
        b'"Ann";"ann@x.test";"unsubscribed"\r\n"Bob";"";"no address"\r\n'
        b'"Cid";"cid@x.test";"bounced; hard"\r\n',
    )
    assert len(suppression) == 2
    assert matches(suppression, "cid@x.test") == "cid@x.test"
    assert suppression.rejected == []


def test_load_a_csv_by_its_first_column(tmp_path: Path) -> None:
    with_header = load(tmp_path, b"address,date\nann@x.test,2024-05-01\n@spam.test,2024-05-02\n")
    assert matches(with_header, "ann@x.test") == "ann@x.test"
    assert matches(with_header, "q@spam.test") == "@spam.test"
    assert with_header.rejected == []  # the header row is not an entry
    without_header = load(tmp_path, b"ann@x.test,2024-05-01\nbob@x.test,2024-05-02\n")
    assert len(without_header) == 2


def test_load_legacy_and_utf16_files(tmp_path: Path) -> None:
    cp1252 = load(tmp_path, "# Liste r\u00e9sili\u00e9e\nren\u00e9e@x.test\n".encode("cp1252"))
    assert matches(cp1252, "REN\u00c9E@x.test") == "ren\u00e9e@x.test"
    utf16 = load(tmp_path, "ann@x.test\r\n@b\u00fccher.test\r\n".encode("utf-16"))
    assert matches(utf16, "z@xn--bcher-kva.test") == "@b\u00fccher.test"


def test_an_empty_file_is_an_empty_list(tmp_path: Path) -> None:
    assert len(load(tmp_path, b"")) == 0
    assert len(load(tmp_path, b"# nothing yet\n\n")) == 0


def test_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SuppressionError, match="suppression list: cannot read"):
        SuppressionList.load(tmp_path / "missing.txt")
    with pytest.raises(SuppressionError, match="is an Excel workbook, not CSV"):
        load(tmp_path, b"PK\x03\x04\x14\0\0\0\x08\0[Content_Types].xml xl/workbook.xml")


# ---- writing ---------------------------------------------------------------------------


def test_write_sorted_unique_with_a_dated_comment(tmp_path: Path) -> None:
    path = tmp_path / "suppressed.txt"
    written = write_suppression(
        path, ["zoe@x.test", " Ann@X.test ", "ann@x.test", "", "@spam.test", "bob@x.test"]
    )
    assert written == 4
    lines = path.read_text(encoding="utf-8").splitlines()
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert lines[0].startswith(f"# MX Mailer suppression list, written {today}")
    assert lines[1:] == ["", "@spam.test", "Ann@X.test", "bob@x.test", "zoe@x.test"]
    # What is written is what is read back.
    suppression = SuppressionList.load(path)
    assert (len(suppression), suppression.rejected) == (4, [])
    assert matches(suppression, "ann@x.test") == "Ann@X.test"


def test_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "suppressed.txt"
    write_suppression(path, ["old@x.test"])
    assert write_suppression(path, ["new@x.test"]) == 1
    assert path.read_text().splitlines()[2:] == ["new@x.test"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suppressed.txt"]


def test_a_line_break_in_an_entry_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "suppressed.txt"
    write_suppression(path, ["old@x.test"])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="cannot hold a line break"):
        write_suppression(path, ["a@x.test", "b@x.test\nc@x.test"])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suppressed.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "suppressed.txt"
    write_suppression(path, ["old@x.test"])
    before = path.read_bytes()

    def no_rename(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="No space left"):
        write_suppression(path, ["new@x.test"])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suppressed.txt"]


def test_extend_keeps_the_file_and_adds_only_the_new_under_a_dated_comment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "suppressed.txt"
    path.write_text("# kept\nold@x.test", encoding="utf-8")  # no final line break
    added = extend_suppression(path, ["OLD@x.test", "new@x.test", "new@x.test"], "why")
    assert added == 1
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["# kept", "old@x.test"]
    assert lines[2].startswith("# why, added ") and lines[3:] == ["new@x.test"], lines
    assert extend_suppression(path, ["new@x.test"], "why") == 0
    assert len(path.read_text(encoding="utf-8").splitlines()) == 4


def test_extend_makes_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "suppressed.txt"
    assert extend_suppression(path, ["a@x.test", "A@x.test"], "why") == 1
    assert "a@x.test" in SuppressionList.load(path)
