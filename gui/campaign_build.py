"""Making a campaign file from rows, whole or not at all: the window's one way to do it.

Owns the file's birth for every kind of campaign the window makes (the sandbox's, a
real one imported from a CSV, one saved by the message editor): a free name in the
folder, the file built under a temporary name and renamed once complete (as ``mxmailer
send`` does), so an interrupted import never looks like a campaign to open. It never
imports Qt: it runs on the import dialog's worker thread, with its own SQLite connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from core.store import CampaignStore, NewRecipient


class ImportCancelled(Exception):
    """The user cancelled the import; the file being made was removed."""


def build_campaign(
    folder: Path,
    rows: Callable[[], Iterable[NewRecipient]],
    message: bytes,
    *,
    sender: str,
    settings: Mapping[str, object],
    stem: str,
    now: float | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Path:
    """A new campaign file ``stem-YYYYmmdd-HHMMSS.mxm`` in ``folder`` holding ``rows()``.

    Raises ImportCancelled when ``cancelled()`` says so once every row is in, before the
    file gets its name (``rows`` itself looks while reading), and leaves nothing behind."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = free_name(folder, f"{stem}-{stamp}")
    partial = path.with_name(path.name + ".importing")
    try:
        with CampaignStore.create(
            partial, sender=sender, message=message, settings=settings
        ) as store:
            store.add_recipients(rows())
        if cancelled():
            raise ImportCancelled(f"the import into {path.name} was cancelled")
        partial.replace(path)
    except BaseException:
        remove_campaign_file(partial)
        raise
    return path


def remove_campaign_file(path: Path) -> None:
    """Delete a campaign file and what SQLite keeps beside it."""
    for made in (path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm"))):
        made.unlink(missing_ok=True)


def free_name(folder: Path, stem: str) -> Path:
    """``stem.mxm``, or ``stem-2.mxm``... when two campaigns are made within a second."""
    candidate = folder / f"{stem}.mxm"
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{number}.mxm"
        number += 1
    return candidate
