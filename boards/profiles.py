"""Board profiles: one YAML file per board in ``boards/``, loaded into frozen dataclasses.

A profile says what a board is (SoC, cores, ISA features, memory, accelerators), what runs
there (runtimes, delegates and their library paths), which export targets to pick, where its
temperature can be read, how :func:`edgekit.boards.detect.detect_board` recognises it, and
where every figure comes from (``sources``). Files are schema-checked on load: an unknown
key, a missing key or a wrong type ends in one :class:`~edgekit.errors.EdgekitError` line
naming the file, the key and the fix. PyYAML (``safe_load``) and the standard library only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path

from edgekit.boards.schema import validate
from edgekit.errors import EdgekitError
from edgekit.io import parse_yaml

__all__ = ["BoardProfile", "Core", "Memory", "Accelerator", "Thermal", "Match", "Source",
           "load_profile", "list_profiles", "profile_names", "profile_from_dict"]


@dataclass(frozen=True)
class Core:
    """A cluster of identical CPU cores (``count`` and ``clock_ghz`` are None on a generic host)."""

    type: str
    count: int | None
    clock_ghz: float | None
    part: str | None = None  # MIDR part number as /proc/cpuinfo prints it ("0xd08")
    fp32_flops_per_cycle: int | None = None
    fp16_flops_per_cycle: int | None = None  # None: no fp16 arithmetic (Armv8.0 cores)
    int8_ops_per_cycle: int | None = None  # 2 ops per multiply-accumulate (SDOT where the core has it)
    pipeline: str | None = None  # "in-order" (Cortex-A53/A55) or "out-of-order"
    note: str = ""

    def peak_gflops(self) -> float | None:
        """FP32 peak of the cluster: count x clock x FLOP/cycle (None when a figure is unknown)."""
        if None in (self.count, self.clock_ghz, self.fp32_flops_per_cycle):
            return None
        return round(self.count * self.clock_ghz * self.fp32_flops_per_cycle, 1)


@dataclass(frozen=True)
class Memory:
    type: str
    sizes_gb: tuple[float, ...]
    bus_bits: int | None = None
    bandwidth_gbs: float | None = None  # theoretical peak
    note: str = ""


@dataclass(frozen=True)
class Accelerator:
    kind: str
    name: str
    int8_tops: float | None = None
    fp16_tflops: float | None = None
    precision: tuple[str, ...] = ()
    delegate: str | None = None  # key into BoardProfile.delegates
    note: str = ""


@dataclass(frozen=True)
class Thermal:
    zones: tuple[str, ...] = ()  # sysfs files in millidegrees Celsius
    commands: tuple[str, ...] = ()
    throttle_c: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Match:
    model: tuple[str, ...] = ()  # regexes (case-insensitive) on /proc/device-tree/model and cpuinfo "Model"
    compatible: tuple[str, ...] = ()  # entries of /proc/device-tree/compatible
    hardware: tuple[str, ...] = ()  # regexes on cpuinfo "Hardware" (narrows CPU-part guesses)
    machine: tuple[str, ...] = ()  # platform.machine() values (generic hosts)
    usb_ids: tuple[str, ...] = ()  # vendor:product of host-attached accelerators


@dataclass(frozen=True)
class Source:
    what: str
    url: str


@dataclass(frozen=True)
class BoardProfile:
    """One board, accelerator or host, as its YAML file describes it.

    Example:
        >>> p = load_profile("rpi4")
        >>> p.soc, p.cores[0].type, p.cpu_peak_gflops()
        ('Broadcom BCM2711', 'cortex-a72', 57.6)
    """

    name: str
    title: str
    kind: str
    soc: str
    arch: str
    cores: tuple[Core, ...]
    isa: tuple[str, ...]
    runtimes: tuple[str, ...]
    recommended_targets: tuple[str, ...]
    match: Match
    sources: tuple[Source, ...]
    memory: Memory | None = None
    accelerators: tuple[Accelerator, ...] = ()
    delegates: tuple[tuple[str, str], ...] = ()  # (name, library path) pairs, in file order
    thermal: Thermal = Thermal()
    aliases: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    path: str = field(default="", compare=False)

    def delegate(self, name: str) -> str | None:
        """Library path of a delegate (``"libedgetpu.so.1"``), or None if the board has none by that name."""
        return dict(self.delegates).get(name)

    def core_count(self) -> int | None:
        counts = [c.count for c in self.cores]
        return None if not counts or None in counts else sum(counts)

    def cpu_peak_gflops(self) -> float | None:
        """FP32 peak of all clusters, GFLOPS (None when a figure is unknown)."""
        peaks = [c.peak_gflops() for c in self.cores]
        return None if not peaks or None in peaks else round(sum(peaks), 1)

    def cores_summary(self) -> str:
        """``4x cortex-a72 @ 1.8 GHz`` (clusters joined by ``+``)."""
        parts = []
        for c in self.cores:
            n = f"{c.count}x " if c.count else ""
            clock = f" @ {c.clock_ghz:g} GHz" if c.clock_ghz else ""
            parts.append(f"{n}{c.type}{clock}")
        return " + ".join(parts) or "-"

    def accelerators_summary(self) -> str:
        out = []
        for a in self.accelerators:
            figure = (f" {a.int8_tops:g} TOPS" if a.int8_tops else f" {a.fp16_tflops:g} TFLOPS fp16" if a.fp16_tflops else "")
            out.append(f"{a.kind} {a.name}{figure}")
        return "; ".join(out) or "-"

    def to_dict(self) -> dict:
        """Plain JSON/YAML-ready data, shaped like the YAML file (plus ``path``)."""
        return _plain(self)


def _plain(obj):
    if is_dataclass(obj):
        out = {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
        if "delegates" in out:
            out["delegates"] = {k: v for k, v in obj.delegates}
        return out
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    return obj


def profile_from_dict(data, src: str = "<dict>", stem: str | None = None) -> BoardProfile:
    """Validate parsed YAML and build a :class:`BoardProfile`; ``stem`` is the expected name.

    Example:
        >>> profile_from_dict({"name": "x"}, "x.yaml", "x")
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: board profile x.yaml: missing required key 'title': add it (see boards/rpi4.yaml for a complete profile)
    """
    validate(data, src, data.get("name") if stem is None and isinstance(data, dict) else stem)
    tup = tuple
    mem = data.get("memory")
    return BoardProfile(
        name=data["name"], title=data["title"], kind=data["kind"], soc=data["soc"], arch=data["arch"],
        cores=tup(Core(**c) for c in data["cores"]), isa=tup(data["isa"]), runtimes=tup(data["runtimes"]),
        recommended_targets=tup(data["recommended_targets"]),
        match=Match(**{k: tup(v) for k, v in data["match"].items()}),
        sources=tup(Source(**s) for s in data["sources"]),
        memory=Memory(**{**mem, "sizes_gb": tup(mem["sizes_gb"])}) if mem else None,
        accelerators=tup(Accelerator(**{**a, "precision": tup(a.get("precision", ()))}) for a in data.get("accelerators") or []),
        delegates=tup((data.get("delegates") or {}).items()),
        thermal=Thermal(**{k: tup(v) if isinstance(v, list) else v for k, v in (data.get("thermal") or {}).items()}),
        aliases=tup(data.get("aliases") or ()), notes=tup(data.get("notes") or ()), path=src)


def _parse(text: str, src: str, stem: str) -> BoardProfile:
    return profile_from_dict(parse_yaml(text, f"board profile {src}"), src, stem)


# ---------------------------------------------------------------------------- loading

def _package_files() -> dict[str, object]:
    root = resources.files("edgekit.boards")
    return {p.name[:-5]: p for p in root.iterdir() if p.name.endswith(".yaml")}


@functools.lru_cache(maxsize=None)
def _builtin(name: str) -> BoardProfile:
    ref = _package_files()[name]
    return _parse(ref.read_text(encoding="utf-8"), f"boards/{name}.yaml", name)


def profile_names() -> list[str]:
    """Names of the profiles shipped with edgekit, sorted.

    Example:
        >>> "rpi5" in profile_names()
        True
    """
    return sorted(_package_files())


def list_profiles(kind: str | None = None) -> list[BoardProfile]:
    """Every shipped profile (validated), sorted by name; ``kind`` keeps only boards/accelerators/hosts.

    Example:
        >>> [p.name for p in list_profiles("accelerator")]
        ['coral-usb']
    """
    return [p for p in (_builtin(n) for n in profile_names()) if kind is None or p.kind == kind]


def load_profile(name_or_path: str | Path) -> BoardProfile:
    """A shipped profile by name or alias (``rpi4``, ``pi4``), or any profile file by path.

    Raises:
        EdgekitError: unknown name (the message lists the known ones), missing file, or a
            profile that fails the schema (the message names the file, the key and the fix).

    Example:
        >>> load_profile("pi5").name
        'rpi5'
        >>> load_profile("boards/coral-usb.yaml").match.usb_ids  # doctest: +SKIP
        ('1a6e:089a', '18d1:9302')
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise EdgekitError(f"board profile {path} does not exist: check the path, or give a known board "
                               f"name ({', '.join(profile_names())})")
        return _parse(path.read_text(encoding="utf-8"), str(path), path.stem)
    key = text.strip().lower()
    if key in profile_names():
        return _builtin(key)
    for p in list_profiles():
        if key in p.aliases:
            return p
    raise EdgekitError(f"unknown board '{text}': known boards are {', '.join(profile_names())} "
                       f"(or give the path of a profile .yaml)")
