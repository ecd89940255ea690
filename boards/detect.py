"""Which board is this? Read ``/proc/device-tree`` and ``/proc/cpuinfo`` and match the profiles.

Evidence, strongest first:

1. ``exact``: the device-tree ``model`` (or a ``compatible`` entry, or the ``Model`` line that
   Raspberry Pi kernels add to /proc/cpuinfo) matches one profile's ``match`` rules.
2. ``cpu``: no board string, but the CPU parts and their counts (``CPU part : 0xd08`` x 4) fit
   exactly one profile. ``ambiguous``: they fit several (a quad Cortex-A53 is a Pi 3B+, a
   Zero 2 W, a Coral Dev Board or an i.MX 8M Plus); the first is returned with all candidates.
3. ``generic``: an x86-64 host.
4. ``unknown``: nothing fits; ``profile`` is None.

Host-attached accelerators (the Coral USB Accelerator) are reported beside the board, from the
USB ids in ``/sys/bus/usb/devices``. Standard library + PyYAML only.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.boards.cpu import ARM_PARTS, board_fields, core_layout, guess_machine, parse_cpuinfo
from edgekit.boards.profiles import BoardProfile, list_profiles


@dataclass(frozen=True)
class DetectedBoard:
    """What :func:`detect_board` found, how, and from what it read.

    Attributes:
        profile: the matching profile, or None when ``confidence`` is ``unknown``.
        confidence: ``exact``, ``cpu``, ``ambiguous``, ``generic`` or ``unknown``.
        method: the evidence used: ``device-tree``, ``compatible``, ``cpuinfo-model``,
            ``cpu-part``, ``machine`` or ``none``.
        candidates: every profile the evidence fits (more than one when ambiguous).
        accelerators: attached accelerator profiles (``coral-usb``).
        model, compatible, machine, cpu: what was read (``cpu`` is :func:`parse_cpuinfo`
            plus ``layout``, the core count per CPU part, and the cpuinfo board lines).
        reason: one line for people.
    """

    profile: BoardProfile | None
    confidence: str
    method: str
    candidates: tuple[str, ...] = ()
    accelerators: tuple[str, ...] = ()
    model: str = ""
    compatible: tuple[str, ...] = ()
    machine: str = ""
    cpu: dict = field(default_factory=dict, compare=False)
    reason: str = ""

    @property
    def name(self) -> str | None:
        return self.profile.name if self.profile else None

    def to_dict(self) -> dict:
        """JSON-ready: ``board`` (the profile name or None), the evidence, and the full ``profile``."""
        return {"board": self.name, "confidence": self.confidence, "method": self.method,
                "candidates": list(self.candidates), "accelerators": list(self.accelerators),
                "reason": self.reason, "read": {"model": self.model, "compatible": list(self.compatible),
                                                "machine": self.machine, "cpu": self.cpu},
                "profile": self.profile.to_dict() if self.profile else None}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _dt_strings(raw: bytes | str | None) -> list[str]:
    """Device-tree properties are NUL-terminated (``compatible`` is a NUL-separated list)."""
    if raw is None:
        return []
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return [s.strip() for s in text.split("\0") if s.strip()]


def usb_ids(root: str | Path = "/") -> list[str]:
    """``vendor:product`` of every USB device in sysfs (empty where there is no sysfs).

    Example:
        >>> isinstance(usb_ids(), list)
        True
    """
    out = []
    base = Path(root) / "sys/bus/usb/devices"
    for dev in sorted(base.glob("*")) if base.is_dir() else []:
        vendor, product = _read(dev / "idVendor"), _read(dev / "idProduct")
        if vendor and product:
            out.append(f"{vendor.decode().strip().lower()}:{product.decode().strip().lower()}")
    return out


def _model_hits(text: str, boards: list[BoardProfile]) -> list[BoardProfile]:
    hits = []
    for p in boards:
        spans = [m.end() - m.start() for rx in p.match.model if (m := re.search(rx, text, re.IGNORECASE))]
        if spans:
            hits.append((max(spans), p))
    # several rules can hit one string; the longest match is the most specific
    return [p for _, p in sorted(hits, key=lambda h: -h[0])]


def _profile_layout(p: BoardProfile) -> dict[str, int]:
    layout: dict[str, int] = {}
    for c in p.cores:
        if c.part and c.count:
            layout[c.part] = layout.get(c.part, 0) + c.count
    return dict(sorted(layout.items()))


def _cpu_candidates(layout: dict[str, int], hardware: str, boards: list[BoardProfile]) -> list[BoardProfile]:
    if not layout:
        return []
    same = [p for p in boards if _profile_layout(p) == layout]
    # cores taken offline (or a smaller module) still show the same kinds of core
    found = same or [p for p in boards if _profile_layout(p) and set(_profile_layout(p)) == set(layout)]
    if hardware:
        narrowed = [p for p in found if any(re.search(rx, hardware, re.IGNORECASE) for rx in p.match.hardware)]
        found = narrowed or found
    return found


def detect_board(model_text: str | bytes | None = None, cpuinfo_text: str | None = None,
                 machine: str | None = None, *, compatible_text: str | bytes | None = None,
                 usb: list[str] | None = None, root: str | Path = "/") -> DetectedBoard:
    """Identify the board from its device tree and /proc/cpuinfo (read under ``root`` when not given).

    Args:
        model_text: contents of ``/proc/device-tree/model`` (NUL-terminated bytes or str).
        cpuinfo_text: contents of ``/proc/cpuinfo``.
        machine: ``platform.machine()``; guessed from ``cpuinfo_text`` when that is given.
        compatible_text: contents of ``/proc/device-tree/compatible``.
        usb: ``vendor:product`` ids of attached USB devices (read from sysfs when None).
        root: filesystem root to read from (tests point it at a captured tree).

    Example:
        >>> cpuinfo = "processor\\t: 0\\nCPU part\\t: 0xd08\\n" * 4
        >>> detect_board("Raspberry Pi 4 Model B Rev 1.4\\x00", cpuinfo, usb=[]).name
        'rpi4'
        >>> detect_board("", cpuinfo, usb=[]).confidence
        'cpu'
    """
    root = Path(root)
    read_system = cpuinfo_text is None
    if model_text is None:
        model_text = _read(root / "proc/device-tree/model") or _read(root / "sys/firmware/devicetree/base/model")
    if compatible_text is None:
        compatible_text = _read(root / "proc/device-tree/compatible")
    if cpuinfo_text is None:
        raw = _read(root / "proc/cpuinfo")
        cpuinfo_text = raw.decode("utf-8", "replace") if raw else ""
    if machine is None:
        machine = (platform.machine() if read_system else guess_machine(cpuinfo_text)) or platform.machine()
    if usb is None:
        usb = usb_ids(root)

    model = " ".join(_dt_strings(model_text))
    compatible = tuple(_dt_strings(compatible_text))
    fields = board_fields(cpuinfo_text)
    cpu = {**parse_cpuinfo(cpuinfo_text, machine), "layout": core_layout(cpuinfo_text), **fields}
    profiles = list_profiles()
    boards = [p for p in profiles if p.kind != "accelerator"]
    attached = tuple(p.name for p in profiles if p.kind == "accelerator" and set(p.match.usb_ids) & set(usb))
    seen = dict(model=model, compatible=compatible, machine=machine, cpu=cpu, accelerators=attached)

    def found(hits, confidence, method, reason):
        return DetectedBoard(hits[0] if hits else None, confidence, method, tuple(p.name for p in hits),
                             reason=reason, **seen)

    if model and (hits := _model_hits(model, boards)):
        return found(hits[:1], "exact", "device-tree", f"device-tree model '{model}'")
    if hits := [p for p in boards if set(p.match.compatible) & set(compatible)]:
        return found(hits[:1], "exact", "compatible", f"device-tree compatible {', '.join(compatible)}")
    if fields.get("model") and (hits := _model_hits(fields["model"], boards)):
        return found(hits[:1], "exact", "cpuinfo-model", f"/proc/cpuinfo Model '{fields['model']}'")
    layout = cpu["layout"]
    if hits := _cpu_candidates(layout, fields.get("hardware", ""), boards):
        cores = " + ".join(f"{n}x {ARM_PARTS.get(part, part)}" for part, n in layout.items())
        if len(hits) == 1:
            return found(hits, "cpu", "cpu-part", f"no board string; the CPU ({cores}) fits only {hits[0].name}")
        return found(hits, "ambiguous", "cpu-part",
                     f"no board string; the CPU ({cores}) fits {', '.join(p.name for p in hits)}: "
                     f"took {hits[0].name}; name the board where it matters")
    if hits := [p for p in boards if machine in p.match.machine]:
        name = cpu.get("model") or machine
        return found(hits[:1], "generic", "machine", f"{machine} host ({name}); figures come from /proc/cpuinfo")
    what = model or fields.get("model") or cpu.get("model") or machine or "nothing readable"
    return found([], "unknown", "none", f"no profile matches {what}: add one under boards/ (see boards/rpi4.yaml)")
