"""``edgekit quant-report MODEL --target onnx-int8|tflite-int8|openvino-int8 --data DATA``: which layers INT8 hurts, ranked.

stdout carries the table (or with ``--json`` exactly one JSON document); progress goes to stderr.
The ranked names are what ``edgekit export --keep-float`` takes.
"""

from __future__ import annotations

from edgekit.cli.ranges import image_size, whole


def add_parser(sub):
    p = sub.add_parser("quant-report", help="per-layer INT8 error of a model, ranked (what --keep-float takes)")
    p.add_argument("model", help="checkpoint .pt, Darknet .cfg or .onnx")
    p.add_argument("--target", default="onnx-int8", help="the INT8 target to analyse: onnx-int8 (default), tflite-int8 "
                                                         "or openvino-int8")
    p.add_argument("--calib-method", metavar="METHOD", help="calibrate as `edgekit export --calib-method METHOD` would")
    p.add_argument("--data", help="data.yaml: calibration from its train split, analysis on its test/val images")
    p.add_argument("--calib", help="folder of calibration images (part of it is held out for the analysis "
                                   "when there is no --data)")
    p.add_argument("--calib-images", type=whole(1), help="how many calibration images (default 100)")
    p.add_argument("--images", type=whole(1), default=16, help="held-out images compared layer by layer (default 16)")
    p.add_argument("--imgsz", type=image_size, help="input size (default: the model's)")
    p.add_argument("--top", type=whole(1), default=10, help="rows in the table and names in 'worst' (default 10)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys

    from edgekit.export.capture import captured
    from edgekit.export.quant_report import quant_report, to_text

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with captured("quant-report", args.verbose):
        report = quant_report(args.model, args.target, args.data, args.calib, args.images, args.calib_images,
                              args.imgsz, args.top, log, args.calib_method)
    print(json.dumps(report, indent=1) if args.json else to_text(report, args.top))
    return 0
