"""Where the app's resources/ folder is, from a checkout and from a frozen bundle.

Owns one question and nothing else. From a checkout (or an editable install) resources/
sits beside gui/. In a PyInstaller bundle the Python modules live in an archive and the
data files that packaging/mxmailer.spec lists are unpacked under ``sys._MEIPASS`` (the
bundle's ``_internal`` folder; ``Contents/Frameworks`` in a macOS .app), keeping their
``resources/...`` paths. Never imports Qt: gui/sandbox.py uses it and is Qt-free.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

#: PNG sizes rendered from resources/icons/mxmailer.svg (packaging/render_icons.py).
ICON_SIZES: Final = (16, 24, 32, 48, 64, 128, 256, 512)


def resources_dir() -> Path:
    """The resources/ folder: inside the bundle when frozen, else beside gui/."""
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and isinstance(bundle, str):
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def icon_file(size: int) -> Path:
    """The app icon's ``size`` px PNG."""
    return resources_dir() / "icons" / f"mxmailer-{size}.png"


def icon_files() -> list[Path]:
    """The app icon's PNGs, smallest first (a QIcon picks the size each place needs)."""
    return [icon_file(size) for size in ICON_SIZES]
