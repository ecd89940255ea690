"""Which objects does a detector miss? Recall at IoU 0.5 per class and per box size, and each class's AP50.

    python benchmarks/recall_by_size.py edgekit/assets/weights/yolo-fastest-1.1-fish4knowledge-320.pt \
        --data ../shared/data/fish4knowledge/data.yaml --name yolo-fastest-1.1-f4k

Predicts the test split (``val`` when there is none) as ``edgekit val`` does (conf 0.001, NMS IoU 0.6),
then for every ground-truth box: the best IoU of any detection with a score of at least ``conf``, of any
class and of its own class. Recall (best IoU >= 0.5) is reported at conf 0.001 (what mAP can reach) and
0.25 (a deployment threshold), per class and, for each class, per size bucket of the box's sqrt(w x h) in
original-image pixels, with the median best IoU (a bucket found but placed a few pixels off shows a median
just under 0.5). Writes ``benchmarks/results/recall-<name>.json`` with the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BUCKETS = (0, 8, 12, 16, 24, None)  # sqrt(w x h) in original-image pixels
CONFS = (0.001, 0.25)


def best_ious(gt, gt_cls, boxes, scores, classes, confs) -> dict:
    """Per ground-truth box and per threshold in ``confs``: the best IoU with a detection scoring >= the threshold,
    of any class and of its own class; one IoU matrix per image serves every threshold.

    Example:
        >>> b = np.array([[0, 0, 10, 10]], float)
        >>> best_ious(b, np.array([0]), b, np.array([0.1]), np.array([1]), (0.001, 0.25))[0.001][0].tolist()
        [1.0]
    """
    from edgekit.runtime.boxes import box_iou

    m = box_iou(gt, boxes) if len(gt) and len(boxes) else np.zeros((len(gt), 0))
    same = m * (gt_cls[:, None] == classes[None, :])
    out = {}
    for conf in confs:
        keep = scores >= conf
        out[conf] = (m[:, keep].max(1), same[:, keep].max(1)) if keep.any() else (np.zeros(len(gt)),) * 2
    return out


def summary(rows: np.ndarray) -> dict:
    """rows: (n, 3) of (size, best IoU any class, best IoU same class)."""
    if not len(rows):
        return {"boxes": 0}
    return {"boxes": int(len(rows)), "recall_any_class": round(float((rows[:, 1] >= 0.5).mean()), 4),
            "recall": round(float((rows[:, 2] >= 0.5).mean()), 4),
            "median_best_iou": round(float(np.median(rows[:, 2])), 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("weights")
    p.add_argument("--data", required=True)
    p.add_argument("--name", required=True, help="results/recall-<name>.json")
    a = p.parse_args(argv)

    from edgekit.data import load_dataset
    from edgekit.metrics import evaluate_detections
    from edgekit.models.checkpoint import load_checkpoint
    from edgekit.prune.measure import test_split
    from edgekit.validate import predict_records

    t0 = time.time()
    ds = load_dataset(a.data)
    split = test_split(a.data)
    recs = ds.split(split)
    model, ck = load_checkpoint(a.weights)
    preds, _ = predict_records(model, recs, ck["imgsz"])
    gts = [r.truth() for r in recs]
    ap50 = evaluate_detections(gts, preds, ds.names).to_dict()["per_class_map50"]
    rows = {conf: [] for conf in CONFS}  # per threshold: (class, size, best IoU any class, best IoU same class)
    for r, pr in zip(recs, preds):
        gt = np.asarray(r.boxes, float).reshape(-1, 4)
        gc = np.asarray(r.classes, int)
        size = np.sqrt(np.clip(gt[:, 2] - gt[:, 0], 0, None) * np.clip(gt[:, 3] - gt[:, 1], 0, None))
        found = best_ious(gt, gc, np.asarray(pr["boxes"], float).reshape(-1, 4), np.asarray(pr["scores"]),
                          np.asarray(pr["classes"]), CONFS)
        for conf, (anyc, same) in found.items():
            rows[conf].extend(zip(gc, size, anyc, same))
    by_conf = {}
    for conf in CONFS:
        table = np.asarray(rows[conf], float).reshape(-1, 4)
        per_class = {}
        for c, name in enumerate(ds.names):
            mine = table[table[:, 0] == c][:, 1:]
            buckets = {}
            for lo, hi in zip(BUCKETS[:-1], BUCKETS[1:]):
                sel = (mine[:, 0] >= lo) & (mine[:, 0] < (hi if hi is not None else np.inf))
                buckets[f"{lo}-{hi}" if hi is not None else f"{lo}+"] = summary(mine[sel])
            per_class[str(name)] = {**summary(mine), "by_size": buckets}
        by_conf[str(conf)] = {"all": summary(table[:, 1:]), "per_class": per_class}
    result = {
        "what": "recall at IoU 0.5 per class and box size (sqrt(w x h), original pixels) at two score thresholds, "
                "and AP50 per class",
        "weights": a.weights, "data": a.data, "split": split, "images": len(recs), "imgsz": ck["imgsz"],
        "ap50_per_class": {n: None if v is None else round(float(v), 4) for n, v in ap50.items()},
        "recall": by_conf, "wall_s": round(time.time() - t0, 1),
        "command": "python benchmarks/recall_by_size.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    out = HERE / "results" / f"recall-{a.name}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"all": by_conf[str(CONFS[0])]["all"], "ap50_per_class": result["ap50_per_class"]}))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
