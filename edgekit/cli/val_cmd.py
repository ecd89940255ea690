"""``edgekit val``: mAP of a checkpoint on a dataset split, through the shared post-processing."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("val", help="validate a checkpoint: mAP50, mAP50-95, per class, speed")
    p.add_argument("--weights", required=True, help="checkpoint (.pt) written by `edgekit train`")
    p.add_argument("--data", required=True, help="data.yaml (yolo/coco/voc), COCO .json or VOC folder")
    p.add_argument("--split", default="val", help="train, val or test (default val)")
    p.add_argument("--imgsz", type=int, help="input size (default: the one it was trained at)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys

    from edgekit.validate import validate_checkpoint

    r = validate_checkpoint(args.weights, args.data, args.split, args.imgsz, args.batch, args.device,
                            progress=not args.json and sys.stderr.isatty())
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['model']} on {r['data']} [{r['split']}], {r['images']} images at {r['imgsz']}: "
          f"mAP50 {r['map50']:.4f}  mAP50-95 {r['map50_95']:.4f}  {r['ms_per_image']:.1f} ms/image")
    for name, ap in r["per_class"].items():
        print(f"  {name:12s} AP50-95 {'-' if ap is None else f'{ap:.4f}'}")
    return 0
