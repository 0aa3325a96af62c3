"""The recipients importer: any CSV a user exports in, campaign rows out, nothing unsafe
through, and a summary that says what happened."""

from __future__ import annotations

import codecs
import inspect
from pathlib import Path

import pytest

from core import recipients
from core.recipients import (
    SAMPLE_BYTES,
    Address,
    CsvPreview,
    ImportSummary,
    RecipientsError,
    ascii_domain,
    check_address,
    field_name,
    parse_address,
    plain_reason,
    preview_csv,
    read_header,
    read_recipients,
)
from core.store import NewRecipient, Status
from core.suppression import SuppressionList

SHARED_RECIPIENTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "recipients"


def read(path: Path, **options: object) -> tuple[list[NewRecipient], ImportSummary]:
    summary = ImportSummary()
    rows = list(read_recipients(path, summary, **options))  # type: ignore[arg-type]
    return rows, summary


def write(tmp_path: Path, data: bytes, name: str = "recipients.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_bytes(
    tmp_path: Path, data: bytes, **options: object
) -> tuple[list[NewRecipient], ImportSummary]:
    return read(write(tmp_path, data), **options)


def counts(summary: ImportSummary) -> tuple[int, int, int, int, int]:
    """(rows, valid, invalid, duplicates, suppressed)."""
    return summary.rows, summary.valid, summary.invalid, summary.duplicates, summary.suppressed


def refused(path: Path, **options: object) -> str:
    with pytest.raises(RecipientsError) as caught:
        read(path, **options)
    return str(caught.value)


def shared(name: str) -> Path:
    path = SHARED_RECIPIENTS / name
    if not path.exists():
        pytest.skip(f"shared sample {path} not present")
    return path


# ---- field names and addresses -------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("first_name", "first_name"),
        ("First Name", "first_name"),
        ("  First   Name  ", "first_name"),
        ("CITY", "city"),
        ("E-Mail", "e-mail"),
        ("Zip\tCode", "zip_code"),
        ("Vorname", "vorname"),
        ("Pre\u0301nom", "pr\u00e9nom"),  # decomposed (NFD, as macOS saves it): composed
        ("", ""),
    ],
)
def test_field_name(header: str, name: str) -> None:
    assert field_name(header) == name


@pytest.mark.parametrize(
    ("raw", "address", "domain"),
    [
        ("u@x.test", "u@x.test", "x.test"),
        ("  u@x.test  ", "u@x.test", "x.test"),
        ("\u00a0u@x.test\t", "u@x.test", "x.test"),  # a no-break space pasted from a page
        ("U@X.TEST", "U@x.test", "x.test"),  # the local part kept, the domain lower-cased
        ("Carol <carol@plain.test>", "carol@plain.test", "plain.test"),
        ("<carol@plain.test>", "carol@plain.test", "plain.test"),
        ('"Doe, <J>" <j@plain.test>', "j@plain.test", "plain.test"),
        ("J. R. Doe <j@plain.test>", "j@plain.test", "plain.test"),  # any display name
        ("tag+news@plain.test", "tag+news@plain.test", "plain.test"),
        ('"quoted local"@plain.test', '"quoted local"@plain.test', "plain.test"),
        ('"a@b"@plain.test', '"a@b"@plain.test', "plain.test"),
        ('"plain"@plain.test', "plain@plain.test", "plain.test"),  # needless quotes go
        ("j\u00fcrgen@b\u00fccher.test", "j\u00fcrgen@b\u00fccher.test", "xn--bcher-kva.test"),
        ("info@xn--bcher-kva.test", "info@b\u00fccher.test", "xn--bcher-kva.test"),
        ("u@B\u00dcCHER.test", "u@b\u00fccher.test", "xn--bcher-kva.test"),
        ("u@plain.test.", "u@plain.test", "plain.test"),  # trailing dot: same DNS name
        ("u@mx.example.co.test", "u@mx.example.co.test", "mx.example.co.test"),
        ("Postmaster@x.test", "postmaster@x.test", "x.test"),  # RFC 2142 names lower-cased
        ("a" * 64 + "@x.test", "a" * 64 + "@x.test", "x.test"),  # the longest local part
    ],
)
def test_parse_address(raw: str, address: str, domain: str) -> None:
    assert parse_address(raw) == (address, domain)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("u@x.test\r\nRCPT TO:<x@elsewhere.test>", "the address contains a line break"),
        ("u@x.test\n", "the address contains a line break"),
        ("u@x.test\r", "the address contains a line break"),
        ("Ann\n<u@x.test>", "the address contains a line break"),
        ("u\0@x.test", "the address contains a NUL character"),
        ("", "the address is empty"),
        ("   ", "the address is empty"),
        ("not-an-address", "the address has no @"),
        ("@x.test", "the address has nothing before the @"),
        ("u@", "the address has nothing after the @"),
        ("a@@plain.test", "the address has more than one @"),
        ("a@b@plain.test", "the address has more than one @"),
        ("first..last@plain.test", "the address has two dots in a row"),
        (".a@x.test", "the local part starts with a dot"),
        ("a.@x.test", "the local part ends with a dot"),
        ("u@x.test..", "the domain ends with a dot"),  # one trailing dot only is dropped
        ("u@-x.test", "the domain starts with a hyphen"),
        ("u@x.test-", "the domain ends with a hyphen"),
        ("u@ab--c.test", "a part of the domain has -- after two letters"),
        ("u@x-.test", "the domain has a dot next to a hyphen"),
        ("u @x.test", "the local part contains invalid characters: SPACE"),
        ("u@x_y.test", "the domain contains invalid characters: '_'"),
        ("u@localhost", "the domain has no dot"),
        ("u@test", "the domain has no dot"),
        ("u@x.local", "the domain is a reserved name that cannot receive mail"),
        ("u@[192.0.2.1]", "the domain is an IP address in brackets, not a name"),
        ("u@x.123", "the domain does not end in a top-level domain"),
        ("a" * 65 + "@x.test", "the local part is longer than 64 octets"),
        ("\u00e9" * 33 + "@x.test", "the local part is longer than 64 octets"),  # 66 octets
        ("u@" + "a" * 64 + ".test", "a part of the domain is over 63 octets"),
        ("u@" + ("a" * 60 + ".") * 5 + "test", "the domain is longer than 253 octets"),
        ("Ann <a@x.test", "the address has an unmatched < or >"),
        ("Ann <a@x.test> (work)", "the address has something after its >"),
        ("u@x..test", "the address has two dots in a row"),
        ("u@xn--zz.test", "the domain is not valid IDNA (Invalid A-label)"),
    ],
)
def test_parse_address_refuses_with_a_plain_reason(raw: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_address(raw)
    assert str(caught.value) == reason
    assert check_address(raw) == reason


def test_a_non_ascii_local_part_is_valid_and_flagged() -> None:
    checked = check_address("j\u00fcrgen@b\u00fccher.test")
    assert isinstance(checked, Address)
    assert checked.smtputf8
    assert checked.local == "j\u00fcrgen"
    assert check_address("info@xn--bcher-kva.test") == Address(
        "info@b\u00fccher.test", "info", "xn--bcher-kva.test", False
    )


def test_one_mailbox_has_one_key_however_it_is_written() -> None:
    forms = [
        "Ann@B\u00fccher.test",
        "ann@xn--bcher-kva.test",
        "ANN@XN--BCHER-KVA.TEST.",
        "Ann Lee <ann@b\u00fccher.test>",
        '"ann"@b\u00fccher.test',
    ]
    keys = {checked.key for checked in map(check_address, forms) if isinstance(checked, Address)}
    assert keys == {"ann@xn--bcher-kva.test"}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("The email address is too long (3 characters too many).", "the address is longer"),
        ("An email address cannot end with a period.", "the domain ends with a dot"),
        # Anything not in the table: lower case, no trailing period, no per-row counts.
        ("Something New happened (2 characters too many).", "something New happened"),
        (
            "The email address contains invalid characters before the @-sign: '\"'.",
            "the local part contains invalid characters: '\"'",
        ),
    ],
)
def test_plain_reason(message: str, reason: str) -> None:
    assert plain_reason(message).startswith(reason)


@pytest.mark.parametrize(
    ("domain", "ascii_form"),
    [
        ("b\u00fccher.test", "xn--bcher-kva.test"),
        ("B\u00fccher.Test.", "xn--bcher-kva.test"),
        ("  plain.test ", "plain.test"),
        ("\u00e9quipe.\u00e9xample.test", "xn--quipe-9ra.xn--xample-9ua.test"),
    ],
)
def test_ascii_domain(domain: str, ascii_form: str) -> None:
    assert ascii_domain(domain) == ascii_form


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("", "the domain is empty"),
        ("localhost", "the domain has no dot"),
        ("x_y.test", "the domain contains invalid characters: '_'"),
        ("a..test", "the domain has two dots in a row"),
        ("a@b.test", "the domain has more than one @"),
    ],
)
def test_ascii_domain_refuses(domain: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        ascii_domain(domain)
    assert str(caught.value) == reason


# ---- reading files: the stream ---------------------------------------------------------


def test_reader_is_a_lazy_generator(tmp_path: Path) -> None:
    summary = ImportSummary()
    missing = tmp_path / "missing.csv"
    rows = read_recipients(missing, summary)
    assert inspect.isgenerator(rows)
    # Nothing happens until the first row is asked for.
    with pytest.raises(RecipientsError, match="cannot read") as caught:
        next(rows)
    assert str(missing) in str(caught.value)


def test_summary_fills_as_rows_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, b"email,name\na@x.test,A\nb@x.test,B\nc@x.test,C\n")
    summary = ImportSummary()
    rows = read_recipients(path, summary)
    next(rows)
    # The layout is known before the first row; the counts grow row by row.
    assert (summary.rows, summary.valid) == (1, 1)
    assert (summary.encoding, summary.delimiter, summary.header) == ("utf-8", "comma", True)
    assert (summary.address_column, summary.columns) == ("email", ("name",))
    list(rows)
    assert counts(summary) == (3, 3, 0, 0, 0)


def test_a_large_file_is_streamed_past_the_sample(tmp_path: Path) -> None:
    lines = b"".join(b"user%d@d%d.test,Name %d\n" % (n, n % 50, n) for n in range(100_000))
    assert len(lines) > 2 * SAMPLE_BYTES
    rows, summary = read_bytes(tmp_path, b"email,name\n" + lines)
    assert counts(summary) == (100_000, 100_000, 0, 0, 0)
    assert rows[-1] == NewRecipient("user99999@d49.test", "d49.test", {"name": "Name 99999"})


# ---- encodings -------------------------------------------------------------------------

ZOE = "email;name\r\nzoe@x.test;Zo\u00eb Nguy\u1ec5n\r\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        pytest.param(ZOE.encode(), "utf-8", id="utf-8"),
        pytest.param(codecs.BOM_UTF8 + ZOE.encode(), "utf-8", id="utf-8-bom"),
        pytest.param(codecs.BOM_UTF16_LE + ZOE.encode("utf-16-le"), "utf-16-le", id="utf-16-le"),
        pytest.param(codecs.BOM_UTF16_BE + ZOE.encode("utf-16-be"), "utf-16-be", id="utf-16-be"),
        pytest.param(codecs.BOM_UTF32_LE + ZOE.encode("utf-32-le"), "utf-32-le", id="utf-32-le"),
    ],
)
def test_unicode_encodings(tmp_path: Path, data: bytes, encoding: str) -> None:
    rows, summary = read_bytes(tmp_path, data)
    assert rows == [NewRecipient("zoe@x.test", "x.test", {"name": "Zo\u00eb Nguy\u1ec5n"})]
    assert (summary.encoding, summary.encoding_guessed) == (encoding, False)
    assert summary.address_column == "email"  # no byte order mark in the first header


def test_bom_before_a_quoted_header_cell(tmp_path: Path) -> None:
    rows, _ = read_bytes(tmp_path, codecs.BOM_UTF8 + b'"email","name"\r\n"a@x.test","A"\r\n')
    assert rows == [NewRecipient("a@x.test", "x.test", {"name": "A"})]


def test_legacy_windows_export_is_detected(tmp_path: Path) -> None:
    data = "Email,Name\nfrancois@x.test,Fran\u00e7ois M\u00fcller\n".encode("cp1252")
    rows, summary = read_bytes(tmp_path, data)
    assert rows[0].fields == {"name": "Fran\u00e7ois M\u00fcller"}
    assert (summary.encoding, summary.encoding_guessed) == ("cp1252", True)
    assert "cp1252 (detected" in summary.describe()


def test_utf8_is_preferred_whenever_the_bytes_are_utf8(tmp_path: Path) -> None:
    # Valid UTF-8 that a legacy code page would also decode (as mojibake).
    _, summary = read_bytes(tmp_path, "email,name\na@x.test,Ren\u00e9e\n".encode())
    assert (summary.encoding, summary.encoding_guessed) == ("utf-8", False)


def test_the_caller_can_choose_the_encoding(tmp_path: Path) -> None:
    data = "email,name\na@x.test,\u00c7a \u00e7a\n".encode("latin-1")
    rows, summary = read_bytes(tmp_path, data, encoding="latin-1")
    assert rows[0].fields == {"name": "\u00c7a \u00e7a"}
    assert (summary.encoding, summary.encoding_guessed) == ("iso8859-1", False)
    # A byte order mark agrees with an override of its own family, and is skipped.
    rows, _ = read_bytes(tmp_path, codecs.BOM_UTF8 + b"email\na@x.test\n", encoding="UTF-8")
    assert [row.email for row in rows] == ["a@x.test"]


def test_an_unknown_encoding_is_a_clear_error(tmp_path: Path) -> None:
    message = refused(write(tmp_path, b"email\na@x.test\n"), encoding="klingon")
    assert "unknown encoding 'klingon'" in message
    assert "utf-8, cp1252" in message


def test_utf16_without_byte_order_mark_is_explained_and_can_be_chosen(tmp_path: Path) -> None:
    for codec in ("utf-16-le", "utf-16-be"):
        path = write(tmp_path, "email\r\nzo\u00eb@x.test\r\n".encode(codec))
        message = refused(path)
        assert "looks like UTF-16 text without a byte order mark" in message
        assert f"choose the encoding {codec}" in message
        rows, summary = read(path, encoding=codec)
        assert [row.email for row in rows] == ["zo\u00eb@x.test"]
        assert summary.encoding == codec


def test_a_late_undecodable_byte_names_its_line(tmp_path: Path) -> None:
    good = b"".join(b"user%d@x.test,Name %d\n" % (n, n) for n in range(70_000))
    assert len(good) > SAMPLE_BYTES  # past the sample the encoding was chosen from
    path = write(tmp_path, b"email,name\r\n" + good + b"late@x.test,Ren\xe9e\n")
    summary = ImportSummary()
    with pytest.raises(RecipientsError) as caught:
        for _ in read_recipients(path, summary):
            pass
    message = str(caught.value)
    assert f"{path} is not UTF-8 text at line 70002 (byte 0xE9)" in message
    assert "save it as CSV UTF-8" in message
    assert "choose its encoding" in message
    assert summary.valid > 60_000  # rows before it were streamed: the caller discards them


def test_a_late_undecodable_byte_in_a_legacy_file(tmp_path: Path) -> None:
    good = "".join(f"user{n}@x.test,Ren\u00e9e {n}\r\n" for n in range(60_000)).encode("cp1252")
    path = write(tmp_path, b"email,name\r\n" + good + b"late@x.test,\x81\r\n")  # 0x81: unset
    message = refused(path)
    assert "is not cp1252 text at line 60002 (byte 0x81)" in message


def test_a_lone_cr_file_counts_lines_like_csv(tmp_path: Path) -> None:
    good = b"".join(b"u%d@x.test\r" % n for n in range(80_000))
    path = write(tmp_path, b"email\r" + good + b"\xff@x.test\r")
    assert "at line 80002 " in refused(path)


# ---- delimiters, quoting, line ends ----------------------------------------------------


@pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), (";", "semicolon"),
                                                 ("\t", "tab"), ("|", "pipe")])  # fmt: skip
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_delimiters_and_line_ends(tmp_path: Path, delimiter: str, name: str, newline: str) -> None:
    lines = [["email", "name", "city"], ["a@x.test", "Ann", "Oslo"], ["b@x.test", "Bob", ""]]
    data = newline.join(delimiter.join(cells) for cells in lines) + newline
    rows, summary = read_bytes(tmp_path, data.encode())
    assert [(row.email, row.fields) for row in rows] == [
        ("a@x.test", {"name": "Ann", "city": "Oslo"}),
        ("b@x.test", {"name": "Bob", "city": ""}),
    ]
    assert summary.delimiter == name


def test_quoted_delimiters_and_line_breaks_are_data(tmp_path: Path) -> None:
    rows, summary = read_bytes(
        tmp_path,
        b'email;name;note\r\na@x.test;"Doe; Ann";"two\r\nlines, one cell"\r\n'
        b'b@x.test;"Say ""hi""";\r\n',
    )
    assert summary.delimiter == "semicolon"  # not fooled by the commas
    assert [row.fields for row in rows] == [
        {"name": "Doe; Ann", "note": "two\r\nlines, one cell"},  # kept as written
        {"name": 'Say "hi"', "note": ""},
    ]


@pytest.mark.parametrize("delimiter", [";", "semicolon", "SEMICOLON"])
def test_the_caller_can_choose_the_delimiter(tmp_path: Path, delimiter: str) -> None:
    # A single column whose cells hold commas: sniffing would see three columns.
    data = b"email;name\na@x.test;Doe, Ann, Dr\nb@x.test;Lee, Bob, Mr\n"
    rows, summary = read_bytes(tmp_path, data, delimiter=delimiter)
    assert [row.fields for row in rows] == [{"name": "Doe, Ann, Dr"}, {"name": "Lee, Bob, Mr"}]
    assert summary.delimiter == "semicolon"


def test_an_unusable_delimiter_is_a_clear_error(tmp_path: Path) -> None:
    message = refused(write(tmp_path, b"email\na@x.test\n"), delimiter=",,")
    assert "the delimiter ',,' cannot be used" in message


def test_an_unclosed_quote_is_a_clear_error(tmp_path: Path) -> None:
    # The quote swallows the rest of the file until the field is over the csv limit.
    rest = b"".join(b"u%d@x.test,name\n" % n for n in range(20_000))
    path = write(tmp_path, b'email,name\na@x.test,"Ann\n' + rest)
    message = refused(path)
    assert "check the quotes" in message
    assert "in the record from line 2" in message
    assert str(path) in message


# ---- header and address column ---------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["email", "Email", "EMAIL", " email ", "E-Mail", "e-mail", "mail", "Mail",
     "Email Address", "email address", "EMAIL  ADDRESS", "email_address", "E-mail Address",
     "Courriel", "correo", "Correo electr\u00f3nico", "Adresse e-mail", "E-Mail-Adresse",
     "Adresse"],
)  # fmt: skip
def test_address_column_is_found_by_name(tmp_path: Path, header: str) -> None:
    rows, summary = read_bytes(tmp_path, f"Name,{header},City\nAnn,ann@x.test,Oslo\n".encode())
    assert [row.email for row in rows] == ["ann@x.test"]
    assert rows[0].fields == {"name": "Ann", "city": "Oslo"}
    assert summary.address_column == header


def test_email_is_preferred_over_other_address_names(tmp_path: Path) -> None:
    rows, _ = read_bytes(tmp_path, b"adresse,mail,email\n1 rue X,wrong@x.test,right@x.test\n")
    assert rows[0].email == "right@x.test"
    assert rows[0].fields == {"adresse": "1 rue X", "mail": "wrong@x.test"}


def test_an_unnamed_address_column_is_found_by_its_cells(tmp_path: Path) -> None:
    data = b"Name,Contact,City\nAnn,ann@x.test,Oslo\nBob,bob@x.test,Rome\nCid,,Bern\n"
    rows, summary = read_bytes(tmp_path, data)
    assert [row.email for row in rows] == ["ann@x.test", "bob@x.test", ""]
    assert rows[2].reason == "the address is empty"
    assert (summary.address_column, summary.columns) == ("Contact", ("name", "city"))


def test_a_first_row_with_an_address_is_data(tmp_path: Path) -> None:
    rows, summary = read_bytes(tmp_path, b"Ann,ann@x.test\nBob,Bob <bob@x.test>\n")
    assert [(row.email, row.fields) for row in rows] == [
        ("ann@x.test", {"column_1": "Ann"}),
        ("bob@x.test", {"column_1": "Bob"}),
    ]
    assert summary.header is False
    assert (summary.address_column, summary.columns) == ("column_2", ("column_1",))
    assert summary.rows == 2


@pytest.mark.parametrize("chosen", ["Work", "work", 2])
def test_the_caller_can_choose_the_address_column(tmp_path: Path, chosen: str | int) -> None:
    data = b"Name,Email,Work\nAnn,ann@home.test,ann@work.test\n"
    rows, summary = read_bytes(tmp_path, data, address_column=chosen)
    assert rows == [
        NewRecipient("ann@work.test", "work.test", {"name": "Ann", "email": "ann@home.test"})
    ]
    assert summary.address_column == "Work"


def test_choosing_a_column_that_does_not_exist(tmp_path: Path) -> None:
    path = write(tmp_path, b"Name,Email\nAnn,ann@x.test\n")
    message = refused(path, address_column="Mobile")
    assert "has no column 'Mobile' (its columns: Name, Email)" in message
    assert "has no column 5" in refused(path, address_column=5)


def test_no_address_column_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"Name,Address,City\nAnn,1 Main St,Oslo\nBob,2 High St,Rome\n")
    message = refused(path)
    assert "no email column" in message
    assert "Name, Address, City" in message  # what it did find
    assert "'email'" in message and "choose it" in message  # what to do


def test_a_column_with_few_addresses_is_not_guessed(tmp_path: Path) -> None:
    data = b"Name,Note\nAnn,write to ann@x.test\nBob,ok\nCid,bob@x.test\nDan,-\n"
    assert "no email column" in refused(write(tmp_path, data))


def test_header_cells_empty_or_repeated(tmp_path: Path) -> None:
    rows, summary = read_bytes(tmp_path, b"email,Name,,name,NAME\na@x.test,1,2,3,4\n")
    assert rows[0].fields == {"name": "1", "column_3": "2", "name_2": "3", "name_3": "4"}
    assert summary.columns == ("name", "column_3", "name_2", "name_3")


# ---- rows ------------------------------------------------------------------------------


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    rows, summary = read_bytes(tmp_path, b"email,name\r\n")
    assert rows == []
    assert counts(summary) == (0, 0, 0, 0, 0)


def test_blank_rows_are_skipped_not_counted(tmp_path: Path) -> None:
    rows, summary = read_bytes(tmp_path, b"\n\nemail,name\n\n,\n  ,  \na@x.test,A\n\n")
    assert [row.email for row in rows] == ["a@x.test"]
    assert counts(summary) == (1, 1, 0, 0, 0)


def test_short_rows_get_empty_fields(tmp_path: Path) -> None:
    rows, summary = read_bytes(tmp_path, b"name,email,city\nAnn,ann@x.test\nCid\n")
    assert rows[0] == NewRecipient("ann@x.test", "x.test", {"name": "Ann", "city": ""})
    # A row too short to reach the address column is an invalid row, not an error.
    assert (rows[1].status, rows[1].email, rows[1].reason) == (
        Status.INVALID,
        "",
        "the address is empty",
    )
    assert rows[1].fields == {"name": "Cid", "city": ""}
    assert counts(summary) == (2, 1, 1, 0, 0)


def test_a_row_longer_than_the_header_is_invalid(tmp_path: Path) -> None:
    # "Doe, John" unquoted shifts the city: sending would merge the wrong fields.
    data = b"email,name,city\na@x.test,Doe, John,Oslo\nb@x.test,Bob,Rome,,\n"
    rows, summary = read_bytes(tmp_path, data)
    assert (rows[0].status, rows[0].email, rows[0].domain) == (Status.INVALID, "a@x.test", "")
    assert rows[0].reason == "the row has more cells than the header row"
    assert rows[0].fields == {"name": "Doe", "city": " John"}
    # Extra empty cells (trailing delimiters) are ignored.
    assert rows[1] == NewRecipient("b@x.test", "x.test", {"name": "Bob", "city": "Rome"})
    assert summary.invalid_reasons == {"the row has more cells than the header row": 1}


def test_invalid_rows_are_kept_as_written_with_a_reason(tmp_path: Path) -> None:
    rows, summary = read_bytes(
        tmp_path,
        b'name,email\nA,"a@x.test\r\nRCPT TO:<x@elsewhere.test>"\nB,no-domain\n'
        b"C,c@-bad-.test\nD,d@x.test\nE,  no-domain \n",
    )
    assert [(row.status, row.domain) for row in rows] == [
        (Status.INVALID, ""),
        (Status.INVALID, ""),
        (Status.INVALID, ""),
        (Status.QUEUED, "x.test"),
        (Status.INVALID, ""),
    ]
    assert rows[0].email == "a@x.test\r\nRCPT TO:<x@elsewhere.test>"  # shown as given
    assert rows[4].email == "  no-domain "
    assert [row.reason for row in rows if row.status is Status.INVALID] == [
        "the address contains a line break",
        "the address has no @",
        "the domain starts with a hyphen",
        "the address has no @",
    ]
    assert [row.fields for row in rows] == [{"name": n} for n in "ABCDE"]
    assert counts(summary) == (5, 1, 4, 0, 0)
    assert summary.invalid_reasons == {
        "the address contains a line break": 1,
        "the address has no @": 2,
        "the domain starts with a hyphen": 1,
    }


def test_line_breaks_in_other_cells_are_data(tmp_path: Path) -> None:
    rows, _ = read_bytes(tmp_path, b'email,name\na@x.test,"Eve\r\nBcc: v@elsewhere.test"\n')
    assert rows == [NewRecipient("a@x.test", "x.test", {"name": "Eve\r\nBcc: v@elsewhere.test"})]


def test_idn_domains_become_a_labels(tmp_path: Path) -> None:
    rows, summary = read_bytes(
        tmp_path, "email\nj\u00fcrgen@b\u00fccher.test\nx@\u00fc\u00fc.test\n".encode()
    )
    assert [(row.email, row.domain) for row in rows] == [
        ("j\u00fcrgen@b\u00fccher.test", "xn--bcher-kva.test"),
        ("x@\u00fc\u00fc.test", "xn--tdaa.test"),
    ]
    assert summary.smtputf8 == 1  # jürgen: the local part needs SMTPUTF8; the domain not


def test_case_insensitive_duplicates_are_dropped_and_counted(tmp_path: Path) -> None:
    rows, summary = read_bytes(
        tmp_path,
        b"email,n\na@x.test,1\nA@X.TEST,2\n  a@x.test ,3\nAnn <a@x.test>,4\nb@x.test,5\n"
        b"a@x.test.,6\n",
    )
    assert [(row.email, row.fields["n"]) for row in rows] == [("a@x.test", "1"), ("b@x.test", "5")]
    assert counts(summary) == (6, 2, 0, 4, 0)


@pytest.mark.parametrize(
    "second",
    [
        pytest.param("c@xn--bcher-kva.test", id="u-label-then-a-label"),
        pytest.param("C@B\u00dcCHER.TEST", id="upper-case"),
        pytest.param("c@b\u00fccher.test.", id="trailing-dot"),
    ],
)
def test_same_mailbox_written_two_ways_is_a_duplicate(tmp_path: Path, second: str) -> None:
    rows, summary = read_bytes(tmp_path, f"email\nc@b\u00fccher.test\n{second}\n".encode())
    assert len(rows) == 1
    assert summary.duplicates == 1


def test_invalid_rows_are_never_deduplicated(tmp_path: Path) -> None:
    rows, summary = read_bytes(tmp_path, b"email\nbad\nbad\n")
    assert [row.status for row in rows] == [Status.INVALID, Status.INVALID]
    assert counts(summary) == (2, 0, 2, 0, 0)


def test_suppressed_rows_are_kept_with_the_entry(tmp_path: Path) -> None:
    suppression = SuppressionList(["Ann@X.test", "@b\u00fccher.test"])
    data = b"email\nann@x.test\nbob@x.test\ncid@xn--bcher-kva.test\nANN@x.test\n"
    rows, summary = read_bytes(tmp_path, data, suppression=suppression)
    assert [(row.email, row.status, row.reason) for row in rows] == [
        ("ann@x.test", Status.SUPPRESSED, "on the suppression list (entry Ann@X.test)"),
        ("bob@x.test", Status.QUEUED, ""),
        ("cid@b\u00fccher.test", Status.SUPPRESSED,
         "on the suppression list (entry @b\u00fccher.test)"),
    ]  # fmt: skip
    assert rows[2].domain == "xn--bcher-kva.test"
    assert counts(summary) == (4, 1, 0, 1, 2)


# ---- files that are not CSV ------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"  \r\n\r\n", b",,\n ,\t\n"])
def test_empty_file_is_a_clear_error(tmp_path: Path, data: bytes) -> None:
    assert "is empty: it needs a header row" in refused(write(tmp_path, data))


def test_a_file_without_line_breaks_is_not_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, b"email," + b"x" * SAMPLE_BYTES)
    assert "has no line break in its first MiB" in refused(path)


XLSX = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00b\xee\x9dh^\x01\x00\x00\x90\x04\x00\x00"
XLSX += b"\x13\x00\x08\x02[Content_Types].xml \xa2\x04\x02(\xa0\x00\x02xl/workbook.xml"


@pytest.mark.parametrize(
    ("data", "what", "advice"),
    [
        (XLSX, "is an Excel workbook, not CSV", "in Excel use File > Save As > CSV UTF-8"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0", "Excel 97-2003 workbook", "CSV UTF-8"),
        (b"PK\x03\x04\x14\0\0\0\x08\0notes.txt", "is a ZIP archive, not CSV", "extract"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "is a PNG image, not CSV", "CSV UTF-8"),
        (b"%PDF-1.7\n", "is a PDF document, not CSV", "CSV UTF-8"),
        (b"email,name\na@x.test,A\0\0\0\n", "is not a text file (it holds NUL bytes)", "UTF-8"),
    ],
)
def test_binary_files_are_refused_clearly(
    tmp_path: Path, data: bytes, what: str, advice: str
) -> None:
    path = write(tmp_path, data)
    message = refused(path)
    assert f"{path} " in message
    assert what in message
    assert advice in message


def rows_past_the_sample() -> bytes:
    """A plain list longer than the sample, so that what follows it is only streamed."""
    data = b"email,name\n" + b"".join(b"u%d@x.test,N\n" % n for n in range(SAMPLE_BYTES // 10))
    assert len(data) > SAMPLE_BYTES
    return data


def test_a_2gb_list_is_refused_before_a_row_is_read(tmp_path: Path) -> None:
    """Sparse: the file's first MiB is a real list, the rest a hole; the refusal must come
    from the size, at once, not after minutes of rows."""
    path = write(tmp_path, rows_past_the_sample())
    with path.open("r+b") as handle:
        handle.truncate(2 << 30)
    with pytest.raises(RecipientsError) as previewed:
        preview_csv(path)  # the window's first look says the same
    for message in (refused(path), str(previewed.value)):
        assert f"{path} is 2,048 MiB; MX Mailer reads lists of at most 256 MiB" in message
        assert "split the list into several files" in message


def test_the_size_limit_is_inclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"email,name\nann@x.test,Ann\n"
    path = write(tmp_path, data)
    monkeypatch.setattr(recipients, "MAX_FILE_BYTES", len(data))
    assert [row.email for row in read(path)[0]] == ["ann@x.test"]
    monkeypatch.setattr(recipients, "MAX_FILE_BYTES", len(data) - 1)
    assert "split the list" in refused(path)


def test_binary_data_past_the_sample_is_named_as_such(tmp_path: Path) -> None:
    """Regression (fuzzing): NULs after the first MiB used to read as one huge field and
    were reported as "field larger than field limit: check the quotes"."""
    path = write(tmp_path, rows_past_the_sample() + b"\0" * 300_000)
    message = refused(path)
    assert "holds NUL bytes from line 104859" in message
    assert "quotes" not in message


def test_a_sparse_2gb_file_of_nuls_is_refused_as_binary_at_once(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:
        handle.truncate(2 << 30)
    assert "is not a text file (it holds NUL bytes)" in refused(path)


# ---- preview and header ----------------------------------------------------------------


def test_preview_shows_the_file_as_it_will_be_read(tmp_path: Path) -> None:
    data = "Name;E-Mail;Stadt\r\nZo\u00eb;zoe@x.test;K\u00f6ln\r\n".encode("cp1252")
    data += b"".join(b"N%d;n%d@x.test;Bonn\r\n" % (n, n) for n in range(30))
    path = write(tmp_path, data)
    preview = preview_csv(path, rows=3)
    assert preview == CsvPreview(
        encoding="cp1252",
        encoding_guessed=True,
        delimiter=";",
        header=True,
        columns=("Name", "E-Mail", "Stadt"),
        fields=("name", "e-mail", "stadt"),
        rows=(
            ("Zo\u00eb", "zoe@x.test", "K\u00f6ln"),
            ("N0", "n0@x.test", "Bonn"),
            ("N1", "n1@x.test", "Bonn"),
        ),
        address_column=1,
    )
    assert preview.delimiter_name == "semicolon"
    _, summary = read(path)
    assert (summary.encoding, summary.delimiter, summary.address_column) == (
        "cp1252",
        "semicolon",
        "E-Mail",
    )


def test_preview_with_choices_and_without_an_address_column(tmp_path: Path) -> None:
    path = write(tmp_path, "a|b\n1,2|3\n".encode("utf-16"))
    preview = preview_csv(path, delimiter=",", encoding="utf-16")
    assert (preview.delimiter, preview.columns, preview.rows) == (",", ("a|b",), (("1", "2|3"),))
    assert preview.address_column is None  # the dialog asks the user
    assert preview_csv(path).columns == ("a", "b")


def test_preview_of_a_file_without_header(tmp_path: Path) -> None:
    preview = preview_csv(write(tmp_path, b"ann@x.test;Ann\nbob@x.test;Bob\n"))
    assert (preview.header, preview.columns, preview.address_column) == (
        False,
        ("column_1", "column_2"),
        0,
    )
    assert preview.rows == (("ann@x.test", "Ann"), ("bob@x.test", "Bob"))


def test_preview_refuses_what_the_import_refuses(tmp_path: Path) -> None:
    with pytest.raises(RecipientsError, match="Excel workbook"):
        preview_csv(write(tmp_path, XLSX))


def test_read_header_gives_the_merge_fields(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfFirst Name;E-Mail;City\r\nAnn;a@x.test;Oslo\r\n")
    assert read_header(path) == ["first_name", "city"]
    assert read_header(path, address_column="City") == ["first_name", "e-mail"]
    with pytest.raises(RecipientsError, match="no email column"):
        read_header(write(tmp_path, b"name,city\nAnn,Oslo\n"))


# ---- the summary -----------------------------------------------------------------------


def test_describe(tmp_path: Path) -> None:
    data = "email,name\na@x.test,A\nA@x.test,A\nbad,B\nworse,C\nj\u00fcrgen@x.test,J\n".encode()
    _, summary = read_bytes(tmp_path, data, suppression=SuppressionList(["@x.test"]))
    assert summary.describe().splitlines() == [
        "read 5 rows: 0 to send, 2 invalid, 2 suppressed, 1 duplicates dropped",
        "file: utf-8, comma-separated, a header row, addresses in column 'email'",
        "merge fields: name",
        "invalid: 2 x the address has no @",
    ]
    _, summary = read_bytes(tmp_path, data)
    assert (
        "1 of them with a non-ASCII local part: only servers that offer SMTPUTF8 accept those"
        in summary.describe()
    )


def test_describe_lists_the_commonest_reasons_first() -> None:
    summary = ImportSummary(rows=9, invalid=9, encoding="utf-8", delimiter="tab")
    summary.invalid_reasons = {f"reason {n}": n for n in range(1, 8)}
    lines = summary.describe().splitlines()
    assert lines[3:] == [
        "invalid: 7 x reason 7",
        "invalid: 6 x reason 6",
        "invalid: 5 x reason 5",
        "invalid: 4 x reason 4",
        "invalid: 3 x reason 3",
        "invalid: 3 x other reasons",
    ]


# ---- the shared samples: every file, exact counts ---------------------------------------


def test_shared_simple_csv() -> None:
    rows, summary = read(shared("simple.csv"))
    # 30 data rows, each a distinct plain address on a lab domain: all valid.
    assert counts(summary) == (30, 30, 0, 0, 0)
    assert (summary.encoding, summary.delimiter, summary.header) == ("utf-8", "comma", True)
    assert (summary.address_column, summary.columns) == (
        "email",
        ("first_name", "last_name", "city"),
    )
    assert summary.smtputf8 == 0  # the names are not ASCII, the addresses are
    assert len(rows) == 30
    assert all(row.status is Status.QUEUED for row in rows)
    assert {row.domain for row in rows} == {"plain.test", "grey.test", "equal.test"}
    assert rows[0] == NewRecipient(
        "user0@plain.test",
        "plain.test",
        {"first_name": "Ada", "last_name": "Lovelace", "city": "London"},
    )
    assert rows[3].fields == {
        "first_name": "Zo\u00eb",
        "last_name": "Nguy\u1ec5n",
        "city": "H\u00e0 N\u1ed9i",
    }


def test_shared_excel_semicolon_bom_csv() -> None:
    rows, summary = read(shared("excel-semicolon-bom.csv"))
    # 3 data rows, 3 valid; JÜRGEN@ is an upper-case non-ASCII local part (SMTPUTF8).
    assert counts(summary) == (3, 3, 0, 0, 0)
    assert summary.smtputf8 == 1
    assert (summary.encoding, summary.delimiter) == ("utf-8", "semicolon")  # BOM skipped
    assert (summary.address_column, summary.columns) == ("E-Mail", ("vorname", "nachname", "firma"))
    assert [row.email for row in rows] == [
        "max.mustermann@plain.test",
        "erika@grey.test",
        "J\u00dcRGEN@plain.test",
    ]
    assert rows[0].fields == {
        "vorname": "Max",
        "nachname": "Mustermann",
        "firma": "M\u00fcller & S\u00f6hne GmbH",
    }
    assert rows[1].fields["firma"] == "B\u00e4ckerei; Konditorei"  # quoted ;
    assert rows[2].fields == {"vorname": "J\u00fcrgen", "nachname": "Gro\u00df", "firma": ""}


def test_shared_excel_csv_with_lf_line_ends(tmp_path: Path) -> None:
    data = shared("excel-semicolon-bom.csv").read_bytes().replace(b"\r\n", b"\n")
    rows, summary = read_bytes(tmp_path, data)
    assert counts(summary) == (3, 3, 0, 0, 0)
    assert rows[1].fields["firma"] == "B\u00e4ckerei; Konditorei"


def test_shared_windows_1252_csv() -> None:
    rows, summary = read(shared("windows-1252.csv"))
    # 3 data rows, 3 valid ASCII addresses; the names are cp1252 (ç, Ç, é, “ ”, €).
    assert counts(summary) == (3, 3, 0, 0, 0)
    assert (summary.encoding, summary.encoding_guessed) == ("cp1252", True)
    assert (summary.address_column, summary.columns) == ("Email Address", ("name",))
    assert [(row.email, row.fields["name"]) for row in rows] == [
        ("francois@plain.test", "Fran\u00e7ois \u00c7a"),
        ("renee@plain.test", "Ren\u00e9e \u201cQuotes\u201d Dupr\u00e9"),
        ("jose@plain.test", "Jos\u00e9 \u20acuro"),
    ]


def test_shared_messy_csv() -> None:
    """Each trap in messy.csv (its Note column), worked out by hand:

    19 data records; the ``,,`` record is blank: skipped, not counted -> 18 rows.
    valid (11): Doe/John (quoted comma), Jane (spaces trimmed), Bob (newline in the
      name), Mallory, Eve (CR/LF in a merge field is data), Trailing (one trailing dot
      dropped), Quoted (quoted local part), Plus, IDN (jürgen@bücher.test, SMTPUTF8),
      IDN2 (info@ on the same domain in punycode: another mailbox), Display (Name <addr>).
    duplicates (1): JANE@PLAIN.TEST is Jane's mailbox: dropped, not yielded.
    invalid (6): Trent (CR/LF in the address), NoAt, Double (two @), Dots (two dots),
      Empty (no address), Long (81-octet local part).
    suppressed (0): no list given.
    """
    rows, summary = read(shared("messy.csv"))
    assert counts(summary) == (18, 11, 6, 1, 0)
    assert summary.smtputf8 == 1
    assert len(rows) == 17  # the duplicate is not yielded
    assert summary.invalid_reasons == {
        "the address contains a line break": 1,
        "the address has no @": 1,
        "the address has more than one @": 1,
        "the address has two dots in a row": 1,
        "the address is empty": 1,
        "the local part is longer than 64 octets": 1,
    }
    assert (summary.address_column, summary.columns) == ("E-mail", ("name", "note"))
    by_name = {row.fields["name"]: row for row in rows}
    assert "JANE (dup)" not in by_name

    def valid(name: str, email: str, domain: str = "plain.test") -> None:
        row = by_name[name]
        assert (row.status, row.email, row.domain, row.reason) == (
            Status.QUEUED,
            email,
            domain,
            "",
        ), name

    def invalid(name: str, reason: str) -> None:
        row = by_name[name]
        assert (row.status, row.domain, row.reason) == (Status.INVALID, "", reason), name

    valid("Doe, John", "john.doe@plain.test")
    valid("Jane", "jane@plain.test")
    valid("Bob\r\nSmith", "bob@plain.test")
    valid("Mallory", "mallory@plain.test")
    valid("Eve\r\nBcc: victim@elsewhere.test", "eve@plain.test")
    valid("Trailing", "trailing-dot@plain.test")
    valid("Quoted", '"quoted local"@plain.test')
    valid("Plus", "tag+news@plain.test")
    valid("IDN", "j\u00fcrgen@b\u00fccher.test", "xn--bcher-kva.test")
    valid("IDN2", "info@b\u00fccher.test", "xn--bcher-kva.test")
    valid("Display", "carol@plain.test")
    invalid("Trent", "the address contains a line break")
    invalid("NoAt", "the address has no @")
    invalid("Double", "the address has more than one @")
    invalid("Dots", "the address has two dots in a row")
    invalid("Empty", "the address is empty")
    invalid("Long", "the local part is longer than 64 octets")
    assert by_name["Trent"].email == "trent@plain.test\r\nRCPT TO:<x@elsewhere.test>"
    # The one rule that matters for safety: no valid row has CR, LF or NUL in its address.
    for row in rows:
        if row.status is not Status.INVALID:
            assert not any(ch in row.email for ch in "\r\n\0"), row.email
    assert all(set(row.fields) == {"name", "note"} for row in rows)


def test_every_shared_file_is_covered() -> None:
    """A new sample must get its own test with its counts."""
    if not SHARED_RECIPIENTS.exists():
        pytest.skip(f"{SHARED_RECIPIENTS} not present")
    assert sorted(path.name for path in SHARED_RECIPIENTS.iterdir()) == [
        "excel-semicolon-bom.csv",
        "messy.csv",
        "simple.csv",
        "windows-1252.csv",
    ]


# ---- regressions from review ------------------------------------------------------------


def ten_rows_with_an_unclosed_quote() -> bytes:
    """Row u2 opens a quote it never closes; the next quote is in row u6's name."""
    lines = ["email,name,note"] + [f"u{n}@plain.test,User{n},n" for n in range(10)]
    lines[3] = 'u2@plain.test,"Bob,unterminated'  # line 4
    lines[7] = 'u6@plain.test,Ann "quoted" mid,ok'  # line 8
    return ("\n".join(lines) + "\n").encode()


def test_an_unclosed_quote_that_swallows_rows_is_refused(tmp_path: Path) -> None:
    # Read as it was, rows u3..u6 vanished into u2's name and the summary said nothing.
    path = write(tmp_path, ten_rows_with_an_unclosed_quote())
    message = refused(path)
    assert f"{path}: a quote opened on line 4 is not closed before line 8" in message
    assert "check the quotes on line 4" in message
    # The import dialog refuses it too, before the user picks anything.
    with pytest.raises(RecipientsError, match="quote opened on line 4"):
        preview_csv(path)


def test_an_unclosed_quote_past_the_sample_is_refused_while_streaming(tmp_path: Path) -> None:
    good = b"".join(b"user%d@x.test,Name %d\n" % (n, n) for n in range(70_000))
    assert len(good) > SAMPLE_BYTES
    rest = b'late@x.test,"Ann\nu1@x.test,Bob\nu2@x.test,Cid\n'  # never closed: to the end
    path = write(tmp_path, b"email,name\n" + good + rest)
    message = refused(path)
    assert "a quote opened on line 70002 is not closed before line 70004" in message
    assert "check the quotes on line 70002" in message


def test_a_quote_open_over_the_field_limit_past_the_sample_names_where_it_opened(
    tmp_path: Path,
) -> None:
    good = b"".join(b"user%d@x.test,Name %d\n" % (n, n) for n in range(70_000))
    rest = b"".join(b"u%d@x.test,name\n" % n for n in range(20_000))
    path = write(tmp_path, b"email,name\n" + good + b'late@x.test,"Ann\n' + rest)
    assert "check the quotes on line 70002" in refused(path)


@pytest.mark.parametrize(
    ("data", "opened", "closed"),
    [
        # One column: every swallowed line is an address.
        (b'email\na@x.test\n"b@x.test\nc@x.test\nd@x.test"\ne@x.test\n', 3, 5),
        # Semicolons, CRLF, the quote in a later cell.
        (b'name;email;city\r\nAnn;a@x.test;"Oslo\r\nBob;b@x.test;Rome\r\n', 2, 3),
        # A second multi-line cell after a legitimate one in the same record.
        (b'email,name,note\na@x.test,"Ann\nLee","x\nb@x.test,Bob,y\n', 3, 4),
    ],
)
def test_unclosed_quotes_in_other_shapes(
    tmp_path: Path, data: bytes, opened: int, closed: int
) -> None:
    message = refused(write(tmp_path, data))
    assert f"a quote opened on line {opened} is not closed before line {closed}" in message


def test_quoted_line_breaks_that_are_not_rows_are_data(tmp_path: Path) -> None:
    # A note that holds an address on a line of its own, and an address cell whose second
    # line is a display-name form: neither line is a row of this three-column file.
    data = (
        b'email,name,note\na@x.test,Ann,"write to\nann@work.test"\n'
        b'"Ann <b@x.test>\nRCPT TO:<x@elsewhere.test>",Bob,\nc@x.test,Cid,\n'
    )
    rows, summary = read_bytes(tmp_path, data)
    assert counts(summary) == (3, 2, 1, 0, 0)
    assert rows[0].fields == {"name": "Ann", "note": "write to\nann@work.test"}
    assert rows[1].reason == "the address contains a line break"


def legacy_list(
    names: list[str], rows: int, codec: str = "cp1252"
) -> tuple[bytes, list[tuple[str, str]]]:
    """A legacy export of ``rows`` rows cycling through ``names`` (first, last)."""
    pairs = [(names[n % len(names)], names[(3 * n + 1) % len(names)]) for n in range(rows)]
    text = "email,first_name,last_name\r\n" + "".join(
        f"user{n}@example.test,{first},{last}\r\n" for n, (first, last) in enumerate(pairs)
    )
    return text.encode(codec), pairs


FRENCH = ["H\u00e9l\u00e8ne"]
SPANISH = ["N\u00fa\u00f1ez", "Pe\u00f1a", "Jos\u00e9", "Mar\u00eda", "Garc\u00eda", "Ruiz"]
NORDIC = ["M\u00f8lgaard", "\u00c5sa", "S\u00f8ren", "\u00c6r\u00f8", "Hansen"]


@pytest.mark.parametrize(
    ("names", "rows"),
    [
        pytest.param(FRENCH, 1, id="french-1"),
        pytest.param(SPANISH, 3, id="spanish-3"),
        pytest.param(SPANISH, 30, id="spanish-30"),
        pytest.param(SPANISH, 300, id="spanish-300"),
        pytest.param(NORDIC, 3, id="nordic-3"),
        pytest.param(NORDIC, 300, id="nordic-300"),
    ],
)
def test_western_cp1252_exports_are_detected_as_cp1252(
    tmp_path: Path, names: list[str], rows: int
) -> None:
    # The detector ties cp1250 (Peńa, Sřren) or big5 (H幨鋝e) with cp1252 on these.
    data, pairs = legacy_list(names, rows)
    found, summary = read_bytes(tmp_path, data)
    assert (summary.encoding, summary.encoding_guessed) == ("cp1252", True)
    assert [(row.fields["first_name"], row.fields["last_name"]) for row in found] == pairs


@pytest.mark.parametrize(
    ("codec", "name"),
    [
        ("cp1251", "\u0418\u0432\u0430\u043d \u041f\u0435\u0442\u0440\u043e\u0432"),
        ("cp932", "\u5c71\u7530\u592a\u90ce"),
    ],
)
def test_non_latin_legacy_exports_are_not_taken_for_cp1252(
    tmp_path: Path, codec: str, name: str
) -> None:
    data = f"email,name\na@x.test,{name}\nb@x.test,{name[::-1]}\n".encode(codec)
    rows, summary = read_bytes(tmp_path, data)
    assert summary.encoding == codec
    assert [row.fields["name"] for row in rows] == [name, name[::-1]]


def test_a_hungarian_cp1250_export_keeps_its_double_acute_letters(tmp_path: Path) -> None:
    # cp1250 and cp1252 score alike; they differ only on ő ű (õ û in cp1252).
    names = ["Gy\u0151ri", "F\u0171zfa", "Kov\u00e1cs", "Szab\u00f3", "T\u00f3th"]
    data, pairs = legacy_list(names, 30, "cp1250")
    rows, summary = read_bytes(tmp_path, data)
    assert summary.encoding == "cp1250"
    assert [(row.fields["first_name"], row.fields["last_name"]) for row in rows] == pairs


def test_a_polish_cp1250_export_reads_right_when_its_encoding_is_chosen(tmp_path: Path) -> None:
    names = ["\u0141\u00f3d\u017a", "\u015awi\u0119toch\u0142owice", "\u017b\u00f3\u0142\u0107"]
    data = "email,name\r\n" + "".join(f"u{n}@x.test,{name}\r\n" for n, name in enumerate(names))
    path = write(tmp_path, data.encode("cp1250"))
    rows, summary = read(path, encoding="cp1250")
    assert [row.fields["name"] for row in rows] == names
    assert (summary.encoding, summary.encoding_guessed) == ("cp1250", False)
    # Known limit: on a sample this short the detector may name cp1252 (the summary says
    # the encoding was detected and the names need a look); --encoding settles it.
    _, detected = read(path)
    assert detected.encoding_guessed


def test_a_headerless_file_whose_first_address_is_invalid_keeps_that_row(tmp_path: Path) -> None:
    data = b"not-an-address@,Ann\nbob@plain.test,Bob\ncarol@plain.test,Carol\n"
    rows, summary = read_bytes(tmp_path, data)
    assert counts(summary) == (3, 2, 1, 0, 0)
    assert summary.header is False
    assert (summary.address_column, summary.columns) == ("column_1", ("column_2",))
    assert (rows[0].email, rows[0].status, rows[0].fields) == (
        "not-an-address@",
        Status.INVALID,
        {"column_2": "Ann"},
    )
    assert rows[0].reason == "the address has nothing after the @"


@pytest.mark.parametrize(
    "first",
    [b"ann@@plain.test;Ann", b"Ann;Ann <ann@@plain.test>"],  # in the address column
)
def test_a_first_row_with_a_broken_address_is_data(tmp_path: Path, first: bytes) -> None:
    data = first + b"\nbob@plain.test;Bob\ncarol@plain.test;Carol\n"
    if first.startswith(b"Ann;"):
        data = first + b"\nBob;bob@plain.test\nCarol;carol@plain.test\n"
    _, summary = read_bytes(tmp_path, data)
    assert (summary.header, counts(summary)) == (False, (3, 2, 1, 0, 0))


def test_a_header_row_is_still_a_header(tmp_path: Path) -> None:
    _, summary = read_bytes(tmp_path, b"email,name\nbob@plain.test,Bob\nbad@,Cid\n")
    assert summary.header is True
    assert (summary.address_column, summary.columns) == ("email", ("name",))
    assert counts(summary) == (2, 1, 1, 0, 0)


@pytest.mark.parametrize("codec", ["rot13", "base64", "hex", "zlib", "idna", "punycode"])
def test_a_codec_that_is_not_a_file_encoding_is_refused(tmp_path: Path, codec: str) -> None:
    path = write(tmp_path, b"email,name\na@x.test,Ann\n")
    message = refused(path, encoding=codec)
    assert f"{codec!r} is not a text encoding" in message
    with pytest.raises(RecipientsError, match="not a text encoding"):
        preview_csv(path, encoding=codec)


@pytest.mark.parametrize(("codec", "wide"), [("utf-16", "utf-16"), ("UTF-32", "utf-32")])
def test_utf16_or_32_chosen_for_a_utf8_file_is_a_clear_error(
    tmp_path: Path, codec: str, wide: str
) -> None:
    path = write(tmp_path, "email,name\na@x.test,Zo\u00eb\n".encode())
    message = refused(path, encoding=codec)
    assert f"does not look like {wide.upper()}" in message
    assert f"{wide}-le or {wide}-be" in message


@pytest.mark.parametrize(
    ("generic", "codec"),
    [("utf-16", "utf-16-le"), ("utf-16", "utf-16-be"), ("utf-32", "utf-32-le"),
     ("utf_32", "utf-32-be")],
)  # fmt: skip
def test_utf16_or_32_without_a_mark_is_read_in_the_byte_order_it_has(
    tmp_path: Path, generic: str, codec: str
) -> None:
    path = write(tmp_path, "email,name\r\nzo\u00eb@x.test,Zo\u00eb\r\n".encode(codec))
    rows, summary = read(path, encoding=generic)
    assert [(row.email, row.fields) for row in rows] == [("zo\u00eb@x.test", {"name": "Zo\u00eb"})]
    assert summary.encoding == codec


def test_utf16_chosen_for_a_text_without_ascii_is_a_clear_error(tmp_path: Path) -> None:
    # No NUL bytes to tell the byte order by: the user must say which.
    path = write(tmp_path, ("\u5c71\u7530" * 40 + "\n").encode("utf-16-le"))
    assert "utf-16-le or utf-16-be" in refused(path, encoding="utf-16")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('a"b@x.test', 'the address has an unmatched "'),
        ('"ab@x.test', 'the address has an unmatched "'),
        ('"a@b"', "the address has no @ outside quotes"),
    ],
)
def test_a_quote_in_the_local_part_gets_its_own_reason(raw: str, reason: str) -> None:
    assert check_address(raw) == reason
