"""Why INT8 detectors clip their output ranges at +-9.2: export with several clips, compare mAP.

    python benchmarks/int8_output_clip.py runs/inits/tiny-yolov3-f4k-320-25ep.pt \
        --data ../shared/data/fish4knowledge/data.yaml --name tiny-yolov3

For each ``--clips`` value (``off`` = the calibrated range as is) the model is exported to
``--targets`` through ``edgekit.export.export(..., output_clip=...)`` with the gate opened
(``max_map_drop=1``) so every variant is measured, and mAP@0.5 on the test split is compared
with the fp32 source, with the paired-bootstrap interval of each delta.
Writes ``benchmarks/results/int8-output-clip-<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a detector checkpoint")
    p.add_argument("--data", required=True)
    p.add_argument("--name", help="results name (default: the file's stem)")
    p.add_argument("--clips", default="off,9.2,6.9", help="comma-separated: off or a number")
    p.add_argument("--targets", default="onnx-int8,tflite-int8")
    a = p.parse_args(argv)

    from edgekit.export import export
    from edgekit.io import atomic_write_text

    rows = []
    for text in a.clips.split(","):
        clip = None if text == "off" else float(text)
        with tempfile.TemporaryDirectory() as tmp:
            rep = export(a.model, a.targets.split(","), data=a.data, out=tmp, max_map_drop=1.0, output_clip=clip)
        for r in rep.results:
            row = r.to_dict()
            rows.append({"clip": text, "target": r.target, "status": r.status, "map50": row["map50"],
                         "map50_delta": row["map50_delta"], "map50_delta_ci95": row["map50_delta_ci95"],
                         "parity_cosine": (r.parity or {}).get("cosine")})
            print(f"clip {text:>4}  {r.target:12s} mAP50 {row['map50']:.4f}  delta {row['map50_delta']:+.4f} "
                  f"{row['map50_delta_ci95']}", flush=True)
    name = a.name or Path(a.model).stem
    result = {"model": name, "source_map50": rep.to_dict()["source"]["map50"], "data": a.data, "rows": rows,
              "command": " ".join(["int8_output_clip.py", *(argv if argv is not None else sys.argv[1:])])}
    dest = HERE / "results" / f"int8-output-clip-{name}.json"
    atomic_write_text(dest, json.dumps(result, indent=1))
    print(f"-> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
