"""PySide6 6.12.0 on CPython 3.11 drops one reference to ``None`` on every call of a void
Qt method; under qasync (which calls startTimer/killTimer per loop callback) the process
aborts with ``Fatal Python error: none_dealloc`` within seconds. pyproject.toml pins
PySide6 below 6.12; this test checks whichever release is installed, so that an upgrade
is proven rather than trusted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CALLS = 5000

# Run in a fresh interpreter: a leaking release would corrupt None's refcount in the
# test process itself, and the count must not be disturbed by pytest's own objects.
_PROBE = textwrap.dedent(
    f"""
    import os
    import sys
    from PySide6.QtCore import QObject
    obj = QObject()
    obj.setObjectName("warm-up")
    before = sys.getrefcount(None)
    for _ in range({CALLS}):
        obj.setObjectName("probe")
    after = sys.getrefcount(None)
    print(before - after, flush=True)
    os._exit(0)  # a leaking build aborts in finalisation (none_dealloc); we have our figure
    """
)


def none_references_lost(python: str = sys.executable) -> int:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [python, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_void_qt_calls_do_not_leak_none_references() -> None:
    lost = none_references_lost()
    # A leaking build loses one reference per call (5000); allow a few for interpreter noise.
    assert abs(lost) < CALLS // 100, f"None lost {lost} references over {CALLS} void Qt calls"
