"""Export one model to every target installable here, verified, and record the report as data.

    python benchmarks/export_seed.py benchmarks/weights/mobilenetv2_050-yolo-fish4knowledge-320.pt \
        --data ../shared/data/fish4knowledge/data.yaml
    python benchmarks/export_seed.py ../shared/models/yolo-fastest-1.1/yolo-fastest-1.1.cfg --name yolo-fastest-1.1

Writes ``benchmarks/results/export-<name>.json``: per target the size, conversion time,
parity, mAP@0.5 / mAP@0.5:0.95 on the test split, the delta to the source, host latency and
status (the ``edgekit export --json`` report), plus the command and host.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="checkpoint .pt, Darknet .cfg or .onnx")
    p.add_argument("--data", help="data.yaml for calibration (train) and the mAP gate (test)")
    p.add_argument("--calib", help="folder of calibration images (when there is no labelled data)")
    p.add_argument("--name", help="results name (default: the model's registry name)")
    p.add_argument("--target", action="append", default=[], help="default: all")
    p.add_argument("--out", default="runs/export", help="where the artifacts go")
    a = p.parse_args(argv)

    from edgekit.export import export
    from edgekit.io import atomic_write_text

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    name = a.name or Path(a.model).stem
    report = export(a.model, a.target or ["all"], data=a.data, calib=a.calib, out=Path(a.out) / name, log=log)
    result = report.to_dict()
    result["command"] = " ".join(["export_seed.py", *(argv if argv is not None else sys.argv[1:])])
    dest = HERE / "results" / f"export-{name}.json"
    atomic_write_text(dest, json.dumps(result, indent=1))
    print(report.to_markdown())
    print(f"-> {dest}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
