"""``edgekit data check|convert``: inspect and convert datasets."""

from __future__ import annotations


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
    v.set_defaults(func=run_convert)


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
    print(f"wrote {args.to} dataset: {out}")
    return 0
