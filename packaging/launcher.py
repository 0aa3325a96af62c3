"""The frozen app's one entry script: ``mxmailer-gui`` opens the window, ``mxmailer`` is
the command line.

packaging/mxmailer.spec makes both executables from this one script and one analysis
(half the build time of two, and one copy of Qt in the bundle), so the executable's own
name chooses which ``main`` runs, exactly as the ``[project.scripts]`` entry points of
pyproject.toml do for an installed checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The executable name (without ``.exe``) that runs the command line; any other name,
#: ``mxmailer-gui`` included, opens the window.
CLI_NAME = "mxmailer"


def main() -> int:
    if Path(sys.executable).stem.lower() == CLI_NAME:
        from core.cli import main as cli_main

        return cli_main()
    from gui.app import main as gui_main

    return gui_main()


if __name__ == "__main__":
    sys.exit(main())
