"""Save As: a campaign file copied through SQLite's backup API, on real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.store import CampaignStore, StoreError
from tests.integration.test_store import make, reported


def test_the_copy_is_the_same_campaign_and_opens_on_its_own(tmp_path: Path) -> None:
    source = tmp_path / "spring.mxm"
    target = tmp_path / "spring copy.mxm"
    with reported(source) as store:
        store.save_copy(target)
        expected = list(store.report_rows())
        attempts = store.attempts(1)
        settings, message = store.settings, store.message
        # the source is still open, locked and writable after the copy
        store.retry([3])
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600  # it holds addresses
    assert not Path(f"{target}-wal").exists()  # one self-contained file
    copy, recovery = CampaignStore.open(target)
    with copy:
        assert list(copy.report_rows()) == expected
        assert copy.attempts(1) == attempts
        assert (copy.settings, copy.message) == (settings, message)
        assert recovery.ambiguous == 0


def test_an_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    source, target = tmp_path / "a.mxm", tmp_path / "b.mxm"
    make(target, 3).close()
    with make(source, 5) as store:
        store.save_copy(target)
    with CampaignStore.open(target)[0] as copy:
        assert sum(copy.counts().values()) == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_open_file_itself_and_sqlite_leftovers_are_refused(tmp_path: Path) -> None:
    source, target = tmp_path / "a.mxm", tmp_path / "b.mxm"
    Path(f"{target}-wal").write_bytes(b"not ours")
    with make(source, 2) as store:
        with pytest.raises(StoreError, match="is the campaign file itself"):
            store.save_copy(tmp_path / "." / "a.mxm")
        with pytest.raises(StoreError, match=r"leftover b\.mxm-wal"):
            store.save_copy(target)
    assert not target.exists()


def test_a_folder_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no such folder" / "copy.mxm"
    with make(tmp_path / "a.mxm", 1) as store, pytest.raises(StoreError, match="cannot write"):
        store.save_copy(missing)
