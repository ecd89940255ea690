"""``edgekit rknn setup``: rknn-toolkit2 in a cached venv of its own, built once from the package index.

rknn-toolkit2 2.5.0 declares ``torch<=2.4``, ``onnx<=1.18``, ``protobuf<=4.25.4`` and
``numpy<=1.26.4``: it cannot share edgekit's environment (with onnx 1.23 it fails on
``onnx.mapping``). So it gets a venv of its own, by default ``~/.cache/edgekit/rknn``
(``$EDGEKIT_RKNN_ENV`` or ``--env`` elsewhere), and the ``rknn``/``rknn-int8`` targets drive it
in a child process (:mod:`edgekit.export.rknn`), as the MNN tools are driven.

The toolkit is installed with ``--no-deps`` next to :data:`REQUIREMENTS`, the packages its
ONNX converter and x86 simulator really import, at versions inside its own pins, except torch:
``rknn.api`` imports it on every path (``rknn_utils``), though only ``load_pytorch`` uses it, so the
venv gets the same CPU wheel as edgekit (torch 2.13.0, above the toolkit's ``<=2.4``: the toolkit
converted and simulated edgekit's detectors with it, see ``tests/export/test_rknn.py``).

The venv is built in place; ``state.json``, written last, marks it complete and records the
requirements it was built from. A folder without it (an interrupted build) or built from other
requirements is rebuilt; a complete one costs nothing (:func:`ready` only reads the file).

Example:
    >>> env_dir("/tmp/rk")
    PosixPath('/tmp/rk')
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from edgekit.errors import EdgekitError

ENV_VAR = "EDGEKIT_RKNN_ENV"
TOOLKIT = "rknn-toolkit2==2.5.0"
# what rknn.api imports for load_onnx/build/export_rknn/init_runtime() (the simulator), inside the toolkit's
# own pins; opencv-python-headless stands in for its opencv-python (same cv2 module, no GUI libraries);
# torch: the CPU wheel edgekit pins (constraints.txt), any other spec pulls GBs of CUDA packages
REQUIREMENTS = ("numpy==1.26.4", "onnx==1.18.0", "protobuf==4.25.4", "onnxruntime==1.22.1", "scipy==1.15.3",
                "opencv-python-headless==4.11.0.86", "fast-histogram==0.14", "psutil==7.0.0",
                "ruamel.yaml==0.18.14", "tqdm==4.67.1", "setuptools==80.9.0", "torch==2.13.0")
SETUP_HINT = "edgekit rknn setup"
PIP_TIMEOUT_S = 1200


def env_dir(path: str | os.PathLike | None = None) -> Path:
    """The toolkit venv: ``path``, else ``$EDGEKIT_RKNN_ENV``, else ``~/.cache/edgekit/rknn``.

    Example:
        >>> env_dir("/tmp/rk").name
        'rk'
    """
    return Path(path or os.environ.get(ENV_VAR) or Path.home() / ".cache" / "edgekit" / "rknn").expanduser()


def python(path: str | os.PathLike | None = None) -> Path:
    """The venv's interpreter (whether or not it exists yet)."""
    return env_dir(path) / "bin" / "python"


def fingerprint() -> str:
    """A hash of what the venv is built from: a change of pins rebuilds it.

    Example:
        >>> len(fingerprint())
        12
    """
    return hashlib.sha256("\n".join((TOOLKIT, *REQUIREMENTS)).encode()).hexdigest()[:12]


def read_state(path: str | os.PathLike | None = None) -> dict:
    """What :func:`setup` recorded in the venv (empty when it is not complete)."""
    try:
        return json.loads((env_dir(path) / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def ready(path: str | os.PathLike | None = None) -> bool:
    """Is a complete venv built from the current pins there? (Reads one file; runs nothing.)

    Example:
        >>> ready("/nonexistent")
        False
    """
    return read_state(path).get("fingerprint") == fingerprint() and python(path).is_file()


def missing(path: str | os.PathLike | None = None) -> list[str]:
    """``[]`` when the toolkit venv is ready, else what is missing, for ``edgekit export --list``."""
    return [] if ready(path) else [f"rknn-toolkit2 venv ({env_dir(path)})"]


def _run(args: list[str], what: str, env_path: Path) -> str:
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"cannot build the rknn-toolkit2 venv in {env_path}: {what} took over {PIP_TIMEOUT_S} s "
                           "(a slow or absent network to the package index): run `edgekit rknn setup` again") from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "ERROR" in ln or "Error" in ln), lines[-1] if lines else "no output")
        raise EdgekitError(f"cannot build the rknn-toolkit2 venv in {env_path}: {what} failed ({why[:240]}): "
                           "check the connection to the package index and rerun `edgekit rknn setup`")
    return r.stdout


def _pip(py: Path, args: list[str], what: str, env_path: Path) -> None:
    _run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-script-location",
          *args], what, env_path)


def setup(path: str | os.PathLike | None = None, log=lambda msg: None) -> dict:
    """Build (or find) the rknn-toolkit2 venv; returns its ``state.json`` record.

    Idempotent: a complete venv from the current pins is returned as it is (one file read).
    Concurrent calls (tests, scripts) wait for one another on a lock file.

    Raises:
        EdgekitError: one line naming what could not be built and how to retry.

    Example:
        >>> setup()["toolkit"]  # doctest: +SKIP
        '2.5.0'
    """
    root = env_dir(path)
    if ready(root):
        return read_state(root)
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        lock = open(root.parent / f".{root.name}.lock", "w")  # noqa: SIM115 (held until the build ends)
    except OSError as exc:
        raise EdgekitError(f"cannot create the rknn-toolkit2 venv in {root} ({exc.strerror or exc}): "
                           f"set {ENV_VAR} (or --env) to a writable folder") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready(root):  # another process built it while this one waited
            return read_state(root)
        t0 = time.perf_counter()
        if root.is_dir() and any(root.iterdir()) and not (root / "pyvenv.cfg").is_file():
            raise EdgekitError(f"{root} exists and is not a venv: give --env (or {ENV_VAR}) a new or empty folder")
        shutil.rmtree(root, ignore_errors=True)  # an interrupted build or other pins: start clean
        log(f"creating the venv {root}")
        _run([sys.executable, "-m", "venv", str(root)], "creating the venv", root)
        py = python(root)
        log(f"installing {', '.join(REQUIREMENTS)}")
        _pip(py, list(REQUIREMENTS), "installing the toolkit's dependencies", root)
        log(f"installing {TOOLKIT} (--no-deps: its pins would replace the torch CPU wheel with torch<=2.4 and CUDA)")
        _pip(py, ["--no-deps", TOOLKIT], f"installing {TOOLKIT}", root)
        probe = ("import importlib.metadata as m, json; from rknn.api import RKNN; "
                 "print(json.dumps({d: m.version(d) for d in ('rknn-toolkit2', 'numpy', 'onnx', 'onnxruntime')}))")
        versions = json.loads(_run([str(py), "-c", probe], "importing rknn.api in the new venv", root).splitlines()[-1])
        state = {"toolkit": versions["rknn-toolkit2"], "python": str(py), "versions": versions,
                 "fingerprint": fingerprint(), "build_s": round(time.perf_counter() - t0, 1),
                 "bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())}
        (root / "state.json").write_text(json.dumps(state, indent=1))
        return state
