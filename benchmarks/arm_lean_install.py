"""The board install on aarch64, proven and measured: `edgekit[<extra>]` alone, no host packages, predict works.

    nice -n 10 python benchmarks/arm_lean_install.py

Needs ``edgekit arm setup``. For each runtime extra, the aarch64 install folder that ``arm setup``
made with the host's pip (edgekit's wheel from this checkout + that extra, as ``pip install
"edgekit[<extra>]"`` on a Raspberry Pi) is measured on disk, and an emulated Cortex-A72 Python
with only that folder on its path must (1) find none of torch, tensorflow, onnx, nncf,
litert-torch, ai-edge-quantizer, and (2) run ``edgekit.runtime.load(artifact).predict(image)``
on the tiny 64 px yolo-lite exported to that runtime's fp32 target.
Writes ``benchmarks/results/arm-lean-install.json``.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"onnx": "onnx", "tflite": "tflite", "openvino": "openvino", "ncnn": "ncnn"}
CORE = "cortex-a72"

PROBE = """
import importlib.util, json, sys
from edgekit.runtime import load
det = load(sys.argv[1], threads=1)
out = det.predict(sys.argv[2])
host = [m for m in ("torch", "tensorflow", "onnx", "nncf", "litert_torch", "ai_edge_quantizer")
        if importlib.util.find_spec(m) is not None]
print(json.dumps({"host_only_importable": host, "detections": len(out.detections if hasattr(out, "detections")
                  else json.loads(out.to_json())["detections"]), "backend": det.describe()["backend"]}))
"""


def largest(site: Path, n: int = 6) -> dict:
    """The ``n`` biggest top-level entries of an install folder, in MB."""
    from edgekit.arm.wheels import installed_size

    sizes = {}
    for p in site.iterdir():
        if p.name.startswith("."):
            continue
        sizes[p.name] = installed_size(p) if p.is_dir() else p.stat().st_size
    return {k: round(v / 1e6, 1) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:n]}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from edgekit import __version__
    from edgekit.arm.run import run_guest
    from edgekit.arm.setup import cache_dir
    from edgekit.arm.wheels import installed_size, site_versions
    from edgekit.data import load_dataset, sample_data_yaml
    from edgekit.export import export
    from edgekit.io import atomic_write_text
    from tests.export.export_helpers import TINY_IMGSZ, TINY_MODEL, make_checkpoint

    cache = cache_dir()
    rows = {}
    names = load_dataset(sample_data_yaml()).names
    image = next((sample_data_yaml().parent / "test" / "images").iterdir())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = make_checkpoint(tmp / f"{TINY_MODEL}.pt", TINY_MODEL, TINY_IMGSZ, names=names)
        rep = export(ckpt, list(TARGETS.values()), out=tmp / "art")
        files = {r.target: tmp / "art" / r.file for r in rep.results if r.ok}
        for extra, target in TARGETS.items():
            site = cache / "site" / extra
            r = run_guest(cache, CORE, extra, ["-c", PROBE, str(files[target]), str(image)])
            probe = json.loads(r.stdout)
            rows[extra] = {"install": f'pip install "edgekit[{extra}]"', "bytes": installed_size(site),
                           "mb": round(installed_size(site) / 1e6, 1), "largest_mb": largest(site),
                           "versions": site_versions(site), "core": CORE, "predict_ok": probe["backend"] is not None,
                           "backend": probe["backend"], "host_only_importable": probe["host_only_importable"]}
            print(f"edgekit[{extra}]: {rows[extra]['mb']} MB, host-only importable: "
                  f"{probe['host_only_importable'] or 'none'}, predict via {probe['backend']} ok", file=sys.stderr)
    doc = {"edgekit": __version__, "host": platform.machine(), "guest": f"aarch64 Debian python3.11 under QEMU -cpu {CORE}",
           "note": "sizes are the pip --target folders on disk, bytecode caches excluded; the wheel of edgekit "
                   "itself carries its assets (sample images, shipped weights)", "installs": rows}
    atomic_write_text(RESULTS / "arm-lean-install.json", json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: v["mb"] for k, v in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
