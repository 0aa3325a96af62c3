"""Recently opened campaign files: the File ▸ Open recent list, kept between launches.

Owns the list (newest first, no repeats, at most :data:`LIMIT`) and its file,
``recent.json`` in the app's data folder next to the settings. A list that cannot be
read is an empty list, never an error: losing it costs a file dialog, nothing more. A
file that has gone missing stays listed (it may be on a drive not plugged in) and the
menu shows it disabled.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Final

RECENT_FILE: Final = "recent.json"
LIMIT: Final = 10

log = logging.getLogger(__name__)


class RecentCampaigns:
    """The recent campaign files in ``path`` (a JSON list of absolute paths)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.paths: list[Path] = self._load()

    def add(self, campaign: Path) -> None:
        """``campaign`` was opened: it goes first (once)."""
        campaign = campaign.resolve()
        self.paths = [campaign, *(p for p in self.paths if p != campaign)][:LIMIT]
        self._save()

    def clear(self) -> None:
        self.paths = []
        self._save()

    def _load(self) -> list[Path]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            log.warning("recent campaigns %s not read (%s): an empty list", self.path, error)
            return []
        if not isinstance(data, list):
            return []
        paths = [Path(item) for item in data if isinstance(item, str) and item]
        return [p for p in dict.fromkeys(paths) if p.is_absolute()][:LIMIT]

    def _save(self) -> None:
        """Through a temporary file, so the list is never half-written. A failure is
        logged, not raised: the campaign itself opened fine."""
        partial = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps([str(p) for p in self.paths], indent=2), "utf-8")
            os.replace(partial, self.path)
        except OSError as error:
            log.warning("recent campaigns not saved to %s: %s", self.path, error)
