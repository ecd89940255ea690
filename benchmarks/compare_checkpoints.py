"""Two detector checkpoints on one test split: is the difference larger than the split can resolve?

    python benchmarks/compare_checkpoints.py BEFORE.pt AFTER.pt --data ../shared/data/fish4knowledge/data.yaml \
        --name yolo-fastest-s8-vs-shipped

Scores both on the test split (``val`` when there is none) at their own input size, then resamples the
*images* (with replacement, 1000 times by default) for:

- each model's mAP@0.5 with its 95 % bootstrap interval (how precisely this split measures one model);
- the paired difference AFTER - BEFORE with its 95 % interval (the same resampled images for both: what
  the image draw does to both cancels), both from one set of resamples
  (:func:`edgekit.metrics.bootstrap.bootstrap_map50s`);
- per class: ground-truth boxes on the split and each model's AP@0.5, so a class scored on six boxes
  is seen as such.

Writes ``benchmarks/results/compare-<name>.json`` with the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--data", required=True)
    p.add_argument("--name", required=True, help="results/compare-<name>.json")
    p.add_argument("--resamples", type=int, default=1000)
    a = p.parse_args(argv)

    from edgekit.data import load_dataset
    from edgekit.metrics import evaluate_detections
    from edgekit.metrics.bootstrap import bootstrap_map50s, interval95, paired_difference
    from edgekit.models.checkpoint import load_checkpoint
    from edgekit.prune.measure import test_split
    from edgekit.validate import predict_records

    t0 = time.time()
    ds = load_dataset(a.data)
    split = test_split(a.data)
    recs = ds.split(split)
    gts = [r.truth() for r in recs]
    counts = np.bincount(np.concatenate([np.asarray(r.classes, int) for r in recs] or [np.zeros(0, int)]),
                         minlength=len(ds.names))
    models, preds = {}, []
    for key, path in (("before", a.before), ("after", a.after)):
        model, ck = load_checkpoint(path)
        pr, _ = predict_records(model, recs, ck["imgsz"])
        m = evaluate_detections(gts, pr, ds.names).to_dict()
        models[key] = {"weights": path, "map50": round(m["map50"], 4), "map50_95": round(m["map50_95"], 4),
                       "ap50_per_class": {n: None if v is None else round(float(v), 4)
                                          for n, v in m["per_class_map50"].items()}}
        preds.append(pr)
    full, draws = bootstrap_map50s(gts, preds, ds.names, a.resamples)
    for k, key in enumerate(("before", "after")):
        models[key]["map50_ci95"] = [round(v, 4) for v in interval95(draws[k], full[k])]
        print(f"{key}: mAP50 {models[key]['map50']:.4f} (95% {models[key]['map50_ci95']})", file=sys.stderr)
    boot = paired_difference(full, draws, len(gts))
    result = {
        "what": "two checkpoints on one split: each mAP50 with its image-bootstrap 95% interval, and the paired "
                "difference after - before with its interval",
        "data": a.data, "split": split, "images": len(recs),
        "boxes_per_class": {str(n): int(c) for n, c in zip(ds.names, counts)},
        **models,
        "delta_map50": boot["delta"], "delta_map50_ci95": boot["ci95"], "resamples": boot["resamples"],
        "wall_s": round(time.time() - t0, 1),
        "command": "python benchmarks/compare_checkpoints.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    out = HERE / "results" / f"compare-{a.name}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("delta_map50", "delta_map50_ci95")} |
                     {k: result[k]["map50_ci95"] for k in ("before", "after")}))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
