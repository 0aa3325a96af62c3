"""Build the one-folder app bundle with PyInstaller: what ``make app`` runs.

    .venv/bin/python packaging/build_app.py [--distpath DIR] [--workpath DIR]

Writes ``DIR/mxmailer/`` (default ``dist/mxmailer/``) holding ``mxmailer-gui`` and
``mxmailer``; on macOS also ``DIR/MX Mailer.app``. One script, so that ``make app`` and
tests/packaging/test_bundle.py build the bundle with the same command and options and
the test proves what the Makefile ships. PyInstaller comes from the ``app`` (or ``test``)
extra of pyproject.toml.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "mxmailer.spec"
#: The folder COLLECT makes under the dist path (``name=`` in the spec).
BUNDLE_NAME = "mxmailer"


def build(distpath: Path, workpath: Path) -> Path:
    """Run PyInstaller on the spec; return the bundle folder. Raises on failure."""
    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",  # replace an earlier bundle in distpath without asking
        "--clean",  # no stale analysis from another checkout or Python in workpath
        "--log-level=WARN",
        "--distpath",
        str(distpath),
        "--workpath",
        str(workpath),
        str(SPEC),
    ]
    subprocess.run(command, cwd=ROOT, check=True)
    return distpath / BUNDLE_NAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--distpath", type=Path, default=ROOT / "dist")
    parser.add_argument("--workpath", type=Path, default=ROOT / "build" / "pyinstaller")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        bundle = build(args.distpath.resolve(), args.workpath.resolve())
    except subprocess.CalledProcessError as error:
        print(f"build_app: PyInstaller failed (exit {error.returncode})", file=sys.stderr)
        return 1
    print(f"build_app: {bundle} built in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
