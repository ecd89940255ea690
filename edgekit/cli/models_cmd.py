"""``edgekit models``: the registered detectors and classifiers with their size and cost."""
from __future__ import annotations

from edgekit.cli.ranges import whole

REFERENCE_CLASSES = 20  # PASCAL VOC, the class count most published tiny-detector figures use


def add_parser(sub):
    p = sub.add_parser("models", help="registered detectors and classifiers: params and GFLOPs at their default input size")
    p.add_argument("pattern", nargs="?", default=None, help="only names matching this shell pattern, e.g. 'mobilenet*'")
    p.add_argument("--classes", type=whole(1), default=REFERENCE_CLASSES,
                   help=f"class count the figures are computed for (default {REFERENCE_CLASSES})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def model_table(pattern: str | None = None, num_classes: int = REFERENCE_CLASSES) -> list[dict]:
    """One row per registered model: name, task, head, imgsz, outputs' strides, params (M), GFLOPs.

    Classifiers have no strides or anchors (empty lists).

    GFLOPs count 2 FLOPs per multiply-accumulate (torch's FlopCounterMode), at the model's
    default input size, as Darknet and most papers do.

    Example:
        >>> [r["name"] for r in model_table("yolo-lite")]
        ['yolo-lite']
    """
    from edgekit.errors import EdgekitError
    from edgekit.models import create_model, list_models, model_task
    from edgekit.models.complexity import count_flops, count_params

    names = list_models(pattern)
    if not names:
        raise EdgekitError(f"no registered model matches '{pattern}': available models are {', '.join(list_models())}")
    rows = []
    for name in names:
        model = create_model(name, num_classes=num_classes)
        spec = model.head_spec
        rows.append({
            "name": name,
            "task": model_task(name),
            "head": spec["type"],
            "imgsz": spec["imgsz"],
            "strides": spec.get("strides", []),
            "anchors_per_output": [len(a) for a in spec.get("anchors", [])],
            "num_classes": num_classes,
            "params_m": round(count_params(model) / 1e6, 3),
            "gflops": round(count_flops(model, spec["imgsz"]) / 1e9, 3),
        })
    return rows


def run(args) -> int:
    import json

    rows = model_table(args.pattern, args.classes)
    if args.json:
        print(json.dumps({"num_classes": args.classes, "models": rows}, indent=2))
        return 0
    print(f"{'model':<22} {'head':<8} {'imgsz':>6} {'strides':<9} {'params (M)':>10} {'GFLOPs':>8}")
    for r in rows:
        strides = ",".join(str(s) for s in r["strides"]) or "-"
        print(f"{r['name']:<22} {r['head']:<8} {r['imgsz'][1]:>6} {strides:<9} {r['params_m']:>10.3f} {r['gflops']:>8.3f}")
    print(f"({args.classes} classes; GFLOPs = 2 x multiply-accumulates at the default input size)")
    return 0
