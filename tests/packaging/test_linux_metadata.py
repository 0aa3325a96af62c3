"""The Linux desktop entry and AppStream metadata (packaging/linux/).

Each file is checked by its reference validator (desktop-file-validate from Debian's
desktop-file-utils, appstreamcli from appstream), and against the rest of the project:
the executable, icon and version they name must be the ones the app ships, and every
screenshot must be a file of docs/screenshots/.
"""

from __future__ import annotations

import configparser
import re
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from core import __version__
from gui.resources_path import icon_files
from tests.packaging.support import PACKAGING, ROOT, require_tool

DESKTOP = PACKAGING / "linux" / "mxmailer.desktop"
METAINFO = PACKAGING / "linux" / "io.mxmailer.MXMailer.metainfo.xml"
SCREENSHOTS = ROOT / "docs" / "screenshots"


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(DESKTOP.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def _scripts() -> set[str]:
    """The commands pyproject.toml installs (and the bundle holds, same names)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(project["project"]["scripts"])


def test_desktop_file_validate_accepts_the_entry() -> None:
    tool = require_tool("desktop-file-validate", "desktop-file-utils")
    result = subprocess.run([tool, str(DESKTOP)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout  # not even a hint or a warning


def test_appstreamcli_accepts_the_metainfo() -> None:
    tool = require_tool("appstreamcli", "appstream")
    result = subprocess.run(
        [tool, "validate", "--no-net", str(METAINFO)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_entry_starts_the_window_with_the_app_icon() -> None:
    entry = _desktop_entry()
    command = entry["Exec"].split()[0]
    assert command == entry["TryExec"] == "mxmailer-gui"
    assert command in _scripts()
    assert entry["Icon"] == "mxmailer"  # installed as hicolor/NxN/apps/mxmailer.png
    assert all(png.name.startswith("mxmailer-") and png.is_file() for png in icon_files())
    assert entry["Terminal"] == "false"


def test_the_metainfo_names_this_app_its_entry_its_commands_and_version() -> None:
    component = ET.parse(METAINFO).getroot()
    assert component.get("type") == "desktop-application"
    assert component.findtext("id") == METAINFO.name.removesuffix(".metainfo.xml")
    assert component.findtext("launchable[@type='desktop-id']") == DESKTOP.name
    assert component.findtext("name") == _desktop_entry()["Name"]
    assert {b.text for b in component.iterfind("provides/binary")} == _scripts()
    releases = [r.get("version") for r in component.iterfind("releases/release")]
    assert releases and releases[0] == __version__  # the newest release comes first
    for release in component.iterfind("releases/release"):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", release.get("date", ""))


def test_every_screenshot_is_a_file_of_docs_screenshots() -> None:
    images = [e.text or "" for e in ET.parse(METAINFO).getroot().iterfind(".//screenshot/image")]
    assert images
    for url in images:
        parsed = urlparse(url)
        assert parsed.scheme == "https", url
        path = PurePosixPath(parsed.path)
        assert path.parent.parts[-2:] == ("docs", "screenshots"), url
        assert Path(SCREENSHOTS / path.name).is_file(), f"{url}: no such file in {SCREENSHOTS}"
