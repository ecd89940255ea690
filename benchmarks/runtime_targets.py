"""Every exported artifact through ``edgekit.runtime.load``, on every backend here that opens it.

    python benchmarks/runtime_targets.py runs/export/mobilenetv2_050-yolo \
        --ref edgekit/assets/weights/mobilenetv2_050-yolo-fish4knowledge-320.pt \
        --data ../shared/data/fish4knowledge/data.yaml

For each artifact in the folder (every manifest'ed .onnx/.tflite/.xml/.param) and each
installed backend that reads it (onnxruntime and OpenVINO both read .onnx), load it with the
public API, predict the test split and score mAP with the shared metric; the source model runs
through the same API (torch reference backend). Writes
``benchmarks/results/runtime-<name>.json``: per (artifact, backend) mAP@0.5, mAP@0.5:0.95,
the delta to the source, the export gate, pass/fail, and what ``describe()`` says really ran.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("artifacts", help="folder of exported artifacts (edgekit export --out)")
    p.add_argument("--ref", required=True, help="the source checkpoint (.pt) or Darknet .cfg")
    p.add_argument("--data", required=True, help="data.yaml with a test (else val) split")
    p.add_argument("--split", help="split to score (default test, else val)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", help="results name (default: the folder name)")
    a = p.parse_args(argv)

    from edgekit.export.verify import DEFAULT_MAX_MAP_DROP
    from edgekit.io import atomic_write_text
    from edgekit.runtime import load
    from edgekit.runtime.backends import artifact_suffixes, available_backends, readers
    from edgekit.runtime.runner import find_manifest
    from edgekit.validate_runtime import labelled_split, runtime_map

    records, split, names = labelled_split(a.data, a.split)
    ref = load(a.ref, threads=a.threads)
    source = runtime_map(ref, records, names)
    print(f"source {a.ref}: mAP50 {source['map50']:.4f} on {len(records)} {split} images", file=sys.stderr)
    have = available_backends()
    rows = []
    for art in sorted(Path(a.artifacts).iterdir()):
        man = find_manifest(art) if art.suffix in artifact_suffixes() else None
        if man is None:
            continue
        for backend in dict.fromkeys([man["backend"], *(b.name for b in readers(art.suffix))]):
            row = {"artifact": art.name, "target": man["target"], "backend": backend}
            if not have.get(backend):
                rows.append({**row, "status": "skipped", "reason": f"{backend} is not installed"})
                continue
            t0 = time.perf_counter()
            model = load(art, backend=backend, threads=a.threads)
            got = runtime_map(model, records, names)
            gate = DEFAULT_MAX_MAP_DROP[man["precision"]]
            delta = source["map50"] - got["map50"]
            info = model.describe()
            rows.append({**row, "map50": got["map50"], "map50_95": got["map50_95"], "delta_map50": delta,
                         "max_map_drop": gate, "status": "ok" if delta <= gate + 1e-9 else "failed",
                         "runtime": {k: info.get(k) for k in ("backend", "version", "device", "delegate", "precision",
                                                              "providers", "threads", "warnings")},
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(f"{art.name:45s} {backend:12s} mAP50 {got['map50']:.4f} (delta {-delta:+.4f}, gate -{gate}) "
                  f"{rows[-1]['status']}", file=sys.stderr)
    from edgekit.info import environment_info

    env = environment_info()
    result = {"edgekit": env["edgekit"], "source": {"path": a.ref, **source}, "data": a.data, "split": split,
              "images": len(records), "threads": a.threads,
              "host": {"platform": env["platform"], "cpu": env["cpu"].get("model"), "cores": env["cpu"].get("cores")},
              "command": " ".join(["runtime_targets.py", *(argv if argv is not None else sys.argv[1:])]),
              "results": rows, "ok": all(r["status"] != "failed" for r in rows)}
    dest = HERE / "results" / f"runtime-{a.name or Path(a.artifacts).name}.json"
    atomic_write_text(dest, json.dumps(result, indent=1))
    print(f"-> {dest}", file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
