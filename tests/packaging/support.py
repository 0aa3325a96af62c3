"""Helpers shared by the packaging tests: the repository's paths and required tools."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
ICONS = ROOT / "resources" / "icons"


def load_script(name: str) -> ModuleType:
    """Import ``packaging/<name>.py`` by path: packaging/ is not a Python package (its
    name would shadow the PyPI ``packaging`` that pip and pytest import)."""
    spec = importlib.util.spec_from_file_location(f"mxmailer_{name}", PACKAGING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_tool(program: str, debian_package: str) -> str:
    """The path of ``program``, or skip the test; under ``CI`` fail instead, since CI
    must never skip (a skip there would hide a missing install step)."""
    path = shutil.which(program)
    if path is None:
        hint = f"{program} is not installed: apt-get install {debian_package}"
        if os.environ.get("CI"):
            pytest.fail(hint)
        pytest.skip(hint)
    return path
