"""``edgekit arm setup``: prepare the emulated aarch64 userland once; everything later runs offline.

What lands in the cache (``--cache``, else ``$EDGEKIT_ARM_CACHE``, else ``~/.cache/edgekit/arm``):

- ``sysroot/``: Debian's arm64 Python 3.11 and its libraries (:mod:`edgekit.arm.sysroot`);
- ``site/<extra>/``: ``edgekit[<extra>]`` for aarch64, one folder per runtime (:mod:`edgekit.arm.wheels`);
- ``cores/<core>/``: the sysroot seen through links, plus that core's ``/proc/cpuinfo`` and
  ``midr_el1`` files (QEMU's ``-L`` prefix shadows the host's);
- ``plugin/libinsn_count.so``: the instruction-count plugin (:mod:`edgekit.arm.count`);
- ``state.json``: what is installed, sizes and versions.

QEMU itself comes from apt (``qemu-user-static`` runs, Debian's dynamic ``qemu-user`` counts).
Each step is skipped when its result is already there, so a second run costs a second.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from pathlib import Path

from edgekit.arm.cores import CORES
from edgekit.arm.count import build_plugin
from edgekit.arm.sysroot import PYTHON, apt_install, build_sysroot
from edgekit.arm.wheels import EXTRAS, install_extra, installed_size, site_versions
from edgekit.errors import EdgekitError
from edgekit.io import atomic_write_text

CACHE_ENV = "EDGEKIT_ARM_CACHE"
QEMU_STATIC, QEMU_DYNAMIC = "qemu-aarch64-static", "qemu-aarch64"
APT_PACKAGES = {QEMU_STATIC: "qemu-user-static", QEMU_DYNAMIC: "qemu-user"}


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The ARM cache: ``cache``, else ``$EDGEKIT_ARM_CACHE``, else ``~/.cache/edgekit/arm``.

    Example:
        >>> cache_dir("/tmp/arm")
        PosixPath('/tmp/arm')
    """
    return Path(cache or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edgekit" / "arm").expanduser()


def _stderr(msg: str) -> None:
    print(f"arm setup: {msg}", file=sys.stderr, flush=True)


def ensure_qemu(log, counting: bool = True) -> dict:
    """``{binary: path}`` of QEMU user mode for aarch64, installed with apt when missing."""
    wanted = [QEMU_STATIC] + ([QEMU_DYNAMIC] if counting else [])
    missing = [APT_PACKAGES[b] for b in wanted if shutil.which(b) is None]
    if missing:
        apt_install(missing, log)
    return {b: shutil.which(b) for b in wanted}


def write_core_root(cache: Path, core_name: str, cpus: int | None = None) -> Path:
    """``cores/<core>``: links to the sysroot's top folders plus this core's ``proc`` and ``sys`` files.

    Example:
        >>> write_core_root(Path("~/.cache/edgekit/arm"), "cortex-a72")  # doctest: +SKIP
    """
    core = CORES[core_name]
    cpus = cpus or os.cpu_count() or 1
    root = cache / "cores" / core_name
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for entry in (cache / "sysroot").iterdir():
        if entry.name not in ("proc", "sys"):
            (tmp / entry.name).symlink_to(Path("..", "..", "sysroot", entry.name))
    (tmp / "proc").mkdir()
    (tmp / "proc" / "cpuinfo").write_text(core.cpuinfo(cpus))
    for k in range(cpus):  # OpenVINO reads MIDR_EL1 here and warns when it cannot
        ident = tmp / "sys" / "devices" / "system" / "cpu" / f"cpu{k}" / "regs" / "identification"
        ident.mkdir(parents=True)
        (ident / "midr_el1").write_text(f"0x{core.midr:016x}\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def read_state(cache: Path) -> dict:
    """What ``arm setup`` installed in ``cache`` (empty when nothing)."""
    try:
        return json.loads((cache / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def setup(cache: str | os.PathLike | None = None, runtimes=EXTRAS, counting: bool = True, log=_stderr) -> dict:
    """Prepare (or complete) the emulated aarch64 userland; returns the state written to ``state.json``.

    Every step runs only when its result is missing; steps that fail are collected and raised
    as one error at the end naming each thing that could not be installed, after the others ran.

    Example:
        >>> setup(runtimes=["onnx"])["site"]["onnx"]["versions"]["onnxruntime"]  # doctest: +SKIP
        '1.31.1'
    """
    unknown = [r for r in runtimes if r not in EXTRAS]
    if unknown:
        raise EdgekitError(f"unknown runtime {', '.join(unknown)}: choose from {', '.join(EXTRAS)}")
    cache = cache_dir(cache)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgekitError(f"cannot create the ARM cache {cache} ({exc.strerror}): pass a writable --cache") from None
    failed: list[str] = []
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one setup at a time per cache (tests and scripts share it)
        state = read_state(cache)
        try:
            state["qemu"] = ensure_qemu(log, counting)
        except EdgekitError as exc:
            failed.append(f"QEMU ({exc})")
        if not (cache / "sysroot" / PYTHON).is_file():
            try:
                build_sysroot(cache / "sysroot", cache / "apt", log)
            except EdgekitError as exc:
                failed.append(f"the arm64 Python ({exc})")
        if (cache / "sysroot" / PYTHON).is_file():
            for name in CORES:
                if not (cache / "cores" / name / "proc" / "cpuinfo").is_file():
                    write_core_root(cache, name)
            state["python"] = str(cache / "sysroot" / PYTHON)
        sites = state.setdefault("site", {})
        for extra in runtimes:
            site = cache / "site" / extra
            if not (site / ".edgekit-source").is_file():
                try:
                    install_extra(site, extra, log)
                except EdgekitError as exc:
                    failed.append(f"edgekit[{extra}] ({exc})")
                    continue
            if extra not in sites:
                sites[extra] = {"bytes": installed_size(site), "versions": site_versions(site)}
        if counting and state.get("qemu", {}).get(QEMU_DYNAMIC):
            try:
                state["plugin"] = str(build_plugin(cache, log))
            except EdgekitError as exc:
                failed.append(f"the instruction-count plugin ({exc})")
        atomic_write_text(cache / "state.json", json.dumps(state, indent=1))
    if failed:
        raise EdgekitError(f"arm setup could not install: {'; '.join(failed)}")
    return state
