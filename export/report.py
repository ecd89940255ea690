"""``ExportReport``: what one ``edgekit export`` run produced, as data, with a Markdown view.

The JSON (``edgekit export --json``, ``export_report.json``, ``benchmarks/results/export-*.json``)
keeps the keys other tools read::

    {"model": ..., "source": {..., "map50": ..., "map50_95": ...},
     "targets": [{"target", "path", "size_mb", "status": "ok" | "failed" | "rejected", "parity",
                  "map50", "map50_95", "map50_delta", "map50_delta_ci95", "latency_ms", "convert_s", ...}, ...],
     "ok": ...}

``failed``: the converter could not make the artifact; ``rejected``: it was made but failed
verification (parity or the mAP gate) and was removed. ``map50_delta`` is artifact minus
source (negative: the artifact lost mAP), ``map50_delta_ci95`` its paired-bootstrap 95% interval
over the verification images; the whole gate record stays under ``map``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TargetResult:
    """One target of an export run (one row of the report)."""

    target: str
    status: str  # ok | failed (conversion) | rejected (verification)
    file: str | None = None
    size_mb: float | None = None
    convert_s: float | None = None
    parity: dict | None = None
    map: dict | None = None
    latency_ms: float | None = None
    reason: str | None = None
    converter: str | None = None
    top1: dict | None = None  # a classifier's gate (export.gates.Top1Gate)
    kept_float: dict | None = None  # --keep-float: nodes left in float, tries (export.keep_float)
    calib_method: dict | None = None  # --calib-method: the method used, auto's tries (export.calib_method)
    simulated: dict | None = None  # verified in a toolkit's simulator (RKNN): by what; latency_ms is null, and why

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self, out: str | None = None) -> dict:
        """The row in the report schema (see the module docstring), gate details under ``map``."""
        m = self.map or {}
        return {"target": self.target, "path": str(Path(out) / self.file) if out and self.file else self.file,
                "size_mb": self.size_mb, "status": self.status, "parity": self.parity,
                "map50": m.get("map50"), "map50_95": m.get("map50_95"),
                "map50_delta": None if not m else round(m["map50"] - m["source_map50"], 6),
                "map50_delta_ci95": [round(-m["delta_map50_ci95"][1], 6), round(-m["delta_map50_ci95"][0], 6)]
                if m.get("delta_map50_ci95") else None,
                "latency_ms": self.latency_ms, "convert_s": self.convert_s, "reason": self.reason,
                "converter": self.converter, "map": self.map, **self._top1_keys(),
                **({"kept_float": self.kept_float} if self.kept_float is not None else {}),
                **({"calib_method": self.calib_method} if self.calib_method is not None else {}),
                **({"simulated": self.simulated} if self.simulated is not None else {})}

    def _top1_keys(self) -> dict:
        """A classifier's gate: ``top1``, ``top1_delta`` (artifact minus source), its interval, the record."""
        if not self.top1:
            return {}
        g = self.top1
        lo, hi = g["delta_top1_ci95"]
        return {"top1": g["top1"], "top1_delta": round(g["top1"] - g["source_top1"], 6),
                "top1_delta_ci95": [round(-hi, 6), round(-lo, 6)], "top1_gate": g}


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
        """The report in the schema other tools read (module docstring).

        Example:
            >>> r = ExportReport({"model": "yolo-lite"}, "out", results=[TargetResult("onnx", "ok", "m.onnx", 2.3)])
            >>> d = r.to_dict()
            >>> d["model"], d["targets"][0]["path"], d["ok"]
            ('yolo-lite', 'out/m.onnx', True)
        """
        gate = next((r.map for r in self.results if r.map), None)
        source = {**self.source, "map50": gate["source_map50"] if gate else None,
                  "map50_95": gate["source_map50_95"] if gate else None}
        return {"model": self.source.get("model"), "source": source,
                "targets": [r.to_dict(self.out) for r in self.results], "out": self.out,
                "calibration": self.calibration, "data": self.data, "host": self.host, "versions": self.versions,
                "ok": self.ok}

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
        metric = "top-1" if any(r.top1 for r in self.results) else "mAP50"
        lines = [f"# export of {src.get('model')} ({src.get('path', '')})", "",
                 f"| target | size MB | convert s | parity | {metric} | delta | host ms (1 thread) | status |",
                 "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
        for r in self.results:
            lines.append("| " + " | ".join([r.target, _num(r.size_mb, 2), _num(r.convert_s, 1), _parity(r.parity),
                                            _num((r.map or {}).get("map50", (r.top1 or {}).get("top1")), 4),
                                            _delta(r.map) if r.map else _delta(r.top1, "top1"), _num(r.latency_ms, 2),
                                            r.status + (" (simulated)" if r.simulated else "")
                                            + (f": {r.reason}" if r.reason else "")]) + " |")
        if self.results and self.results[0].map:
            m = self.results[0].map
            lines += ["", f"source mAP50 {m['source_map50']:.4f}, mAP50-95 {m['source_map50_95']:.4f} "
                          f"on {m['images']} {m['split']} images of {self.data}"
                          + ("; delta [95% interval] by paired bootstrap over those images" if m.get("delta_map50_ci95") else "")]
        gates = [r.top1 for r in self.results if r.top1]
        if gates:
            g = gates[0]
            lines += ["", f"source top-1 {g['source_top1']:.4f} on {g['images']} {g['split']} images of {self.data}; "
                          "delta [95% interval] by paired bootstrap over those images"]
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


def _delta(m: dict | None, metric: str = "map50") -> str:
    """A gate's artifact-minus-source delta with its interval (the gate stores drops, positive = lost)."""
    if not m:
        return "-"
    ci = m.get(f"delta_{metric}_ci95")
    interval = f" [{-ci[1]:+.3f}, {-ci[0]:+.3f}]" if ci else ""
    return f"{-m[f'delta_{metric}']:+.4f}{interval}" + ("" if m["passed"] else " FAIL")
