"""Calibrate per-class reject thresholds of the shipped classifier on Fish4Knowledge val; check them on test.

    python benchmarks/reject_calibration.py --data ../shared/data/fish4knowledge/data.yaml

Cuts the species thumbnails (``edgekit data crops`` defaults: pad 0.1, min size 4) into
``runs/bench/crops-<data>``, exports the classifier to ``--target`` (verified, as
``edgekit export`` does), runs the artifact on every val and test thumbnail through the
runtime's ``ArtifactRunner``, then for each ``--max-error`` and each method (empirical; binomial
with ``--delta``) fits the thresholds on val (what ``edgekit calibrate-reject`` does) and
measures coverage and accepted error on val (the calibration split) and on test (held out).
Writes ``benchmarks/results/reject-<model>-<data>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE.parent / "edgekit" / "assets" / "weights" / "mobilenetv2-cls-fish4knowledge-64.pt"


def per_class_held_out(probs, labels, thresholds, names) -> list[dict]:
    """Accepted predictions and errors per predicted class on a held-out split."""
    from edgekit.runtime.reject import apply_reject

    pred, out = probs.argmax(1), apply_reject(probs, thresholds)
    rows = []
    for j, name in enumerate(names):
        acc = (pred == j) & (out != -1)
        errors = int((labels[acc] != j).sum())
        rows.append({"name": name, "support": int((pred == j).sum()), "accepted": int(acc.sum()), "errors": errors,
                     "error": round(errors / int(acc.sum()), 5) if acc.any() else None})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="detection data.yaml whose boxes become the thumbnails")
    p.add_argument("--weights", default=str(WEIGHTS), help="classifier checkpoint (default: the shipped one)")
    p.add_argument("--target", default="onnx", help="export target the thresholds are calibrated for")
    p.add_argument("--max-error", type=float, nargs="+", default=[0.05, 0.10])
    p.add_argument("--delta", type=float, default=0.1, help="confidence parameter of the binomial method")
    p.add_argument("--min-support", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default="runs/bench", help="where the crops and the artifact go")
    a = p.parse_args(argv)

    import numpy as np

    from edgekit import __version__
    from edgekit.reject_calibration import artifact_probabilities
    from edgekit.data.crops import make_crops
    from edgekit.data.folders import items_hash, load_image_folder
    from edgekit.export import export
    from edgekit.export.manifest import versions
    from edgekit.io import atomic_write_text
    from edgekit.runtime.reject import calibrate_reject, reject_report
    from train_seed import host_string

    data_name = Path(a.data).resolve().parent.name
    crops = make_crops(a.data, Path(a.runs) / f"crops-{data_name}", pad=0.1, min_size=4, overwrite=True)
    rep = export(a.weights, [a.target], out=Path(a.runs) / f"reject-export-{data_name}")
    res = rep.results[0]
    if not res.ok:
        print(f"export to {a.target} {res.status}: {res.reason}", file=sys.stderr)
        return 1
    artifact = Path(rep.out) / res.file
    ds = load_image_folder(crops)
    splits = {}
    for split in ("val", "test"):
        items = ds.split(split)
        t0 = time.time()
        probs = artifact_probabilities(artifact, items, threads=a.threads)
        splits[split] = (probs, np.array([c for _, c in items], np.int64), items, time.time() - t0)
    val_p, val_y, val_items, _ = splits["val"]
    test_p, test_y, _, _ = splits["test"]
    runs = []
    for max_error in a.max_error:
        for delta in (None, a.delta):
            cal = calibrate_reject(val_p, val_y, max_error, min_support=a.min_support, delta=delta)
            held = reject_report(test_p, test_y, cal["thresholds"])
            runs.append({
                "max_error": max_error, "method": cal["method"], "delta": cal["delta"], "thresholds": cal["thresholds"],
                "val": {"coverage": cal["coverage"], "accepted_error": cal["accepted_error"],
                        "accepted": cal["accepted"],
                        "per_class": [{"name": n, **s} for n, s in zip(ds.names, cal["per_class"])]},
                "test": {"coverage": held["coverage"], "accepted_error": held["accepted_error"],
                         "accepted": held["accepted"],
                         "per_class": per_class_held_out(test_p, test_y, cal["thresholds"], ds.names)},
            })
            print(f"max_error {max_error:.2f} {cal['method']:9s}: val coverage {cal['coverage']:.3f} error "
                  f"{cal['accepted_error']}  |  test coverage {held['coverage']:.3f} error {held['accepted_error']}")
    result = {
        "model": "mobilenetv2-cls", "data": data_name, "weights": Path(a.weights).name, "target": a.target,
        "artifact": artifact.name, "classes": ds.names,
        "top1": {s: round(float((p.argmax(1) == y).mean()), 5) for s, (p, y, _, _) in splits.items()},
        "images": {s: len(v[2]) for s, v in splits.items()}, "val_hash": items_hash(val_items),
        "ms_per_image": {s: round(v[3] / max(len(v[2]), 1) * 1000, 3) for s, v in splits.items()},
        "min_support": a.min_support, "runs": runs, "host": host_string(), "threads": a.threads,
        "versions": versions(), "edgekit": __version__,
        "command": " ".join(["python", "benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    dest = HERE / "results" / f"reject-mobilenetv2-cls-{data_name}.json"
    atomic_write_text(dest, json.dumps(result, indent=1))
    print(f"top-1 val {result['top1']['val']:.4f} test {result['top1']['test']:.4f} -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
