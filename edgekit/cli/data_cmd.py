"""``edgekit data check|convert|crops|split``: inspect, convert and split datasets, cut boxes into classification sets."""

from __future__ import annotations

from edgekit.cli.ranges import fraction, number, whole


def add_parser(sub):
    p = sub.add_parser("data", help="check or convert datasets (YOLO, COCO, VOC)")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    c = dsub.add_parser("check", help="counts per split and class, and every problem found")
    c.add_argument("data", help="data.yaml (yolo/coco/voc), COCO .json, or VOC folder")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--no-decode", action="store_true", help="skip decoding every image (faster)")
    c.set_defaults(func=run_check)

    v = dsub.add_parser("convert", help="convert a dataset to yolo, coco or voc")
    v.add_argument("data", help="source: data.yaml, COCO .json, or VOC folder")
    v.add_argument("--to", required=True, choices=["yolo", "coco", "voc"], help="target format")
    v.add_argument("--out", required=True, help="output folder (built atomically)")
    v.add_argument("--link", action="store_true", help="symlink images instead of copying them")
    v.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    v.add_argument("--json", action="store_true", help="print one JSON object (output folder, format, counts)")
    v.set_defaults(func=run_convert)

    k = dsub.add_parser("crops", help="cut labelled boxes into a class-per-folder dataset (for --task classify)")
    k.add_argument("data", help="source: data.yaml (yolo/coco/voc), COCO .json, or VOC folder")
    k.add_argument("--out", required=True, help="output folder: OUT/<split>/<class>/*.jpg (built atomically)")
    k.add_argument("--pad", type=number(0.0, 10.0), default=0.1, help="padding on each side, fraction of the box size (default 0.1)")
    k.add_argument("--min-size", type=number(0.0), default=4, help="skip boxes smaller than this many pixels (default 4)")
    k.add_argument("--splits", nargs="+", help="only these splits (default: all of the source)")
    k.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    k.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    k.set_defaults(func=run_crops)

    s = dsub.add_parser("split", help="write train/val/test split lists and a data.yaml (all images pooled, shuffled by --seed)")
    s.add_argument("data", help="source: a YOLO or VOC data.yaml, or a VOC folder (any folder-name case)")
    s.add_argument("--val", type=fraction(), default=0.15, help="fraction of images for val (default 0.15)")
    s.add_argument("--test", type=fraction(), default=0.15, help="fraction of images for test (default 0.15)")
    s.add_argument("--seed", type=whole(0), default=0, help="shuffle seed (default 0)")
    s.add_argument("--out", help="folder for data.yaml and splits/ (default: the dataset's folder; nothing there is changed)")
    s.add_argument("--overwrite", action="store_true", help="replace data.yaml/splits written by an earlier split")
    s.add_argument("--json", action="store_true", help="print one JSON object (data.yaml path, counts per split)")
    s.set_defaults(func=run_split)


def run_check(args) -> int:
    import json
    import sys

    from edgekit.data.check import check_dataset

    report = check_dataset(args.data, decode=not args.no_decode, progress=not args.json and sys.stderr.isatty())
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text())
    if not report.usable:
        print(f"edgekit: error: {args.data} cannot be used: {'; '.join(report.fatal)}", file=sys.stderr)
        return 1
    return 0


def run_convert(args) -> int:
    from edgekit.data.loader import convert_dataset

    out = convert_dataset(args.data, args.to, args.out, link=args.link, overwrite=args.overwrite)
    if args.json:
        import json

        from edgekit.data import load_dataset

        print(json.dumps({"out": str(out), "format": args.to, "counts": load_dataset(out).counts()}, indent=2,
                         default=str))
    else:
        print(f"wrote {args.to} dataset: {out}")
    return 0


def run_crops(args) -> int:
    import json
    import sys

    from edgekit.data.crops import crops_to_text, make_crops, read_crops_report

    out = make_crops(args.data, args.out, pad=args.pad, min_size=args.min_size, splits=args.splits,
                     overwrite=args.overwrite, progress=not args.json and sys.stderr.isatty())
    report = read_crops_report(out)
    if args.json:
        print(json.dumps({"out": str(out), **report}, indent=2))
    else:
        print(crops_to_text(report))
        print(f"wrote crops: {out}  (train with: edgekit train --task classify --model mobilenetv2-cls --data {out})")
    return 0


def run_split(args) -> int:
    import json

    from edgekit.data.split import split_dataset

    result = split_dataset(args.data, val=args.val, test=args.test, seed=args.seed, out=args.out,
                           overwrite=args.overwrite)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for split, c in result["counts"].items():
        print(f"{split:5s} {c['images']:6d} images {c['boxes']:7d} boxes")
    print(f"wrote {result['data']} (seed {result['seed']})")
    return 0
