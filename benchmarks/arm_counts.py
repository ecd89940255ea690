"""Executed aarch64 instructions per inference, per artifact and emulated core (QEMU TCG plugin).

    python benchmarks/arm_counts.py --tiny                      # the regression reference of tests/arm
    python benchmarks/arm_counts.py --model edgekit/assets/weights/mobilenetv2_050-yolo-fish4knowledge-320.pt

Needs ``edgekit arm setup``. ``--tiny`` exports the ``fast_exports`` fixture's 64 px yolo-lite
(the same recipe, tests/export/export_helpers.py) to ONNX fp32 and counts it on cortex-a72:
``benchmarks/results/arm-counts-yolo-lite-64.json``, which tests/arm/test_count_regression.py
holds the code to. ``--model`` exports the shipped detector to the seed targets and writes
``arm-counts-<model>.json``; ``benchmarks/arm_verify.py`` writes the same file from its runs.
Counts are deterministic for a given runtime release, input and ``-cpu`` (no timing involved).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SEED_TARGETS = ["onnx", "onnx-int8", "tflite", "tflite-fp16", "tflite-int8", "openvino", "openvino-int8", "ncnn",
                "ncnn-fp16"]
CORES = ["cortex-a53", "cortex-a72", "cortex-a76"]
TINY_CORE = "cortex-a72"


def counts_document(model: str, rows: list[dict]) -> dict:
    """The arm-counts JSON: setup, then ``{target: {core: counts}}`` with the precision each run computed in."""
    from edgekit import __version__

    table: dict = {}
    for r in rows:
        if "instructions" in r:
            table.setdefault(r["target"], {})[r["core"]] = {**r["instructions"], "precision": r["precision"],
                                                             "runtime": r["runtime"], "runtime_version": r["runtime_version"]}
    return {"model": model, "edgekit": __version__, "host": platform.machine(),
            "emulator": "qemu-user 7.2 TCG, insn_count plugin (edgekit/arm/plugin/insn_count.c)",
            "unit": "instructions per inference (backend run only, after two warm-up runs, garbage collector off, 1 guest thread)",
            "counts": table}


def export_tiny(out: Path) -> Path:
    """The fast_exports fixture's fp32 ONNX: yolo-lite 64 px, seed 0, the sample's classes."""
    sys.path.insert(0, str(ROOT))
    from edgekit.data import load_dataset, sample_data_yaml
    from edgekit.export import export
    from tests.export.export_helpers import TINY_IMGSZ, TINY_MODEL, make_checkpoint

    names = load_dataset(sample_data_yaml()).names
    ckpt = make_checkpoint(out / f"{TINY_MODEL}.pt", TINY_MODEL, TINY_IMGSZ, names=names)
    rep = export(ckpt, ["onnx"], out=out / "art")
    return out / "art" / rep.results[0].file


def main() -> int:
    from edgekit.arm.verify import verify_arm
    from edgekit.io import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="the 64 px regression reference on cortex-a72")
    ap.add_argument("--model", help="a shipped detector .pt: its seed targets on every core")
    ap.add_argument("--targets", default=",".join(SEED_TARGETS))
    ap.add_argument("--cores", default=",".join(CORES))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.tiny:
            art = export_tiny(tmp)
            rows = [verify_arm(art, TINY_CORE, images=1, count=True, record=False)]
            path = RESULTS / "arm-counts-yolo-lite-64.json"
            doc = counts_document("yolo-lite 64 px (tests' fast_exports recipe)", rows)
        else:
            from edgekit.export import export

            rep = export(args.model, args.targets.split(","), out=tmp)
            rows = [verify_arm(tmp / r.file, core, images=1, count=True, record=False)
                    for r in rep.results if r.ok for core in args.cores.split(",")]
            path = RESULTS / f"arm-counts-{Path(args.model).stem}.json"
            doc = counts_document(Path(args.model).stem, rows)
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["counts"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
