"""``edgekit calibrate-reject MODEL --data VAL --max-error 0.05``: per-class "unsure" thresholds.

Runs an exported classifier on every image of a labelled image-folder split (through the
same :class:`~edgekit.runtime.runner.ArtifactRunner` the board uses), fits one threshold per
predicted class with :func:`edgekit.runtime.reject.calibrate_reject` so that the error among
accepted predictions is at most ``--max-error``, and writes them into the artifact's sidecar
manifest ``<artifact>.json`` as ``reject``::

    "reject": {"thresholds": [...], "max_error": 0.05, "method": "empirical", "delta": null,
               "calibration": {"split": "val", "images": 1594, "hash": "...", "coverage": ..., ...}}

``Classifier.predict`` then answers "unsure" (label -1) below the threshold of the top class.
"""

from __future__ import annotations

import json
from edgekit.cli.ranges import fraction, whole


def add_parser(sub):
    p = sub.add_parser("calibrate-reject", help="fit per-class reject ('unsure') thresholds of a classifier "
                                                "artifact that bound its error rate; writes them to the manifest")
    p.add_argument("model", help="exported classifier (.onnx, .tflite, OpenVINO .xml or ncnn .param) with its manifest")
    p.add_argument("--data", required=True, help="image-folder root (root/<split>/<class>/*.jpg, e.g. from `edgekit "
                                                  "data crops`) with labelled images the model did not train on")
    p.add_argument("--split", default="val", help="split to calibrate on (default val; valid/validation folders count)")
    p.add_argument("--max-error", type=fraction(above_zero=True), default=0.05,
                   help="largest misclassification rate allowed among accepted predictions (default 0.05)")
    p.add_argument("--delta", type=fraction(above_zero=True), help="guarantee the bound on new data with probability 1-DELTA (binomial "
                                               "test per class; rejects more). Default: bound on the calibration split")
    p.add_argument("--min-support", type=whole(1), default=30, help="classes predicted fewer times share one pooled "
                                                               "threshold (default 30; without --delta)")
    p.add_argument("--backend", help="run the artifact in this backend instead of the manifest's")
    p.add_argument("--threads", type=whole(1), help="inference threads")
    p.add_argument("--json", action="store_true", help="print the reject block as JSON")
    p.set_defaults(func=run)


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def run(args) -> int:
    from edgekit.reject_calibration import calibrate_artifact

    r = calibrate_artifact(args.model, args.data, args.max_error, args.split, args.delta, args.min_support,
                           args.backend, args.threads)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    cal = r["calibration"]
    how = (f"binomial, bound on new data with probability {1 - r['delta']:.2f}" if r["method"] == "binomial"
           else "empirical, bound on this split")
    print(f"{args.model}: reject thresholds for max error {r['max_error']} ({how}) on {cal['images']} "
          f"{cal['split']} images (top-1 without rejection {cal['top1']:.4f})")
    print(f"  {'class':12s} {'threshold':>9s} {'support':>8s} {'accepted':>9s} {'errors':>7s} {'error':>7s}")
    for pc in cal["per_class"]:
        thr = "reject" if pc["threshold"] > 1 else f"{pc['threshold']:.4f}"
        tag = "" if pc["source"] == "class" else f"  ({pc['source']})"
        print(f"  {pc['name']:12s} {thr:>9s} {pc['support']:8d} {pc['accepted']:9d} {pc['errors']:7d} "
              f"{_num(pc['error'], '7.4f'):>7s}{tag}")
    print(f"  overall: coverage {cal['coverage']:.4f} ({cal['accepted']}/{cal['images']} accepted), "
          f"accepted error {_num(cal['accepted_error'], '.4f')}")
    print(f"wrote reject thresholds to {r['manifest']}")
    return 0
