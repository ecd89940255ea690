"""``ExportReport``: what one ``edgekit export`` run produced, as data, with a Markdown view."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class TargetResult:
    """One target of an export run (one row of the report)."""

    target: str
    status: str  # ok | failed | skipped
    file: str | None = None
    size_mb: float | None = None
    convert_s: float | None = None
    parity: dict | None = None
    map: dict | None = None
    latency_ms: float | None = None
    reason: str | None = None
    converter: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class ExportReport:
    """All targets of one run, plus what they were made from."""

    source: dict
    out: str
    calibration: dict | None = None
    data: str | None = None
    host: str = ""
    versions: dict = field(default_factory=dict)
    results: list[TargetResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_markdown(self) -> str:
        """The export table people read: one row per target.

        Example:
            >>> r = ExportReport({"model": "yolo-lite"}, "out", results=[TargetResult("onnx", "ok", size_mb=2.3)])
            >>> print(r.to_markdown().splitlines()[2])
            | target | size MB | convert s | parity | mAP50 | delta | host ms (1 thread) | status |
        """
        src = self.source
        lines = [f"# export of {src.get('model')} ({src.get('path', '')})", "",
                 "| target | size MB | convert s | parity | mAP50 | delta | host ms (1 thread) | status |",
                 "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
        for r in self.results:
            lines.append("| " + " | ".join([r.target, _num(r.size_mb, 2), _num(r.convert_s, 1), _parity(r.parity),
                                            _num((r.map or {}).get("map50"), 4), _delta(r.map), _num(r.latency_ms, 2),
                                            r.status + (f": {r.reason}" if r.reason else "")]) + " |")
        if self.results and self.results[0].map:
            m = self.results[0].map
            lines += ["", f"source mAP50 {m['source_map50']:.4f}, mAP50-95 {m['source_map50_95']:.4f} "
                          f"on {m['images']} {m['split']} images of {self.data}"]
        if self.calibration:
            c = self.calibration
            lines += [f"INT8 calibration: {c['images']} images ({c['selection']}) from {c['source']}, hash {c['hash']}"]
        lines += [f"host: {self.host}"]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """``export_report.json`` + ``export_report.md`` in ``out_dir`` (atomic writes)."""
        from edgekit.io import atomic_write_text

        j = atomic_write_text(Path(out_dir) / "export_report.json", self.to_json())
        m = atomic_write_text(Path(out_dir) / "export_report.md", self.to_markdown())
        return j, m


def _num(x, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _parity(p: dict | None) -> str:
    if not p:
        return "-"
    if "error" in p:
        return "shape mismatch"
    mark = "ok" if p["passed"] else "FAIL"
    extra = f", {p['max_steps']:.1f} steps" if "max_steps" in p else ""
    return f"{mark} (max {p['max_abs']:.2g}, cos {p['cosine']:.5f}{extra})"


def _delta(m: dict | None) -> str:
    if not m:
        return "-"
    return f"{-m['delta_map50']:+.4f}" + ("" if m["passed"] else " FAIL")
