"""``edgekit info``: versions and capabilities of this install, without importing heavy packages.

Versions come from package metadata, so asking never loads torch or TensorFlow.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from importlib import metadata

# (import name, distribution name, role)
PACKAGES = [
    ("numpy", "numpy", "core"),
    ("cv2", "opencv-python-headless", "core"),
    ("onnxruntime", "onnxruntime", "runtime"),
    ("ai_edge_litert", "ai-edge-litert", "runtime"),
    ("tflite_runtime", "tflite-runtime", "runtime"),
    ("openvino", "openvino", "runtime"),
    ("ncnn", "ncnn", "runtime"),
    ("torch", "torch", "train/convert"),
    ("onnx", "onnx", "convert"),
    ("onnxscript", "onnxscript", "convert"),
    ("onnxslim", "onnxslim", "convert"),
    ("tensorflow", "tensorflow-cpu", "convert"),
    ("litert_torch", "litert-torch", "convert"),
    ("nncf", "nncf", "convert"),
    ("pnnx", "pnnx", "convert"),
]


def package_version(module: str, dist: str) -> str | None:
    """Installed version of a package if it is importable, else None (nothing is imported).

    Example:
        >>> package_version("numpy", "numpy") is not None
        True
    """
    if importlib.util.find_spec(module) is None:
        return None
    for name in (dist, module, dist.replace("-cpu", "")):
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

    packages = {mod: {"version": package_version(mod, dist), "role": role} for mod, dist, role in PACKAGES}
    return {
        "edgekit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "packages": packages,
    }


def format_info(info: dict) -> str:
    """Human-readable rendering of :func:`environment_info`."""
    cpu = info["cpu"]
    lines = [
        f"edgekit {info['edgekit']}  Python {info['python']}  {info['platform']}",
        f"CPU: {cpu['model'] or cpu['arch']} ({cpu['cores']} cores, {cpu['arch']}): {' '.join(cpu['features']) or 'no SIMD features found'}",
    ]
    for mod, p in info["packages"].items():
        lines.append(f"  {mod:15s} {p['version'] or '-':12s} {p['role']}")
    return "\n".join(lines)
