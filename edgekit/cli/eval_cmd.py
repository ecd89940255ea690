"""``edgekit eval``: COCO box mAP of a results file against COCO ground truth.

A thin shell over :func:`edgekit.metrics.evaluate_coco`; the numbers are pycocotools'
(checked to within 1e-4 by the test suite) without needing pycocotools installed.
"""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_parser(sub):
    p = sub.add_parser(
        "eval", help="COCO mAP of detections (COCO results JSON) against COCO ground truth",
        description="COCO box mAP (IoU 0.50:0.95, 101-point) of a COCO results file against COCO "
                    "ground truth, computed as pycocotools' COCOeval does.")
    p.add_argument("--gt", required=True, metavar="GT.json", help="COCO ground truth (images, annotations, categories)")
    p.add_argument("--pred", required=True, metavar="PRED.json",
                   help="COCO results: a list of {image_id, category_id, bbox [x, y, w, h], score}")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--areas", action="store_true", help="also report small/medium/large (COCO's 32^2 and 96^2 pixel splits)")
    p.add_argument("--max-dets", type=_positive_int, default=100, metavar="N",
                   help="detections kept per image and category, highest scores first (default: 100)")
    p.add_argument("--single-cls", action="store_true", help="score every category as one (class-agnostic)")
    p.add_argument("--map-classes", metavar="FILE", help="YAML mapping category names to the names scored; "
                                                        "null leaves a category out")
    p.set_defaults(func=run)


def _fmt(v: float | None) -> str:
    return "     -" if v is None else f"{v:6.3f}"


def format_result(result) -> str:
    """Readable table of a :class:`~edgekit.metrics.MapResult`: one row per class, then the means.

    Example:
        >>> from edgekit.metrics import evaluate_detections
        >>> r = evaluate_detections([{"boxes": [[0, 0, 9, 9]], "classes": [0]}],
        ...                         [{"boxes": [[0, 0, 9, 9]], "scores": [1.0], "classes": [0]}], ["cell"])
        >>> print(format_result(r).splitlines()[2])
        cell        1   1.000    1.000
    """
    names = list(result.per_class)
    width = max([len("class"), len("all")] + [len(n) for n in names])
    total_gt = sum(result.num_gt.values())
    lines = [f"{result.num_images} images, {total_gt} ground-truth boxes, {result.num_detections} detections "
             f"(at most {result.max_dets} per image and class)",
             f"{'class':<{width}}  {'gt':>6}  {'AP50':>6}  {'AP50:95':>7}"]
    for n in names:
        lines.append(f"{n:<{width}}  {result.num_gt[n]:>6}  {_fmt(result.per_class_map50[n])}   {_fmt(result.per_class[n])}")
    lines.append(f"{'all':<{width}}  {total_gt:>6}  {_fmt(result.map50)}   {_fmt(result.map50_95)}")
    lines.append("")
    lines.append(f"mAP50:95 {_fmt(result.map50_95).strip()}   mAP50 {_fmt(result.map50).strip()}   "
                 f"mAP75 {_fmt(result.map75).strip()}   AR@{result.max_dets} {_fmt(result.mar).strip()}")
    if result.precision is not None and result.precision.shape[-1] > 1:
        lines.append("by area:  " + "   ".join(
            f"{a} AP {_fmt(getattr(result, f'map_{a}')).strip()} AR {_fmt(getattr(result, f'mar_{a}')).strip()}"
            for a in ("small", "medium", "large")))
    if any(v is None for v in result.per_class.values()):
        lines.append("'-': no ground truth for the class; left out of the means")
    return "\n".join(lines)


def run(args) -> int:
    import json

    from edgekit.metrics import check_coco_predictions, evaluate_coco, load_coco_json

    gt = load_coco_json(args.gt, kind="gt")
    preds = load_coco_json(args.pred, kind="pred")
    check_coco_predictions(preds, gt, source=args.pred)   # unknown image/category ids, naming the file
    from edgekit.metrics.class_map import ClassMap, remap_coco

    cmap = ClassMap.from_options(args.single_cls, args.map_classes)
    if cmap is not None:
        gt, preds = remap_coco(gt, preds, cmap)
    result = evaluate_coco(gt, preds, max_dets=args.max_dets, areas=args.areas)
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_result(result))
    return 0
