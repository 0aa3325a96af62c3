"""The campaign store against real files: durability, recovery, refusals, the report.

Every store here is a real SQLite file in ``tmp_path``; the crash test kills a real child
process. Big sizes live in ``bench/store_bench.py``, not here.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core import eod_journal, store_schema
from core import store as store_module
from core.eod_journal import journal_path
from core.store import (
    FINAL_STATUSES,
    REPORT_HEADER,
    TRANSCRIPT_LIMIT,
    AttemptLog,
    CampaignStore,
    NewRecipient,
    RecipientUpdate,
    RecoveryReport,
    ReportRow,
    Status,
    StoreError,
)

ROOT = Path(__file__).resolve().parents[2]
SENDER = "news@sender.test"
MESSAGE = "From: <news@sender.test>\r\nSubject: Grüße {first}\r\n\r\nHallo {first}.\r\n".encode()
T0 = 1795596000.0  # 2026-11-25T08:40:00Z
T1 = T0 + 300  # 08:45:00Z
T2 = T0 + 3600  # 09:40:00Z


# ---- helpers -----------------------------------------------------------------------------


def recipient(n: int, **fields: str) -> NewRecipient:
    return NewRecipient(f"user{n}@example.test", "example.test", fields or {"first": f"N{n}"})


def many(count: int, start: int = 1) -> Iterator[NewRecipient]:
    return (recipient(n) for n in range(start, start + count))


def make(path: Path, count: int = 0) -> CampaignStore:
    store = CampaignStore.create(path, sender=SENDER, message=MESSAGE, settings={"rate": 10})
    if count:
        store.add_recipients(many(count))
    return store


def reopen(path: Path) -> tuple[CampaignStore, RecoveryReport]:
    return CampaignStore.open(path)


def on_disk(path: Path) -> dict[str, bytes]:
    """The campaign file and its log, byte for byte."""
    return {p.name: p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()}


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection, for looking at a closed campaign file."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def delivered(recipient_id: int, **changes: Any) -> RecipientUpdate:
    update = RecipientUpdate(
        recipient_id,
        Status.DELIVERED,
        attempts=1,
        first_attempt_at=T0,
        last_attempt_at=T0,
        code=250,
        enhanced="2.0.0",
        text="Ok: queued as ABC",
        mx="mx.example.test [192.0.2.1]",
    )
    return dataclasses.replace(update, **changes)


def statements(store: CampaignStore) -> list[str]:
    """Every SQL statement the store's connection runs from now on."""
    seen: list[str] = []
    connection = store._connection
    assert connection is not None
    connection.set_trace_callback(seen.append)
    return seen


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "spring sale.mxm"


# ---- making and opening ------------------------------------------------------------------


def test_create_then_open_round_trip(path: Path) -> None:
    settings: dict[str, object] = {"rate": 10, "tls": "opportunistic", "hosts": ["a", "b"]}
    with CampaignStore.create(path, sender=SENDER, message=MESSAGE, settings=settings) as store:
        added = store.add_recipients(
            [
                NewRecipient("Ann@Bücher.test", "xn--bcher-kva.test", {"first": "Ann", "x": ""}),
                NewRecipient("bad address", "", {}, Status.INVALID, "no @"),
                NewRecipient("u@s.test", "s.test", {"first": "a\x1fb"}, Status.SUPPRESSED, "list"),
            ]
        )
        assert added == 3
    assert path.stat().st_mode & 0o777 == 0o600  # recipients are personal data

    store, report = reopen(path)
    with store:
        assert report == RecoveryReport(requeued=1, ambiguous=0)
        assert (store.sender, store.message, store.settings) == (SENDER, MESSAGE, settings)
        first = store.get(1)
        assert (first.email, first.domain, first.status) == (
            "Ann@Bücher.test",
            "xn--bcher-kva.test",
            Status.QUEUED,
        )
        assert list(first.fields.items()) == [("first", "Ann"), ("x", "")]
        assert (first.attempts, first.code, first.eod_at, first.next_attempt_at) == (
            0,
            None,
            None,
            None,
        )
        invalid = store.get(2)
        assert (invalid.status, invalid.reason, invalid.fields) == (Status.INVALID, "no @", {})
        assert store.get(3).fields == {"first": "a\x1fb"}  # the separator itself survives
        with pytest.raises(KeyError, match="no recipient 4"):
            store.get(4)


def test_settings_are_saved_at_once_and_handed_out_as_copies(path: Path) -> None:
    with make(path) as store:
        store.settings["rate"] = 99  # a copy: changes nothing
        assert store.settings == {"rate": 10}
        store.set_settings({"rate": 20, "lifetime": 432000})
        before = on_disk(path)
    store, _ = reopen(path)
    with store:
        assert store.settings == {"rate": 20, "lifetime": 432000}
    assert before  # the file existed with the settings before close


def test_create_refuses_an_existing_file(path: Path) -> None:
    path.write_text("my notes")
    with pytest.raises(StoreError, match="already exists"):
        make(path)
    assert path.read_text() == "my notes"


def test_create_refuses_a_leftover_log(path: Path) -> None:
    Path(f"{path}-wal").write_bytes(b"old log")
    with pytest.raises(StoreError, match=r"leftover spring sale\.mxm-wal"):
        make(path)
    assert not path.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"is not an MX Mailer campaign file \(it is empty\)"),
        (os.urandom(4096), r"is not an MX Mailer campaign file \(it is not an SQLite database\)"),
        (b"SQLite format 3\x00" + b"\xff" * 200, r"damaged or not an MX Mailer campaign file"),
    ],
    ids=["empty", "garbage", "broken-header"],
)
def test_open_refuses_what_is_not_a_campaign_file(path: Path, content: bytes, message: str) -> None:
    path.write_bytes(content)
    with pytest.raises(StoreError, match=message) as refused:
        reopen(path)
    assert str(path) in str(refused.value)
    assert path.read_bytes() == content


def test_open_refuses_another_programs_sqlite_file_without_touching_it(path: Path) -> None:
    with raw(path) as other:
        other.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        other.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"not an MX Mailer campaign file \(an SQLite database"):
        reopen(path)
    assert path.read_bytes() == before  # not even switched to WAL
    assert not Path(f"{path}-wal").exists()


def test_open_refuses_a_missing_file(path: Path) -> None:
    with pytest.raises(StoreError, match="there is no campaign file at"):
        reopen(path)
    assert not path.exists()  # and did not create one


def test_open_refuses_a_file_in_use(path: Path) -> None:
    with make(path, 1), pytest.raises(StoreError, match="in use by another program"):
        reopen(path)


def test_open_refuses_a_newer_schema(path: Path) -> None:
    make(path).close()
    with raw(path) as connection:
        connection.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    latest = store_schema.latest_version()
    with pytest.raises(StoreError, match=rf"made by a newer MX Mailer \(schema 7 > {latest}\)"):
        reopen(path)


# ---- migrations --------------------------------------------------------------------------

#: One test per migration, keyed by the version it upgrades from. Adding a migration without
#: adding its test here fails test_every_migration_has_a_test.
MIGRATION_TESTS: dict[int, Callable[[Path], None]] = {}


def test_every_migration_has_a_test() -> None:
    assert set(MIGRATION_TESTS) == set(range(1, store_schema.latest_version()))


def test_every_migration_keeps_the_data(tmp_path: Path) -> None:
    for version, check in sorted(MIGRATION_TESTS.items()):
        check(tmp_path / f"from-{version}")


def schema_of(connection: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = connection.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    return [(name, " ".join((sql or "").split())) for name, sql in rows]


def test_every_older_version_upgrades_to_the_fresh_schema(tmp_path: Path) -> None:
    fresh = make(tmp_path / "fresh.mxm")
    fresh.close()
    with raw(tmp_path / "fresh.mxm") as connection:
        expected = schema_of(connection)
    for version in range(1, store_schema.latest_version()):
        old = tmp_path / f"v{version}.mxm"
        with raw(old) as connection:
            store_schema.build(connection, version)
            connection.execute("INSERT INTO campaign VALUES (1, 's@x.test', x'00', '{}')")
        CampaignStore.open(old)[0].close()
        with raw(old) as connection:
            assert schema_of(connection) == expected
            assert store_schema.read_version(connection) == store_schema.latest_version()


def add_note_column(connection: sqlite3.Connection) -> None:
    connection.execute("ALTER TABLE recipients ADD COLUMN note TEXT NOT NULL DEFAULT 'kept'")


def test_an_older_file_is_migrated_in_one_transaction(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one schema version so far, a second one is simulated."""
    make(path, 3).close()
    monkeypatch.setattr(store_schema, "MIGRATIONS", [add_note_column])
    seen: list[str] = []
    monkeypatch.setattr(
        store_schema, "set_version", _spy(store_schema.set_version, seen, "set_version")
    )
    store, report = reopen(path)
    store.close()
    assert report.requeued == 3
    with raw(path) as connection:
        assert store_schema.read_version(connection) == 2
        assert connection.execute("SELECT count(*), min(note) FROM recipients").fetchone() == (
            3,
            "kept",
        )
    assert seen == ["set_version"]
    make(path.with_name("fresh.mxm")).close()  # made with the same migration list
    with raw(path) as migrated, raw(path.with_name("fresh.mxm")) as fresh:
        assert schema_of(migrated) == schema_of(fresh)


def _spy(function: Callable[..., None], seen: list[str], name: str) -> Callable[..., None]:
    def spy(*args: object) -> None:
        seen.append(name)
        function(*args)

    return spy


def test_a_failing_migration_leaves_the_file_unchanged(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(path, 3).close()

    def half_done(connection: sqlite3.Connection) -> None:
        add_note_column(connection)
        connection.execute("UPDATE no_such_table SET x = 1")

    monkeypatch.setattr(store_schema, "MIGRATIONS", [half_done])
    with pytest.raises(StoreError, match=r"from schema 1 to 2 failed .* left unchanged"):
        reopen(path)
    monkeypatch.undo()
    with raw(path) as connection:
        assert store_schema.read_version(connection) == 1
        columns = [row[1] for row in connection.execute("PRAGMA table_info(recipients)")]
    assert "note" not in columns
    reopen(path)[0].close()


# ---- adding and reading recipients --------------------------------------------------------


def test_add_recipients_commits_one_batch_at_a_time_and_streams(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "IMPORT_BATCH", 4)
    pulled = 0

    def rows() -> Iterator[NewRecipient]:
        nonlocal pulled
        for n in range(1, 100):
            pulled += 1
            if n == 11:
                raise ValueError("bad CSV line 11")
            yield recipient(n)

    with make(path) as store:
        seen = statements(store)
        with pytest.raises(ValueError, match="line 11"):
            store.add_recipients(rows())
        assert pulled == 11  # never read ahead of the batch it is saving
        # Indexes dropped; rows 1-4, 5-8 (9-10 rolled back with line 11); indexes rebuilt.
        assert seen.count("COMMIT") == 4
        assert index_names(store) >= {"recipients_pending", "recipients_status"}
        assert store.counts()[Status.QUEUED] == 8
        assert store.add_recipients(many(9, start=9)) == 9  # not poisoned: a caller's error
        assert [s.id for s in store.pending()] == list(range(1, 18))


def index_names(store: CampaignStore) -> set[str]:
    rows = store._read("SELECT name FROM sqlite_master WHERE type = 'index'", ())
    return {row[0] for row in rows}


def test_a_new_campaigns_import_builds_its_indexes_once_at_the_end(path: Path) -> None:
    with make(path) as store:
        seen = statements(store)
        store.add_recipients(many(10))
        creates = [n for n, s in enumerate(seen) if s.startswith("CREATE INDEX")]
        inserts = [n for n, s in enumerate(seen) if s.startswith("INSERT INTO recipients")]
        assert len(creates) == 2 and inserts and min(creates) > max(inserts)
        seen.clear()
        store.add_recipients(many(5, start=11))  # not empty any more: indexes kept up
        assert not [s for s in seen if "INDEX" in s]
        assert index_names(store) >= {"recipients_pending", "recipients_status"}


def test_opening_a_file_whose_import_was_cut_short_rebuilds_the_indexes(path: Path) -> None:
    with make(path) as store:
        store.add_recipients(many(3))
        for name in ("recipients_pending", "recipients_status"):  # as a killed import leaves it
            store._open().execute(f"DROP INDEX {name}")
    store, _ = CampaignStore.open(path)
    with store:
        assert index_names(store) >= {"recipients_pending", "recipients_status"}
        assert [s.id for s in store.pending()] == [1, 2, 3]


def test_add_recipients_refuses_a_status_an_import_cannot_give(path: Path) -> None:
    with make(path) as store:
        bad = NewRecipient("a@b.test", "b.test", {}, Status.DELIVERED)
        with pytest.raises(ValueError, match="cannot be delivered"):
            store.add_recipients([recipient(1), bad])
        assert store.counts()[Status.QUEUED] == 0


def test_pending_is_every_non_final_row_in_id_order_page_by_page(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PAGE", 3)
    with make(path, 12) as store:
        store.record(delivered(2))
        store.record(RecipientUpdate(5, Status.DEFERRED, "greylisted", T1, attempts=1))
        store.record(RecipientUpdate(6, Status.AMBIGUOUS))
        store.flush()
        seen = statements(store)
        stream = store.pending()
        assert [next(stream).id for _ in range(3)] == [1, 3, 4]
        assert sum(s.startswith("SELECT") for s in seen) == 1  # one page read so far
        # Writes between pages are safe; a row that became final is not handed out.
        store.record(delivered(9))
        store.flush()
        rest = list(stream)
        assert [s.id for s in rest] == [5, 7, 8, 10, 11, 12]
        assert (rest[0].status, rest[0].wait_reason, rest[0].next_attempt_at) == (
            Status.DEFERRED,
            "greylisted",
            T1,
        )


def test_pending_query_and_the_partial_index_agree_with_status_final() -> None:
    not_final = {status.value for status in Status if not status.final}
    assert store_schema.PENDING_WHERE == "status IN ('queued', 'deferred')"
    assert not_final == {"queued", "deferred"}
    assert store_schema.PENDING_WHERE in " ".join(store_schema.VERSION_1)
    assert {s for s in Status if s.final} == FINAL_STATUSES


def test_counts_every_status(path: Path) -> None:
    with make(path, 6) as store:
        store.add_recipients([NewRecipient("x", "", {}, Status.INVALID, "no @")])
        store.record(delivered(1))
        store.record(delivered(2))
        store.record(RecipientUpdate(3, Status.BOUNCED, code=550))
        store.record(RecipientUpdate(4, Status.DEFERRED, "deferred", T1))
        store.flush()
        counts = store.counts()
    assert counts == {
        Status.QUEUED: 2,
        Status.DEFERRED: 1,
        Status.DELIVERED: 2,
        Status.BOUNCED: 1,
        Status.EXPIRED: 0,
        Status.INVALID: 1,
        Status.SUPPRESSED: 0,
        Status.AMBIGUOUS: 0,
    }


# ---- recording results -------------------------------------------------------------------


def test_record_without_flush_changes_nothing_on_disk(path: Path) -> None:
    with make(path, 3) as store:
        before = on_disk(path)
        store.record(delivered(1))
        store.record(delivered(2, attempt=AttemptLog(T0, T1, "mx", "192.0.2.1", "accepted",
                                                     250, "2.0.0", "Ok", "data")))  # fmt: skip
        assert store.queued_updates == 2
        assert on_disk(path) == before
        assert store.get(1).status is Status.QUEUED  # get() shows what is saved
        assert store.attempts(2) == []


def test_flush_writes_everything_in_one_transaction_and_returns_it(path: Path) -> None:
    with make(path, 3) as store:
        attempt = AttemptLog(T0, T1, "mx.example.test", "192.0.2.1", "accepted", 250, "2.0.0",
                             "Ok", "data", "C: DATA\r\nS: 354\r\n")  # fmt: skip
        updates = [delivered(1, attempt=attempt), RecipientUpdate(2, Status.BOUNCED, code=550)]
        for update in updates:
            store.record(update)
        seen = statements(store)
        assert store.flush() == updates
        assert [s for s in seen if s in ("BEGIN IMMEDIATE", "COMMIT")] == [
            "BEGIN IMMEDIATE",
            "COMMIT",
        ]
        assert store.queued_updates == 0
        assert store.flush() == []
        assert store.get(1).text == "Ok: queued as ABC"
        assert store.attempts(1) == [attempt]
        assert store.get(2).status is Status.BOUNCED


def test_a_flush_is_all_or_nothing_and_a_failed_one_stops_all_writes(path: Path) -> None:
    with make(path, 3) as store:
        store.record(delivered(1))
        store.record(delivered(99))  # no such recipient: the engine's bug
        with pytest.raises(StoreError, match="no recipient with id 99"):
            store.flush()
        assert store.get(1).status is Status.QUEUED  # the good one was not written either
        with pytest.raises(StoreError, match=r"refused: an earlier write .* failed"):
            store.mark_end_of_data([(2, 1)], T0)
        with pytest.raises(StoreError, match="refused"):
            store.record(delivered(2))
    store, _ = reopen(path)  # reopening is the way back
    with store:
        assert store.get(1).status is Status.QUEUED


def test_record_checks_the_fault(path: Path) -> None:
    with make(path, 1) as store, pytest.raises(ValueError, match="fault must be one of"):
        store.record(RecipientUpdate(1, Status.BOUNCED, fault="unknown"))


def test_to_update_carries_the_current_values(path: Path) -> None:
    with make(path, 1) as store:
        store.record(delivered(1, status=Status.DEFERRED, wait_reason="greylisted",
                               greylist_mx="mx1.test", message_id="<1@x>"))  # fmt: skip
        store.flush()
        update = store.get(1).to_update(status=Status.EXPIRED, next_attempt_at=None)
    assert (update.status, update.text, update.greylist_mx, update.message_id) == (
        Status.EXPIRED,
        "Ok: queued as ABC",
        "mx1.test",
        "<1@x>",
    )


def test_transcripts_are_cut(path: Path) -> None:
    log = AttemptLog(T0, T1, "mx", "192.0.2.1", "accepted", 250, "", "", "data", "é" * 50_000)
    with make(path, 1) as store:
        store.record(delivered(1, attempt=log))
        store.flush()
        (saved,) = store.attempts(1)
    kept, note = saved.transcript.split("\n")
    assert len(saved.transcript.encode()) <= TRANSCRIPT_LIMIT
    assert set(kept) == {"é"}  # cut between characters, never inside one
    assert note == f"[cut: {100_000 - len(kept.encode())} more bytes]"


def test_close_flushes(path: Path) -> None:
    with make(path, 1) as store:
        store.record(delivered(1))
    store, _ = reopen(path)
    with store:
        assert store.get(1).status is Status.DELIVERED
    store.close()  # twice is harmless


# ---- the end-of-data mark and recovery ----------------------------------------------------

_KILLED_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from core.store import CampaignStore, RecipientUpdate, Status

    store, _ = CampaignStore.open(Path(sys.argv[1]))
    store.mark_end_of_data([(1, 1)], 1795596000.0)
    store.record(RecipientUpdate(2, Status.DELIVERED, attempts=1, code=250, text="Ok"))
    print("marked", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_the_end_of_data_mark_survives_a_killed_process(path: Path) -> None:
    make(path, 3).close()
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_CHILD, str(path)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert child.stdout == b"marked\n"
    with raw(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    store, report = reopen(path)
    with store:
        assert report == RecoveryReport(requeued=2, ambiguous=1)
        marked = store.get(1)
        assert (marked.status, marked.eod_at) == (Status.AMBIGUOUS, T0)
        assert marked.reason.startswith("possibly delivered: the end of data was written at"
                                        " 2026-11-25T08:40:00Z")  # fmt: skip
        assert store.get(2).status is Status.QUEUED  # recorded, never flushed: lost
        assert [s.id for s in store.pending()] == [2, 3]


def test_recovery_keeps_the_last_reply(path: Path) -> None:
    with make(path, 2) as store:
        greylisted = RecipientUpdate(1, Status.DEFERRED, "greylisted", T1, 1, T0, T0, 451,
                                     "4.7.1", "try later", "mx1.test")  # fmt: skip
        store.record(greylisted)
        store.flush()
        store.mark_end_of_data([(1, 2), (2, 1)], T1)  # 1's second attempt reached the dot
        store.record(delivered(2))  # and the server answered for 2
        store.flush()
        crash(store)
    store, report = reopen(path)
    with store:
        assert report == RecoveryReport(requeued=0, ambiguous=1)
        state = store.get(1)
        assert (state.status, state.code, state.enhanced, state.text, state.mx) == (
            Status.AMBIGUOUS,
            451,
            "4.7.1",
            "try later",
            "mx1.test",
        )
        assert store.get(2).eod_at is None  # the result cleared the mark
    store, report = reopen(path)  # recovery is done once
    store.close()
    assert report == RecoveryReport(requeued=0, ambiguous=0)


def crash(store: CampaignStore) -> None:
    """Leave ``store`` as a killed process would: nothing folded, nothing removed."""
    connection = store._connection
    assert connection is not None
    store._connection = None
    connection.close()


def test_an_older_queued_result_does_not_settle_a_newer_mark(path: Path) -> None:
    with make(path, 1) as store:
        store.record(RecipientUpdate(1, Status.DEFERRED, "deferred", T0, attempts=1))
        store.mark_end_of_data([(1, 2)], T1)  # the next attempt, before that result was flushed
        store.flush()
        crash(store)
    store, report = reopen(path)
    with store:
        assert report.ambiguous == 1 and store.get(1).eod_at == T1


def test_the_result_of_the_marked_attempt_settles_its_mark(path: Path) -> None:
    with make(path, 2) as store:
        store.mark_end_of_data([(1, 1), (2, 1)], T1)
        store.record(delivered(1))  # attempt 1 answered; 2's reply never came
        store.flush()
        crash(store)  # the journal still holds 1's settled record beside 2's
    assert journal_path(path).stat().st_size > 0
    store, report = reopen(path)
    with store:
        assert report == RecoveryReport(requeued=0, ambiguous=1)
        assert store.get(1).status is Status.DELIVERED
        assert (store.get(2).status, store.get(2).eod_at) == (Status.AMBIGUOUS, T1)
    assert not journal_path(path).exists()  # folded, then removed


def test_the_journal_is_emptied_when_every_mark_is_settled(path: Path) -> None:
    with make(path, 2) as store:
        store.mark_end_of_data([(1, 1)], T1)
        assert journal_path(path).stat().st_size > 0
        store.record(delivered(1))
        store.flush()
        assert journal_path(path).stat().st_size == eod_journal.HEADER_SIZE
        assert store.journaled() == []
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # one file again


def test_a_long_run_compacts_the_journal_to_its_unsettled_marks(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eod_journal, "COMPACT_BYTES", 24 * 10)  # ten records
    with make(path, 100) as store:
        store.mark_end_of_data([(100, 1)], T0)  # never answered: keeps the journal busy
        for rid in range(1, 100):
            store.mark_end_of_data([(rid, 1)], T1)
            store.record(delivered(rid))
            store.flush()
            assert journal_path(path).stat().st_size < 24 * 12
        crash(store)
    store, report = reopen(path)
    with store:
        assert report.ambiguous == 1 and store.get(100).status is Status.AMBIGUOUS
        assert store.counts()[Status.DELIVERED] == 99


def test_an_unwritable_journal_stops_the_writes(path: Path) -> None:
    with make(path, 2) as store:
        journal_path(path).mkdir()  # os.open fails on it, as on a full or read-only disk
        with pytest.raises(StoreError, match=r"saving the end-of-data mark in .*-eod failed"):
            store.mark_end_of_data([(1, 1)], T0)
        with pytest.raises(StoreError, match="refused"):
            store.record(delivered(2))
    journal_path(path).rmdir()


def test_create_refuses_a_leftover_journal(path: Path) -> None:
    journal_path(path).write_bytes(b"")
    with pytest.raises(StoreError, match=r"leftover .*\.mxm-eod"):
        make(path, 1)


# ---- files that cannot be written ---------------------------------------------------------


def test_a_read_only_store_refuses_writes_with_a_clear_message(path: Path) -> None:
    """Opened with SQLite's ``mode=ro&immutable=1`` (as root, chmod would not stop a write)."""
    make(path, 2).close()
    store, report = CampaignStore.open(path, read_only=True)
    with store:
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no -wal, -shm
        assert report.requeued == 2
        assert store.get(1).status is Status.QUEUED  # reading works
        with pytest.raises(StoreError, match=r"is read-only \(it was opened read-only\)") as err:
            store.set_settings({"rate": 1})
        assert str(path) in str(err.value)
        with pytest.raises(StoreError, match="refused: an earlier write"):
            store.mark_end_of_data([(1, 1)], T0)


def test_a_read_only_open_refuses_a_file_open_elsewhere_or_not_closed(path: Path) -> None:
    with make(path, 1), pytest.raises(StoreError, match=r"is open in MX Mailer, or was not"):
        CampaignStore.open(path, read_only=True)


def test_a_file_that_turns_read_only_stops_the_writes(path: Path) -> None:
    """Simulated with ``PRAGMA query_only``: SQLite answers SQLITE_READONLY as it would for
    a disk remounted read-only under a running campaign."""
    with make(path, 2) as store:
        store.record(delivered(1))
        connection = store._connection
        assert connection is not None
        connection.execute("PRAGMA query_only = ON")
        with pytest.raises(StoreError, match=r"is read-only \(no permission, or a read-only"):
            store.flush()
        assert store.queued_updates == 1  # kept, but never written by this store
        with pytest.raises(StoreError, match="refused"):
            store.mark_end_of_data([(2, 1)], T0)
    store, _ = reopen(path)
    with store:
        assert store.get(1).status is Status.QUEUED


def test_a_read_only_open_refuses_a_file_that_needs_recovery(path: Path) -> None:
    with make(path, 1) as store:
        store.mark_end_of_data([(1, 1)], T0)
        crash(store)
    with pytest.raises(StoreError, match=r"needs crash recovery .* open it writable once"):
        CampaignStore.open(path, read_only=True)


def test_disk_full_stops_the_writes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk, simulated with ``PRAGMA max_page_count`` (SQLite answers SQLITE_FULL)."""
    monkeypatch.setattr(store_module, "IMPORT_BATCH", 100)
    with make(path) as store:
        connection = store._connection
        assert connection is not None
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {pages + 8}")
        with pytest.raises(StoreError, match="disk full while adding recipients in") as full:
            store.add_recipients(many(10_000))
        assert "Free some disk space, then open the campaign again" in str(full.value)
        saved = store.counts()[Status.QUEUED]
        assert 0 < saved < 10_000 and saved % 100 == 0  # whole batches only
        with pytest.raises(StoreError, match="refused"):
            store.mark_end_of_data([(1, 1)], T0)
    store, _ = reopen(path)
    with store:
        assert store.counts()[Status.QUEUED] == saved


# ---- the report --------------------------------------------------------------------------


def reported(path: Path) -> CampaignStore:
    store = make(path, 7)
    store.add_recipients(
        [
            NewRecipient("bad", "", {}, Status.INVALID, "no @ in the address"),
            NewRecipient(
                "gone@example.test", "example.test", {}, Status.SUPPRESSED, "unsubscribed"
            ),
        ]
    )
    store.record(delivered(1, text="2.0.0 Ok: queued as ABC", fault=""))
    store.record(
        RecipientUpdate(
            2,
            Status.BOUNCED,
            "",
            None,
            1,
            T0,
            T0,
            550,
            "5.1.1",
            '=HYPERLINK("x") no such user',
            "mx1.test",
            "recipient",
        )
    )
    store.record(
        RecipientUpdate(
            3,
            Status.DEFERRED,
            "greylisted",
            T2,
            1,
            T0,
            T0,
            451,
            "4.7.1",
            "Greylisted, try again",
            "mx1.test",
        )
    )
    store.record(
        RecipientUpdate(
            4,
            Status.EXPIRED,
            "",
            None,
            5,
            T0,
            T2,
            421,
            "4.3.2",
            "Service not available",
            "mx2.test",
            "sender",
        )
    )
    store.record(
        RecipientUpdate(
            5,
            Status.AMBIGUOUS,
            "",
            None,
            1,
            T0,
            T1,
            None,
            "",
            "connection lost after end of data",
            "mx1.test",
        )
    )
    store.record(RecipientUpdate(6, Status.QUEUED, "destination paused", T1, 0))  # fmt: skip
    store.flush()
    return store


EXPECTED_REPORT = (
    "email,status,code,enhanced_code,response,mx,attempts,first_attempt,last_attempt,fault,detail\r\n"
    "user1@example.test,delivered,250,2.0.0,2.0.0 Ok: queued as ABC,mx.example.test [192.0.2.1],"
    "1,2026-11-25T08:40:00Z,2026-11-25T08:40:00Z,,\r\n"
    'user2@example.test,bounced,550,5.1.1,"\'=HYPERLINK(""x"") no such user",mx1.test,1,'
    "2026-11-25T08:40:00Z,2026-11-25T08:40:00Z,recipient,\r\n"
    'user3@example.test,deferred,451,4.7.1,"Greylisted, try again",mx1.test,1,'
    "2026-11-25T08:40:00Z,2026-11-25T08:40:00Z,,greylisted; next attempt 2026-11-25T09:40:00Z\r\n"
    "user4@example.test,expired,421,4.3.2,Service not available,mx2.test,5,"
    "2026-11-25T08:40:00Z,2026-11-25T09:40:00Z,sender,\r\n"
    "user5@example.test,deferred,,,connection lost after end of data,mx1.test,1,"
    "2026-11-25T08:40:00Z,2026-11-25T08:45:00Z,,possibly delivered: the server never answered"
    " the end of data; not sent again\r\n"
    "user6@example.test,deferred,,,,,0,,,,destination paused; next attempt 2026-11-25T08:45:00Z\r\n"
    "user7@example.test,deferred,,,,,0,,,,not attempted yet\r\n"
    "bad,invalid,,,,,0,,,,no @ in the address\r\n"
    "gone@example.test,suppressed,,,,,0,,,,unsubscribed\r\n"
)


def test_the_report_csv_is_exact(path: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    with reported(path) as store:
        assert store.export_report(target) == 9
    assert target.read_bytes().decode("utf-8") == EXPECTED_REPORT
    assert not (tmp_path / "report.csv.part").exists()
    with target.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert tuple(rows[0]) == REPORT_HEADER
    assert {row[1] for row in rows[1:]} <= {
        "delivered", "bounced", "deferred", "expired", "invalid", "suppressed",
    }  # fmt: skip


def test_report_rows_are_the_values_and_the_csv_only_guards_spreadsheets(path: Path) -> None:
    with reported(path) as store:
        rows = list(store.report_rows())
    assert len(rows) == 9
    assert rows[1] == ReportRow(
        "user2@example.test", "bounced", "550", "5.1.1", '=HYPERLINK("x") no such user',
        "mx1.test", "1", "2026-11-25T08:40:00Z", "2026-11-25T08:40:00Z", "recipient", "",
    )  # fmt: skip


def test_states_reads_every_row_in_id_order_a_page_at_a_time(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PAGE", 4)
    with make(path, 10) as store:
        done = store.get(3)
        store.record(done.to_update(status=Status.DELIVERED))
        store.flush()
        seen = statements(store)
        states = list(store.states())
    assert [s.id for s in states] == list(range(1, 11))  # final rows too, unlike pending()
    assert states[2].status is Status.DELIVERED
    assert sum(s.startswith("SELECT") for s in seen) == 3  # pages of 4, 4, 2


def test_a_read_only_open_refuses_a_file_an_unfinished_import_left_unindexed(
    path: Path,
) -> None:
    with make(path, 3) as store:
        store._open().execute("DROP INDEX recipients_status")
    with pytest.raises(StoreError, match="import that did not finish"):
        CampaignStore.open(path, read_only=True)
    CampaignStore.open(path)[0].close()  # writable: indexed again
    CampaignStore.open(path, read_only=True)[0].close()


def test_retry_requeues_what_may_succeed_now_and_nothing_else(path: Path) -> None:
    outcomes = {
        1: delivered(1),
        2: delivered(2, status=Status.BOUNCED, code=550, fault="recipient"),
        3: delivered(3, status=Status.BOUNCED, code=554, fault="sender"),
        4: delivered(4, status=Status.EXPIRED, code=451),
        5: delivered(5, status=Status.DEFERRED, next_attempt_at=T0 + 300, wait_reason="deferred"),
        6: delivered(6, status=Status.AMBIGUOUS, reason="possibly delivered"),
    }
    with make(path, 8) as store:  # 7: invalid at import; 8: never tried
        store.add_recipients([NewRecipient("bad", "", {}, Status.INVALID, "no @")])
        for update in outcomes.values():
            store.record(dataclasses.replace(update, message_id="<m@x.test>"))
        store.flush()
        assert store.fixable_ids() == [3, 4, 5]  # not the recipient's own bounce (2)
        assert store.retry([1, 2, 3, 4, 5, 6, 9, 404]) == 5  # 1 delivered, 9 invalid: kept
        states = {s.id: s for s in store.states()}
    assert {i: s.status for i, s in states.items() if i <= 6} == {
        1: Status.DELIVERED, 2: Status.QUEUED, 3: Status.QUEUED, 4: Status.QUEUED,
        5: Status.QUEUED, 6: Status.QUEUED,
    }
    assert states[9].status is Status.INVALID
    for requeued in (states[n] for n in (2, 3, 4, 5, 6)):
        assert requeued.first_attempt_at is None and requeued.next_attempt_at is None
        assert requeued.reason == "" and requeued.wait_reason == ""
        assert requeued.message_id == "<m@x.test>" and requeued.attempts == 1  # same bytes


def test_remove_deletes_rows_and_their_attempt_logs(path: Path) -> None:
    with make(path, 3) as store:
        log = AttemptLog(T0, T1, "mx", "192.0.2.1", "accepted", 250, "2.0.0", "ok", "data")
        store.record(delivered(2, attempt=log))
        store.flush()
        assert store.remove([2, 404]) == 1
        assert [s.id for s in store.states()] == [1, 3]
        assert store.attempts(2) == []
        assert sum(store.counts().values()) == 2


def test_a_mark_names_a_counted_attempt(path: Path) -> None:
    """Attempt 0 would look settled to recovery (``attempts < 0`` is never true)."""
    with make(path, 1) as store, pytest.raises(StoreError, match="counted from 1"):
        store.mark_end_of_data([(1, 0)], T0)


def test_closing_folds_unanswered_marks_into_the_file(path: Path) -> None:
    """A run abandoned with a marker unanswered: the closed campaign is one file again,
    and the recipient opens as possibly delivered."""
    with make(path, 2) as store:
        store.mark_end_of_data([(1, 1)], T0)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    store, report = reopen(path)
    with store:
        assert report.ambiguous == 1 and store.get(1).status is Status.AMBIGUOUS


def test_a_removed_recipients_mark_does_not_flag_a_new_row_with_its_id(path: Path) -> None:
    with make(path, 3) as store:
        store.mark_end_of_data([(3, 1)], T0)  # never answered (say, an engine's bug)
        assert store.remove([3]) == 1
        store.add_recipients(many(1))  # SQLite gives the new row the freed id 3
        assert store.get(3).attempts == 0
        crash(store)
    store, report = reopen(path)
    with store:
        assert report.ambiguous == 0 and store.get(3).status is Status.QUEUED


def test_a_journal_write_that_fails_half_way_is_cut_back(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills in the middle of a batch: none of its markers is sent, so none of
    its records may survive to flag a recipient as possibly delivered."""
    write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        if len(data) > eod_journal.HEADER_SIZE:
            write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(fd, data)

    with make(path, 4) as store:
        store.mark_end_of_data([(4, 1)], T0)  # a mark that went through
        monkeypatch.setattr(eod_journal.os, "write", half_then_full)
        with pytest.raises(StoreError, match="No space left on device"):
            store.mark_end_of_data([(1, 1), (2, 1), (3, 1)], T1)
        monkeypatch.undo()
        assert [(m.id, m.attempt) for m in store.journaled()] == [(4, 1)]
        crash(store)
    store, report = reopen(path)
    with store:
        assert report.ambiguous == 1 and store.get(4).status is Status.AMBIGUOUS


def test_another_campaigns_journal_is_never_read(path: Path) -> None:
    """A journal left by an earlier campaign of the same name (that file deleted since)."""
    other = path.with_name("other.mxm")
    with make(other, 3) as store:
        store.mark_end_of_data([(1, 1), (2, 1)], T0)
        crash(store)
    with make(path, 3):
        pass
    journal_path(other).rename(journal_path(path))
    store, report = reopen(path)
    with store:
        assert report.ambiguous == 0 and store.counts()[Status.QUEUED] == 3


def test_save_as_keeps_the_marks_of_messages_in_flight(path: Path) -> None:
    copy = path.with_name("copy.mxm")
    with make(path, 2) as store:
        store.mark_end_of_data([(2, 1)], T0)
        store.save_copy(copy)
        store.record(delivered(2))
    store, report = reopen(copy)
    with store:
        assert report.ambiguous == 1 and store.get(2).status is Status.AMBIGUOUS


def test_the_latest_attempt_of_a_batch_is_kept(path: Path) -> None:
    with make(path, 1) as store:
        store.record(delivered(1, status=Status.DEFERRED, attempts=1))
        store.mark_end_of_data([(1, 2), (1, 1)], T0)  # an older attempt listed last
        store.flush()  # the result of attempt 1 does not settle attempt 2
        crash(store)
    store, report = reopen(path)
    with store:
        assert report.ambiguous == 1


def test_a_read_only_open_counts_each_recipient_in_doubt_once(path: Path) -> None:
    with make(path, 2) as store:
        store.mark_end_of_data([(1, 1)], T0)
        store.mark_end_of_data([(1, 1)], T1)  # the same mark twice
        store.mark_end_of_data([(2, 1)], T1)
        store.record(delivered(2))
        store.flush()
        crash(store)
    with pytest.raises(StoreError, match=r"needs crash recovery \(1 recipients"):
        CampaignStore.open(path, read_only=True)
