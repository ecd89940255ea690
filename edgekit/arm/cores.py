"""The emulated Cortex cores: what QEMU's ``-cpu`` gets and what the guest's ``/proc/cpuinfo`` says.

qemu-user passes the host's x86 ``/proc/cpuinfo`` through, and onnxruntime's ARM CPU detection
crashes on it (ARM_EMULATION.md), so each core gets an ARM-format one, with the ``CPU part``
and ``Features`` its runtimes read to choose kernels (NEON only, dot product, fp16 arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import EdgekitError


@dataclass(frozen=True)
class Core:
    """One Cortex core as QEMU emulates it and as the runtimes detect it.

    Example:
        >>> CORES["cortex-a76"].has("asimddp")
        True
    """

    name: str           # QEMU -cpu name
    part: int           # MIDR PartNum (CPU part in /proc/cpuinfo)
    variant: int
    revision: int
    features: tuple[str, ...]
    board: str          # the board that carries it, for messages and reports

    def has(self, feature: str) -> bool:
        return feature in self.features

    @property
    def midr(self) -> int:
        """MIDR_EL1: implementer 0x41 (Arm), architecture 0xf, variant, part, revision."""
        return (0x41 << 24) | (self.variant << 20) | (0xF << 16) | (self.part << 4) | self.revision

    def cpuinfo(self, cpus: int) -> str:
        """An ARM ``/proc/cpuinfo`` with ``cpus`` identical blocks.

        Example:
            >>> "CPU part\\t: 0xd08" in CORES["cortex-a72"].cpuinfo(1)
            True
        """
        block = (f"BogoMIPS\t: 108.00\nFeatures\t: {' '.join(self.features)}\nCPU implementer\t: 0x41\n"
                 f"CPU architecture: 8\nCPU variant\t: 0x{self.variant:x}\nCPU part\t: 0x{self.part:03x}\n"
                 f"CPU revision\t: {self.revision}\n")
        return "".join(f"processor\t: {k}\n{block}\n" for k in range(cpus))


_V8 = ("fp", "asimd", "evtstrm", "crc32", "cpuid")
# ARMv8.2 of the A76 (Raspberry Pi 5): fp16 arithmetic (fphp, asimdhp) and the dot product (asimddp)
_V82 = _V8[:2] + ("evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp", "cpuid",
                  "asimdrdm", "lrcpc", "dcpop", "asimddp")

CORES = {c.name: c for c in (
    Core("cortex-a53", 0xD03, 0x0, 4, _V8, "Raspberry Pi 3 / Zero 2 W"),
    Core("cortex-a72", 0xD08, 0x0, 3, _V8, "Raspberry Pi 4"),
    Core("cortex-a76", 0xD0B, 0x4, 1, _V82, "Raspberry Pi 5"),
)}


def get_core(name: str) -> Core:
    """The core called ``name``; an error listing the known ones otherwise.

    Example:
        >>> get_core("cortex-a53").part == 0xd03
        True
    """
    try:
        return CORES[name.lower()]
    except KeyError:
        raise EdgekitError(f"unknown ARM core '{name}': use one of {', '.join(CORES)}") from None
