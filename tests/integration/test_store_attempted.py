"""Whether a campaign was ever tried survives a crash and a retry; Save As after a failed
write says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.store import CampaignStore, Status, StoreError
from tests.integration.test_store import make


def test_a_possibly_delivered_row_counts_as_tried_even_once_retried(tmp_path: Path) -> None:
    path = tmp_path / "c.mxm"
    with make(path, 3) as store:
        assert not store.ever_attempted()
        store.mark_end_of_data([(1, 1)], 1_800_000_000.0)  # the "." went out; no result saved
    store, recovery = CampaignStore.open(path)  # closing folded the unanswered mark
    with store:
        assert recovery.ambiguous == 1 and store.get(1).status is Status.AMBIGUOUS
        assert store.get(1).attempts == 1
        assert store.retry([1]) == 1  # the user agrees to a possible second copy
        assert store.counts()[Status.QUEUED] == 3
        assert store.ever_attempted()  # so its message and settings stay as they were


def test_save_as_after_a_failed_write_says_to_open_the_campaign_again(tmp_path: Path) -> None:
    with make(tmp_path / "c.mxm", 2) as store:
        store.record(store.get(1).to_update(status=Status.DELIVERED, code=250, attempts=1))
        # The disk turns read-only (as the crash drills do it): the flush fails.
        store._connection.execute("PRAGMA query_only = 1")  # type: ignore[union-attr]
        with pytest.raises(StoreError):
            store.flush()
        with pytest.raises(StoreError, match="Open the campaign again"):
            store.save_copy(tmp_path / "copy.mxm")
        store._connection.execute("PRAGMA query_only = 0")  # type: ignore[union-attr]
    assert not (tmp_path / "copy.mxm").exists()
