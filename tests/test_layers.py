"""Layers point down only: import-linter's contracts (pyproject.toml) hold, and they can fail.

The contracts: ``edgekit layers point down`` (cli > reports > export > train > validate >
models/data/metrics > runtime > boards > io/errors; the device side below every host module,
so it cannot import host code even inside a function) and ``acyclic_siblings`` (no import
cycle between the modules of any package). grimp walks a package's folder, so the tree is
staged as an install lays it out (pyproject's ``package-dir`` mapping); ``make lint-imports``
runs the same contracts on a pip-installed tree in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def stage(dest: Path) -> Path:
    """Copy the package folders to ``dest`` in their installed layout; the tree root."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):  # "edgekit" first, then its mapped subpackages
        shutil.copytree(ROOT / folder, dest / package.replace(".", "/"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "assets"))
    return dest


def lint(tree: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # cwd outside the checkout: import-linter puts the cwd on sys.path, and the checkout's own
    # edgekit/ folder lacks export/, runtime/, boards/
    return subprocess.run([str(LINT), "--no-cache", str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    if not LINT.exists():
        pytest.skip("import-linter is not installed (the dev extra has it)")
    return stage(tmp_path_factory.mktemp("tree"))


def test_contracts_are_kept(tree, tmp_path):
    res = lint(tree, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "edgekit layers point down KEPT" in res.stdout
    assert "no import cycles between sibling modules of any package KEPT" in res.stdout


def test_a_lazy_reach_up_and_a_cycle_break_them(tree, tmp_path):
    """The check can fail: a function-local host import on the device side, and a runtime cycle."""
    bad = shutil.copytree(tree, tmp_path / "bad")
    with open(bad / "edgekit" / "boards" / "cpu.py", "a") as f:
        f.write("\n\ndef _reach_up():\n    from edgekit.export import source  # noqa: F401\n")
    with open(bad / "edgekit" / "runtime" / "backends.py", "a") as f:
        f.write("\n\ndef _cycle():\n    from edgekit.runtime import loader  # noqa: F401\n")
    res = lint(bad, tmp_path)
    assert res.returncode != 0
    assert "edgekit.boards is not allowed to import edgekit.export" in res.stdout
    assert "No cycles are allowed in edgekit.runtime" in res.stdout
