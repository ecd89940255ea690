"""CPU features from /proc/cpuinfo: NEON, dot product, fp16, SVE on ARM; AVX2/AVX-512/VNNI on x86.

Standard library only, so it runs on any board before anything else is installed.
"""

from __future__ import annotations

import platform
from pathlib import Path

# the flags that decide which kernels a runtime can use, and what users call them
ARM_FEATURES = {"asimd": "neon", "asimddp": "dotprod", "fphp": "fp16", "asimdhp": "fp16-simd",
                "sve": "sve", "sve2": "sve2", "i8mm": "i8mm", "bf16": "bf16"}
X86_FEATURES = {"sse4_2": "sse4.2", "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c",
                "avx512f": "avx512f", "avx512_vnni": "avx512-vnni", "avx_vnni": "avx-vnni",
                "avx512_bf16": "avx512-bf16", "amx_int8": "amx-int8", "amx_bf16": "amx-bf16"}


def parse_cpuinfo(text: str, machine: str | None = None) -> dict:
    """Architecture, model name, core count and named ISA features from /proc/cpuinfo text.

    Example:
        >>> info = parse_cpuinfo("processor : 0\\nFeatures : fp asimd asimddp fphp\\nCPU part : 0xd0b\\n", "aarch64")
        >>> info["features"], info["cores"]
        (['dotprod', 'fp16', 'neon'], 1)
    """
    machine = machine or platform.machine()
    flags: set[str] = set()
    model, cores, parts = "", 0, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "processor":
            cores += 1
        elif key in ("flags", "features"):
            flags.update(value.split())
        elif key in ("model name", "hardware") and not model:
            model = value
        elif key == "cpu part":
            parts.add(value)
    arm = machine in ("aarch64", "arm64") or machine.startswith("arm")
    table = ARM_FEATURES if arm else X86_FEATURES
    features = sorted({name for flag, name in table.items() if flag in flags})
    if arm and machine.startswith("armv7") and "neon" in flags:
        features = sorted(set(features) | {"neon"})
    return {"arch": machine, "model": model, "cores": cores, "features": features, "cpu_parts": sorted(parts)}


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """:func:`parse_cpuinfo` of this machine (empty features where /proc is absent).

    Example:
        >>> sorted(cpu_info())  # doctest: +ELLIPSIS
        ['arch', 'cores', 'cpu_parts', 'features', 'model']
    """
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text)
