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


# MIDR part numbers of Arm Ltd (implementer 0x41) cores found on edge boards, as the Linux
# kernel (arch/arm64/include/asm/cputype.h) and util-linux (lscpu-arm.c) name them
ARM_PARTS = {"0xd03": "cortex-a53", "0xd04": "cortex-a35", "0xd05": "cortex-a55", "0xd07": "cortex-a57",
             "0xd08": "cortex-a72", "0xd09": "cortex-a73", "0xd0a": "cortex-a75", "0xd0b": "cortex-a76",
             "0xd0d": "cortex-a77", "0xd41": "cortex-a78", "0xd42": "cortex-a78ae", "0xd4b": "cortex-a78c",
             "0xd46": "cortex-a510", "0xd47": "cortex-a710", "0xd4d": "cortex-a715", "0xd80": "cortex-a520",
             "0xd81": "cortex-a720"}


def core_layout(text: str) -> dict[str, int]:
    """How many cores of each CPU part /proc/cpuinfo lists (ARM), e.g. big.LITTLE clusters.

    Example:
        >>> core_layout("processor : 0\\nCPU part : 0xd05\\n\\nprocessor : 1\\nCPU part : 0xd0b\\n")
        {'0xd05': 1, '0xd0b': 1}
    """
    layout: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "cpu part":
            part = value.strip().lower()
            layout[part] = layout.get(part, 0) + 1
    return dict(sorted(layout.items()))


def board_fields(text: str) -> dict[str, str]:
    """The board lines some ARM kernels append to /proc/cpuinfo: ``Hardware``, ``Revision``, ``Model``.

    Raspberry Pi kernels print ``Model : Raspberry Pi 4 Model B Rev 1.4``; most others print none.

    Example:
        >>> board_fields("processor : 0\\nHardware : BCM2835\\nModel : Raspberry Pi 3 Model B Plus Rev 1.3\\n")
        {'hardware': 'BCM2835', 'model': 'Raspberry Pi 3 Model B Plus Rev 1.3'}
    """
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        # case matters: x86 prints a numeric lower-case "model" line that is not a board
        if sep and key in ("Hardware", "Revision", "Model") and value.strip() and key.lower() not in out:
            out[key.lower()] = value.strip()
    return out


def guess_machine(text: str) -> str:
    """The architecture a /proc/cpuinfo text comes from (``aarch64``, ``armv7l``, ``x86_64`` or '').

    Used when a captured text is analysed on another machine.

    Example:
        >>> guess_machine("processor : 0\\nFeatures : fp asimd\\nCPU architecture: 8\\n")
        'aarch64'
    """
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    if "vendor_id" in fields or "flags" in fields:
        return "x86_64"
    if "cpu architecture" in fields or "features" in fields:
        features = fields.get("features", "").split()
        return "aarch64" if "asimd" in features or "fp" in features else "armv7l"
    return ""
