"""``edgekit export``: convert a model to one or more targets, verify each, write the report.

stdout carries the result only (the report, or with ``--json`` exactly one JSON document);
edgekit's progress goes to stderr, one line per stage; what the converters print is
captured and shown on stderr with ``--verbose`` (or in the error of a step that failed).

Exit code 1 when any target fails its parity check or its mAP gate; failed artifacts are
not left under their final names.
"""

from __future__ import annotations

from edgekit.cli.ranges import fraction, image_size, number, whole


def add_parser(sub):
    from edgekit.runtime.preprocess import COLORS

    p = sub.add_parser("export", help="export to onnx/tflite/openvino/ncnn (fp32/fp16/int8), verified")
    p.add_argument("model", nargs="?", help="checkpoint .pt, Darknet .cfg (+ .weights beside it) or .onnx "
                                            "(default: best.pt of the newest run under runs/train)")
    p.add_argument("--target", action="append", default=[], help="target name (repeatable) or 'all'; see --list")
    p.add_argument("--list", action="store_true", help="list the targets, their needs and availability here")
    p.add_argument("--data", help="data.yaml: INT8 calibration (train split) and mAP verification (test/val split); "
                                  "for a classifier, an image-folder set (`edgekit data crops`) and top-1")
    p.add_argument("--calib", help="folder of calibration images (instead of --data's train split)")
    p.add_argument("--calib-images", type=whole(1), help="how many calibration images (default 100, evenly chosen)")
    p.add_argument("--split", help="split to verify mAP on (default test, else val)")
    p.add_argument("--imgsz", type=image_size, help="input size (default: the model's)")
    p.add_argument("--out", help="output folder (default: the run's export/ folder, beside the model otherwise)")
    p.add_argument("--max-map-drop", type=fraction(), help="fail a target whose mAP@0.5 drops more than this "
                                                      "(default 0.02 for int8, 0.005 for float targets)")
    p.add_argument("--max-top1-drop", type=fraction(), help="a classifier's gate: fail a target whose top-1 drops "
                                                       "more than this (default 0.01)")
    p.add_argument("--keep-float", metavar="auto|N|NAMES|@FILE", help="onnx-int8, tflite-int8, openvino-int8: leave layers in "
                   "float: 'auto' (the fewest worst layers that pass the gate), N worst layers, names from "
                   "`edgekit quant-report --target T` separated by commas, or @FILE: those names from a file (one per "
                   "line, # comments)")
    p.add_argument("--keep-float-budget", type=number(1.0, 100.0), metavar="X",
                   help="with --keep-float auto: a try may take at most X times the plain INT8 artifact's host latency; "
                        "auto stops at the first try over it (default: no limit)")
    p.add_argument("--calib-method", metavar="METHOD", help="INT8 activation ranges: minmax|percentile|entropy (onnx-int8), "
                   "minmax (tflite-int8), mean-minmax|minmax|percentile|histogram (openvino-int8), or auto (the best "
                   "on the held-out metric); default: each quantizer's first")
    p.add_argument("--io", default="int8", choices=["int8", "uint8", "float"], help="tflite-int8 input/output type")
    p.add_argument("--input-color", default="RGB", type=str.upper, choices=COLORS,
                   help="tflite targets: BGR takes OpenCV's frames as they come (the channel swap folded into the "
                        "first convolution: one pass less per frame); default RGB")
    p.add_argument("--rknn-platform", default="rk3588", metavar="SOC",
                   help="rknn, rknn-int8: the Rockchip SoC (rk3588, rk3576, rk3568, rk3566, rk3562, rv1126b, rv1106, "
                        "rv1106b, rv1103, rv1103b, rk2118; default rk3588)")
    p.add_argument("--weights", help="Darknet .weights when not beside the .cfg")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def list_targets(as_json: bool) -> int:
    import json

    from edgekit.export.targets import TARGETS

    rows = [{"target": t.name, "family": t.family, "precision": t.precision, "file": t.suffix, "extra": t.extra,
             "available": t.available(), "missing": t.missing(), "install": t.install_hint, "from_onnx": t.from_onnx,
             "description": t.description}
            for t in TARGETS.values()]
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["target"]) for r in rows)  # executorch-int8 is 15 characters
    print(f"{'target':{width}s} {'file':8s} {'here':5s} {'from onnx':9s} what")
    for r in rows:
        here = "yes" if r["available"] else "no"
        need = "" if r["available"] else f"  [needs {', '.join(r['missing'])}: {r['install']}]"
        print(f"{r['target']:{width}s} {r['file']:8s} {here:5s} {'yes' if r['from_onnx'] else 'no':9s} {r['description']}{need}")
    return 0


def run(args) -> int:
    import sys

    if args.list:
        return list_targets(args.json)
    from edgekit.export import export

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    report = export(args.model, args.target, data=args.data, calib=args.calib, imgsz=args.imgsz, out=args.out,
                    max_map_drop=args.max_map_drop, max_top1_drop=args.max_top1_drop, keep_float=args.keep_float,
                    keep_float_budget=args.keep_float_budget, calib_method=args.calib_method,
                    calib_images=args.calib_images, split=args.split, io=args.io, rknn_platform=args.rknn_platform,
                    input_color=args.input_color,
                    weights=args.weights, log=log, verbose=args.verbose)
    if args.json:
        print(report.to_json())
    else:
        print(report.to_markdown())
        print(f"report: {report.out}/export_report.json")
    if not report.ok:
        failed = [f"{r.target} ({r.status})" for r in report.results if not r.ok]
        print(f"edgekit: error: {len(failed)} target(s) not produced: {', '.join(failed)} (failed: the converter "
              f"could not; rejected: verification failed; each target's reason and fix are in the report)", file=sys.stderr)
        return 1
    return 0
