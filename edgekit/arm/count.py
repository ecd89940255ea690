"""Instruction counts per inference: the TCG plugin's build and its answer.

``plugin/insn_count.c`` ships as package data and is compiled by ``edgekit arm setup`` with the
host's gcc against the ``qemu-plugin.h`` of Debian's qemu source package (Debian's ``qemu-user``
accepts ``-plugin`` but ships no header) and glib's headers (``libglib2.0-dev``). Counts are
deterministic for a given binary, input and ``-cpu``: the regression metric of ARM efficiency.
Turning them into milliseconds would need an assumed instructions-per-cycle; edgekit does not.
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
import subprocess
from pathlib import Path

from edgekit.arm.sysroot import apt_install, plugin_header
from edgekit.errors import EdgekitError

CLASSES = ("total", "simd", "loads_stores", "dot", "fma")
PLUGIN = "libinsn_count.so"


def plugin_source() -> Path:
    """The plugin's C source, as installed with edgekit."""
    return Path(str(importlib.resources.files("edgekit.arm") / "plugin" / "insn_count.c"))


def build_plugin(cache: Path, log) -> Path:
    """Compile the plugin into ``cache/plugin`` (again only when its source changed).

    Example:
        >>> build_plugin(Path("~/.cache/edgekit/arm"), print).name  # doctest: +SKIP
        'libinsn_count.so'
    """
    out = cache / "plugin" / PLUGIN
    src = plugin_source()
    stamp = out.with_suffix(".src")
    if out.is_file() and stamp.is_file() and stamp.read_text() == src.read_text():
        return out
    missing = [p for p, ok in (("gcc", shutil.which("gcc")), ("pkg-config", shutil.which("pkg-config"))) if not ok]
    if not missing and subprocess.run(["pkg-config", "--exists", "glib-2.0"]).returncode != 0:
        missing.append("libglib2.0-dev")
    if missing:
        apt_install(missing, log)
    header = plugin_header(cache / "plugin" / "include", cache / "apt-src", log)
    cflags = subprocess.run(["pkg-config", "--cflags", "glib-2.0"], capture_output=True, text=True).stdout.split()
    log("instruction-count plugin: gcc")
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", *cflags, f"-I{header.parent}", str(src), "-o", str(out)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise EdgekitError(f"gcc could not build {src.name} ({(r.stderr.strip().splitlines() or ['?'])[0][:200]})")
    stamp.write_text(src.read_text())
    return out


def read_counts(path: Path, runs: int) -> dict:
    """Per-inference counts from the plugin's output for ``runs`` bracketed calls.

    Example:
        >>> import tempfile; p = Path(tempfile.mkdtemp()) / "c.json"
        >>> _ = p.write_text('{"markers": 2, "total": 300, "simd": 30, "loads_stores": 90, "dot": 0, "fma": 12}')
        >>> read_counts(p, 3)["total"]
        100
    """
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        raise EdgekitError(f"the instruction-count plugin wrote no counts ({path}): rerun `edgekit arm setup`") from None
    if raw.get("markers") != 2:
        raise EdgekitError(f"the guest made {raw.get('markers')} getppid() markers instead of 2: the counts would "
                           "cover the wrong code")
    return {k: round(raw[k] / runs) for k in CLASSES}
