"""mAP@0.5 of the shipped detector under emulation vs x86, on a labelled subset of Fish4Knowledge.

    nice -n 10 python benchmarks/arm_map.py [--targets tflite-int8,onnx,onnx-int8] [--cores cortex-a72,cortex-a76] [--images 32]

Needs ``edgekit arm setup`` and ``../shared/data/fish4knowledge``. Exports the detector to the
targets (INT8 calibrated on 100 train images, as ``arm_verify.py``), then runs
``verify_arm(..., data=DATA, map_images=N)`` per target and core: the first ``N`` images of the
test split go through the aarch64 board install on the emulated core and through this host's
runtime, and both maps are decoded and scored by the same numpy post-processing and metric.
Where the ARM outputs are bit-identical to x86 (``max_abs_err == 0``) the two mAPs must be
equal (``verify_arm`` fails the match otherwise); elsewhere they are reported side by side.

Writes ``benchmarks/results/arm-map-<model>.json`` with the command that made it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "data" / "fish4knowledge"
MODEL = ROOT / "edgekit" / "assets" / "weights" / "mobilenetv2_050-yolo-fish4knowledge-320.pt"


def main() -> int:
    from edgekit import __version__
    from edgekit.arm.verify import verify_arm
    from edgekit.errors import EdgekitError
    from edgekit.export import export
    from edgekit.io import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(MODEL))
    ap.add_argument("--targets", default="tflite-int8,onnx,onnx-int8")
    ap.add_argument("--cores", default="cortex-a72,cortex-a76")
    ap.add_argument("--images", type=int, default=32, help="first N test images (QEMU is 100-950x slower than native)")
    ap.add_argument("--data", default=str(SHARED / "data.yaml"))
    ap.add_argument("--calib", default=str(SHARED / "train" / "images"))
    args = ap.parse_args()
    model = Path(args.model)
    command = " ".join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    out = RESULTS / f"arm-map-{model.stem}.json"
    rows: list[dict] = []

    def write() -> None:  # after every run: an interrupted sweep keeps what it measured
        doc = {"model": model.stem, "edgekit": __version__, "host": platform.machine(), "command": command,
               "data": os.path.relpath(args.data, ROOT), "split": "test", "images": args.images,
               "subset": f"the first {args.images} images of the test split (sorted file names)",
               "calibration": f"100 images of {os.path.relpath(args.calib, ROOT)}",
               "note": "map50 measured on the outputs of the aarch64 board install under QEMU, x86_map50 on this "
                       "host's run of the same artifact; same decoder and metric. bit_identical: every output "
                       "value equal, so the mAPs must be equal", "results": rows}
        atomic_write_text(out, json.dumps(doc, indent=1) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        print(f"exporting {model.name}", file=sys.stderr)
        rep = export(model, args.targets.split(","), out=Path(tmp), calib=args.calib, calib_images=100)
        for r in rep.results:
            if not r.ok:
                rows.append({"target": r.target, "error": f"export failed: {r.reason}"})
                continue
            for core in args.cores.split(","):
                t0 = time.time()
                try:
                    res = verify_arm(Path(tmp) / r.file, core, data=args.data, map_images=args.images, record=False)
                except EdgekitError as exc:
                    rows.append({"target": r.target, "core": core, "error": str(exc)})
                    write()
                    continue
                keep = ("target", "core", "runtime", "runtime_version", "precision", "match", "max_abs_err",
                        "cosine", "images", "map50", "x86_map50", "x86")
                row = {k: res[k] for k in keep if k in res}
                row.update({"bit_identical": res["max_abs_err"] == 0.0, "map_equal": res["map50"] == res["x86_map50"],
                            "artifact": Path(res["artifact"]).name, "wall_s": round(time.time() - t0, 1)})
                rows.append(row)
                print(f"{r.target} {core}: mAP50 {row['map50']:.4f} (x86 {row['x86_map50']:.4f}) "
                      f"bit-identical={row['bit_identical']} match={row['match']}", file=sys.stderr)
                write()
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
