"""Start the board install's Python on an emulated Cortex core (QEMU user mode, no root, no binfmt).

``qemu-aarch64-static -cpu cortex-a72 -L cores/cortex-a72 sysroot/usr/bin/python3.11 ...`` with
only ``site/<extra>`` on ``PYTHONPATH`` and a scrubbed environment: nothing of the host's Python
leaks in. Counting runs use Debian's dynamic ``qemu-aarch64`` (the static build has no plugin
support) with the instruction-count plugin. One guest thread: two were no faster under emulation.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from edgekit.arm.cores import get_core
from edgekit.arm.setup import QEMU_DYNAMIC, QEMU_STATIC, cache_dir, read_state
from edgekit.arm.sysroot import PYTHON
from edgekit.arm.wheels import refresh_edgekit
from edgekit.errors import EdgekitError

GUEST_TIMEOUT_S = 3600  # emulation runs 100-950x slower than native; a big model on a53 takes minutes


def require(cache: Path, extra: str, counting: bool = False) -> dict:
    """The installed pieces a run needs; an error naming ``edgekit arm setup`` when one is missing.

    Example:
        >>> require(cache_dir(), "onnx")["python"]  # doctest: +SKIP
    """
    state = read_state(cache)
    setup_hint = f"run `edgekit arm setup --runtimes {extra}" + (f" --cache {cache}`" if cache != cache_dir() else "`")
    qemu = (state.get("qemu") or {}).get(QEMU_DYNAMIC if counting else QEMU_STATIC)
    if not qemu or not Path(qemu).is_file():
        raise EdgekitError(f"QEMU for aarch64 is not installed: {setup_hint}")
    if not (cache / "sysroot" / PYTHON).is_file():
        raise EdgekitError(f"the emulated arm64 Python is not in {cache}: {setup_hint}")
    if not (cache / "site" / extra / ".edgekit-source").is_file():
        raise EdgekitError(f"edgekit[{extra}] is not installed for aarch64 in {cache}: {setup_hint}")
    if counting and not (state.get("plugin") and Path(state["plugin"]).is_file()):
        raise EdgekitError(f"the instruction-count plugin is not built in {cache}: {setup_hint} (it needs qemu-user, gcc and "
                           "libglib2.0-dev)")
    return {"qemu": qemu, "python": cache / "sysroot" / PYTHON, "site": cache / "site" / extra,
            "plugin": state.get("plugin")}


def guest_command(cache: Path, core: str, extra: str, args: list[str], count_out: Path | None = None) -> tuple[list, dict]:
    """(argv, env) that run ``python3.11 *args`` on the emulated ``core`` with ``edgekit[extra]``."""
    need = require(cache, extra, counting=count_out is not None)
    root = cache / "cores" / get_core(core).name
    if not (root / "proc" / "cpuinfo").is_file():
        raise EdgekitError(f"{root} is missing: run `edgekit arm setup`")
    argv = [need["qemu"], "-cpu", get_core(core).name, "-L", str(root)]
    if count_out is not None:
        argv += ["-plugin", f"{need['plugin']},out={count_out}"]
    # -P: no script folder or cwd first on sys.path, so a checkout's edgekit/ can never shadow the board install
    argv += [str(root / PYTHON), "-P", *args]
    home = cache / "home"
    home.mkdir(exist_ok=True)
    # qemu-user hands its own environment to the guest: give it a clean one
    env = {"PYTHONPATH": str(need["site"]), "PYTHONNOUSERSITE": "1", "HOME": str(home), "PATH": "/usr/bin:/bin",
           "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "TMPDIR": os.environ.get("TMPDIR", "/tmp")}
    return argv, env


def run_guest(cache: Path, core: str, extra: str, args: list[str], count_out: Path | None = None,
              timeout: float = GUEST_TIMEOUT_S, log=None) -> subprocess.CompletedProcess:
    """Run the aarch64 Python with ``args``; an error with the guest's last stderr line when it fails.

    The board install's edgekit is refreshed first when the checkout changed (a local wheel,
    nothing downloaded).

    Example:
        >>> run_guest(cache_dir(), "cortex-a76", "onnx", ["-c", "import platform; print(platform.machine())"]).stdout  # doctest: +SKIP
        'aarch64\\n'
    """
    refresh_edgekit(require(cache, extra)["site"], log or (lambda m: None))
    argv, env = guest_command(cache, core, extra, args, count_out)
    try:
        r = subprocess.run(argv, env=env, cwd=env["HOME"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"the emulated {core} run took over {timeout:.0f} s: use fewer images") from None
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {r.returncode}"
        if r.returncode < 0:
            why = f"killed by signal {-r.returncode} ({why})"
        raise EdgekitError(f"the emulated {core} run failed: {why[:300]}")
    return r
