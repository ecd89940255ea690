"""``edgekit val``: a checkpoint on a dataset split, through the shared post-processing.

Detectors report mAP50, mAP50-95 and AP per class; classifiers (checkpoints with
``task: classify``) report top-1, top-5, accuracy per class and the confusion matrix.
"""

from __future__ import annotations

from edgekit.cli.ranges import fraction, image_size, whole
from edgekit.input_size import size_text


def add_parser(sub):
    p = sub.add_parser("val", help="validate a checkpoint: mAP (detectors) or top-1/top-5 (classifiers), speed")
    p.add_argument("--weights", required=True, help="checkpoint (.pt) written by `edgekit train`")
    p.add_argument("--data", required=True, help="data.yaml (yolo/coco/voc), COCO .json or VOC folder; "
                                                 "for a classifier an image-folder root")
    p.add_argument("--split", default="val", help="train, val or test (default val)")
    p.add_argument("--imgsz", type=image_size, help="input size (default: the one it was trained at)")
    p.add_argument("--batch", type=whole(1), default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--unsure", type=fraction(), help="classifiers: reject predictions whose top probability is below this")
    p.add_argument("--single-cls", action="store_true", help="detectors: score every class as one (class-agnostic)")
    p.add_argument("--map-classes", metavar="FILE", help="detectors: YAML mapping class names (the model's and the "
                                                        "data's) to the names scored; null leaves a class out")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys

    from edgekit.models.checkpoint import read_checkpoint

    progress = not args.json and sys.stderr.isatty()
    if read_checkpoint(args.weights).get("task", "detect") == "classify":
        if args.single_cls or args.map_classes:
            from edgekit.errors import EdgekitError

            raise EdgekitError("--single-cls and --map-classes are for detectors: a classifier's classes are its crops' "
                               "folders (rename or merge those)")
        from edgekit.validate_classify import validate_classifier_checkpoint

        r = validate_classifier_checkpoint(args.weights, args.data, args.split, args.imgsz, args.batch, args.device,
                                           progress=progress, unsure=args.unsure)
        if args.json:
            print(json.dumps(r, indent=2))
            return 0
        print(f"{r['model']} on {r['data']} [{r['split']}], {r['images']} images at {size_text(r['imgsz'])}: "
              f"top1 {r['top1']:.4f}  top{r['top5_k']} {r['top5']:.4f}  {r['ms_per_image']:.2f} ms/image")
        if "unsure" in r:
            u = r["unsure"]
            kept = "-" if u["top1_kept"] is None else f"{u['top1_kept']:.4f}"
            print(f"  unsure below {u['threshold']}: {u['rejected']:.1%} rejected, top1 on the rest {kept}")
        for name, acc in r["per_class"].items():
            print(f"  {name:12s} top1 {'-' if acc is None else f'{acc:.4f}'}")
        return 0

    from edgekit.metrics.class_map import ClassMap
    from edgekit.validate import validate_checkpoint

    cmap = ClassMap.from_options(args.single_cls, args.map_classes)
    r = validate_checkpoint(args.weights, args.data, args.split, args.imgsz, args.batch, args.device, progress=progress,
                            class_map=cmap)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['model']} on {r['data']} [{r['split']}], {r['images']} images at {size_text(r['imgsz'])}: "
          f"mAP50 {r['map50']:.4f}  mAP50-95 {r['map50_95']:.4f}  {r['ms_per_image']:.1f} ms/image")
    for name, ap in r["per_class"].items():
        print(f"  {name:12s} AP50-95 {'-' if ap is None else f'{ap:.4f}'}")
    return 0
