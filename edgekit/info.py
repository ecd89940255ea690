"""``edgekit info``: versions and capabilities of this install, without importing heavy packages.

Versions come from package metadata, so asking never loads torch or TensorFlow.
"""

from __future__ import annotations

import functools
import importlib.util
import platform
import sys
from importlib import metadata

CORE = (("numpy", "numpy"), ("cv2", "opencv-python-headless"))


def packages() -> list[tuple[str, str | None, str]]:
    """(import name, distribution or None, role) of what edgekit uses, from its registries.

    Runtimes are the backends' interpreters (:mod:`edgekit.runtime.backends`), converters the
    export targets' needs (:mod:`edgekit.export.targets`), so a new backend or target shows here
    without editing this file.

    Example:
        >>> ("onnxruntime", "onnxruntime", "runtime") in packages()
        True
    """
    from edgekit.export.targets import TARGETS
    from edgekit.runtime.backends import list_backends

    rows = [(m, d, "core") for m, d in CORE]
    for backend in list_backends():
        rows += [(m, d, "host runtime" if backend.host_only else "runtime") for m, d in backend.packages]
    seen = {m for m, _, _ in rows}
    for target in TARGETS.values():
        for module in target.needs + target.optional:
            if module not in seen:
                seen.add(module)
                rows.append((module, None, "convert"))
    return rows


@functools.lru_cache(maxsize=1)
def _distributions() -> dict:
    """import name -> distributions, read once (it scans every installed package's metadata)."""
    return metadata.packages_distributions()


def package_version(module: str, dist: str | None = None) -> str | None:
    """Installed version of a package if it is importable, else None (nothing is imported).

    Example:
        >>> package_version("numpy", "numpy") is not None
        True
    """
    if importlib.util.find_spec(module) is None:
        return None
    dists = [dist] if dist else _distributions().get(module, [])
    for name in (*dists, module):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def environment_info() -> dict:
    """edgekit and Python versions, importable runtimes/converters, CPU features.

    Example:
        >>> info = environment_info()
        >>> sorted(info)
        ['cpu', 'edgekit', 'packages', 'platform', 'python']
    """
    from edgekit import __version__
    from edgekit.boards.cpu import cpu_info

    table = {mod: {"version": package_version(mod, dist), "role": role} for mod, dist, role in packages()}
    return {
        "edgekit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "packages": table,
    }


def format_info(info: dict) -> str:
    """Human-readable rendering of :func:`environment_info`."""
    cpu = info["cpu"]
    lines = [
        f"edgekit {info['edgekit']}  Python {info['python']}  {info['platform']}",
        f"CPU: {cpu['model'] or cpu['arch']} ({cpu['cores']} cores, {cpu['arch']}): {' '.join(cpu['features']) or 'no SIMD features found'}",
    ]
    for mod, p in info["packages"].items():
        lines.append(f"  {mod:18s} {p['version'] or '-':12s} {p['role']}")
    return "\n".join(lines)
