"""The card's top-level `selectors/` folder must never shadow the standard library's `selectors` module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import s2lbench

REPO = Path(__file__).resolve().parents[1]
PROBE = "import asyncio, selectors; selectors.DefaultSelector; print(selectors.__file__)"


def _probe(cwd: Path) -> str:
    # `python -c` puts the working folder first on sys.path: the worst case for shadowing
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_repo_root_does_not_shadow_stdlib_selectors():
    assert (REPO / "selectors").is_dir()
    path = Path(_probe(REPO))
    assert path.parent != REPO / "selectors" and path.name == "selectors.py"


def test_installed_package_does_not_shadow_stdlib_selectors():
    installed = Path(s2lbench.__file__).resolve().parent
    assert installed.is_dir()
    path = Path(_probe(installed))
    assert path.name == "selectors.py" and "s2lbench" not in path.parts


def test_builtin_selectors_import_under_the_package_namespace():
    import importlib

    module = importlib.import_module("s2lbench.selectors.random_selector")
    assert module.RandomSelector.name == "random"
