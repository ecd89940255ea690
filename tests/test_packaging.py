"""Packaging that cannot drift from the code: the wheel holds every module and data file, the extras what the registries need.

1. The wheel: built from a copy of the working tree (``pip wheel --no-deps --no-build-isolation``,
   offline, with the venv's setuptools), installed into a fresh venv that sees the dependencies of
   this venv through a ``.pth`` line (``.pth`` files inside that added folder are not processed, so
   the editable install's finder is not active there: ``edgekit`` can only come from the wheel,
   which is asserted). In that venv every module of edgekit (edgekit.export, edgekit.runtime,
   edgekit.boards, every subpackage) imports, and every data file of the source tree (board YAMLs,
   model cfgs, the embedded sample, model YAMLs, weights) is found through ``importlib.resources``.
   A new subpackage missing from ``[tool.setuptools] packages`` or a data file outside
   ``package-data`` fails here, not on a user's board.
2. The extras: every export target's ``needs`` and every backend's interpreter are installed by the
   extra they name (``Target.extra``, the backend's install hint), read from pyproject.toml and
   mapped from import names to distributions with ``importlib.metadata.packages_distributions()``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import site
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> the package it installs as ([tool.setuptools.package-dir] of pyproject.toml)
PACKAGE_DIRS = {"edgekit": "edgekit", "export": "edgekit.export", "runtime": "edgekit.runtime", "boards": "edgekit.boards"}
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _source_layout() -> tuple[list[str], dict[str, list[str]]]:
    """Every module (by its installed name) and every data file (per package) of the source tree."""
    modules, data = [], {}
    for folder, package in PACKAGE_DIRS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base)
            if not path.is_file() or any(p == "__pycache__" or p.startswith(".") for p in rel.parts) or path.suffix == ".pyc":
                continue
            if folder == "edgekit" and rel.parts[0] in PACKAGE_DIRS.values():
                continue
            # a .py file in a folder with __init__.py is a module; anything else is data of the nearest package
            pkg_dir = path.parent
            while not (pkg_dir / "__init__.py").is_file():
                pkg_dir = pkg_dir.parent
            pkg = ".".join([package, *pkg_dir.relative_to(base).parts])
            if path.suffix == ".py" and pkg_dir == path.parent:
                modules.append(pkg if path.stem == "__init__" else f"{pkg}.{path.stem}")
            else:
                data.setdefault(pkg, []).append(path.relative_to(pkg_dir).as_posix())
    return sorted(modules), data


CHECK = r'''
import importlib, importlib.resources, importlib.util, json, sys, traceback
from pathlib import Path

modules, data, prefix = json.loads(sys.argv[1])
import edgekit

out = {"edgekit_file": edgekit.__file__, "in_prefix": Path(edgekit.__file__).resolve().is_relative_to(Path(prefix).resolve()),
       "failed": {}, "missing_data": [], "missing_modules": []}
for name in modules:
    if name.endswith("__main__"):  # importing it runs the CLI: that it is there is enough
        if importlib.util.find_spec(name) is None:
            out["missing_modules"].append(name)
        continue
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "edgekit":
            out["missing_modules"].append(name)
        else:
            out["failed"][name] = f"needs {exc.name}"
    except Exception:
        out["failed"][name] = traceback.format_exc(limit=3)
for package, files in data.items():
    root = importlib.resources.files(package)
    out["missing_data"] += [f"{package}:{f}" for f in files if not root.joinpath(*f.split("/")).is_file()]
# what the code itself looks up through importlib.resources
from edgekit.boards.profiles import list_profiles
from edgekit.data import sample_data_yaml

out["profiles"] = len(list_profiles())
out["sample_in_prefix"] = Path(sample_data_yaml()).resolve().is_relative_to(Path(prefix).resolve())
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the working tree (the tree itself gets no build/ or egg-info)."""
    pytest.importorskip("setuptools", reason="building without isolation (offline) needs setuptools in this venv")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, src / name)
    for folder in PACKAGE_DIRS:
        shutil.copytree(ROOT / folder, src / folder, ignore=JUNK)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "--disable-pip-version-check", "-q", "-w", str(tmp / "dist"), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    (whl,) = (tmp / "dist").glob("edgekit-*.whl")
    return whl


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new venv with only the wheel installed; this venv's dependencies visible through a .pth line."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_edgekit_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    res = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
                          "-q", str(wheel)], capture_output=True, text=True, timeout=300, cwd=venv)
    assert res.returncode == 0, res.stderr[-3000:]
    return venv


def test_wheel_holds_every_module_and_data_file(fresh_venv, tmp_path):
    modules, data = _source_layout()
    assert {"edgekit.export.exporter", "edgekit.runtime.loader", "edgekit.boards.profiles", "edgekit.models.registry"} <= set(modules)
    assert any(f.endswith(".yaml") for f in data["edgekit.boards"]) and data["edgekit.models"]
    assert {"assets/fish_sample/data.yaml", "assets/model_yaml/ultra-light-face-rfb320.yaml"} <= set(data["edgekit"])
    assert any(f.startswith("assets/weights/") and f.endswith(".pt") for f in data["edgekit"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    res = subprocess.run([str(fresh_venv / "bin" / "python"), "-I", "-c", CHECK, json.dumps([modules, data, str(fresh_venv)])],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["in_prefix"], f"edgekit came from {out['edgekit_file']}, not from the wheel in {fresh_venv}"
    assert out["missing_modules"] == [], "in the source tree but not in the wheel: add them to [tool.setuptools] packages"
    assert out["missing_data"] == [], "in the source tree but not in the wheel: add them to [tool.setuptools.package-data]"
    assert out["failed"] == {}, out["failed"]
    assert out["profiles"] == len(data["edgekit.boards"]) and out["sample_in_prefix"]
    cli = subprocess.run([str(fresh_venv / "bin" / "edgekit"), "--version"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env=env)
    assert cli.returncode == 0 and re.search(r"\d+\.\d+", cli.stdout + cli.stderr), cli.stderr[-2000:]


# ---- extras ----


def _extras() -> dict[str, set[str]]:
    """``{extra: normalized distribution names it installs}``, ``edgekit[a,b]`` self-references expanded."""
    raw = _pyproject()["project"]["optional-dependencies"]

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    def expand(extra: str, seen=()) -> set[str]:
        out = set()
        for req in raw[extra]:
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[([^\]]*)\])?", req)
            name, inner = m.group(1), m.group(3)
            if norm(name) == "edgekit":
                for e in (x.strip() for x in (inner or "").split(",") if x.strip()):
                    assert e in raw, f"extra {extra!r} refers to an unknown extra {e!r}"
                    if e not in seen:
                        out |= expand(e, (*seen, extra))
            else:
                out.add(norm(name))
        return out

    return {e: expand(e) for e in raw}


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()  # seconds: it reads every installed distribution's RECORD


def _distributions(import_name: str) -> set[str]:
    dists = _packages_distributions().get(import_name)
    if not dists:
        pytest.skip(f"{import_name} is not installed here: its distribution cannot be looked up")
    return {re.sub(r"[-_.]+", "-", d).lower() for d in dists}


def _backends():
    """Every registered backend, the host's torch reference included (its extra must install torch)."""
    from edgekit.runtime.backends import list_backends

    return list_backends()


def _extra_of(backend) -> str:
    m = re.search(r"edgekit\[([^\]]+)\]", backend.install_hint())
    assert m, f"{backend.name}: install hint names no extra: {backend.install_hint()}"
    return m.group(1)


def test_every_target_extra_installs_what_it_needs():
    from edgekit.export.targets import TARGETS

    extras = _extras()
    for name, target in TARGETS.items():
        assert target.extra in extras, f"target {name}: extra {target.extra!r} is not in pyproject.toml"
        for module in target.needs:
            dists = _distributions(module)
            assert dists & extras[target.extra], f"target {name} needs {module} ({dists}); edgekit[{target.extra}] lacks it"


@pytest.mark.parametrize("backend", [b.name for b in _backends()])
def test_every_backend_extra_installs_its_interpreter(backend):
    from edgekit.runtime.backends import get_backend

    b = get_backend(backend)
    extras = _extras()
    extra = _extra_of(b)
    assert extra in extras, f"backend {backend}: install hint names {extra!r}, which is not in pyproject.toml"
    # the interpreter the extra installs is one this backend can import (first installed wins)
    declared = {re.sub(r"[-_.]+", "-", dist).lower() for _, dist in b.packages}
    assert declared & extras[extra], f"backend {backend}: edgekit[{extra}] installs none of {sorted(declared)}"
    for module, dist in b.packages:  # the registry's import name -> distribution pairs are true where installed
        if _packages_distributions().get(module):
            assert re.sub(r"[-_.]+", "-", dist).lower() in _distributions(module), (module, dist)


def test_all_extra_installs_every_other_extra():
    extras = _extras()
    union = set().union(*(v for k, v in extras.items() if k not in ("all", "dev")))
    assert union <= extras["all"], sorted(union - extras["all"])
