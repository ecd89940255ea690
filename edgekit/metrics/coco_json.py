"""COCO JSON in and out of the mAP: load and check ground truth and results files, evaluate them.

Ground truth is a COCO ``instances`` object (``images``, ``annotations``, ``categories``);
predictions are a COCO results list (``image_id``, ``category_id``, ``bbox`` [x, y, w, h]
in pixels, ``score``), the format pycocotools' ``loadRes`` reads. Category ids may be
sparse; class names come from the ground truth's categories, in increasing id order.

Every problem a user can cause becomes one :class:`~edgekit.errors.EdgekitError` line
naming the file, the entry and the fix.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.io import read_json
from edgekit.metrics.coco_map import MapResult, _evaluate_images, _Image

__all__ = ["load_coco_json", "check_coco_gt", "check_coco_predictions", "evaluate_coco"]

_PRED_KEYS = ("image_id", "category_id", "bbox", "score")


def load_coco_json(path: str | os.PathLike, kind: str = "gt") -> dict | list:
    """Read a COCO ground-truth file (``kind="gt"``) or results file (``kind="pred"``) and check it.

    A results file is a list of detections; an object holding that list under
    ``"annotations"`` is accepted as well. Checks are those of :func:`check_coco_gt` and
    :func:`check_coco_predictions` (the latter without the ground truth: image and category
    ids are checked by :func:`evaluate_coco`).

    Args:
        path: the JSON file.
        kind: ``"gt"`` or ``"pred"``.

    Returns:
        The ground-truth dict, or the list of detections.

    Raises:
        EdgekitError: missing or unreadable file, invalid JSON (with line and column),
            wrong structure, missing keys, bad boxes or scores.

    Example:
        >>> import json, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "pred.json"
        >>> _ = p.write_text(json.dumps([{"image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 0.9}]))
        >>> load_coco_json(p, kind="pred")[0]["score"]
        0.9
    """
    if kind not in ("gt", "pred"):
        raise ValueError(f"kind must be 'gt' or 'pred', not {kind!r}")
    path = Path(path)
    doc = read_json(path)
    if kind == "gt":
        check_coco_gt(doc, source=str(path))
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("annotations"), list):
        doc = doc["annotations"]
    check_coco_predictions(doc, source=str(path))
    return doc


def _is_id(v) -> bool:
    return isinstance(v, (int, str)) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_bbox(bbox, where: str) -> None:
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
        raise EdgekitError(f"{where} has bbox {str(bbox)[:60]}: it must be 4 finite numbers "
                           "[x, y, width, height] in pixels")
    if bbox[2] < 0 or bbox[3] < 0:
        raise EdgekitError(f"{where} has bbox {bbox} with a negative width or height: "
                           "COCO boxes are [x, y, width, height], not corners")


def check_coco_gt(gt: Any, source: str = "ground truth") -> None:
    """Check a COCO ground-truth object; raise one clear EdgekitError on the first problem.

    Example:
        >>> check_coco_gt({"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1, "name": "a"}]})
        >>> check_coco_gt([])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: ground truth is a list, not COCO ground truth: ... (a results list goes to --pred)
    """
    if not isinstance(gt, dict):
        hint = " (a results list goes to --pred)" if isinstance(gt, list) else ""
        raise EdgekitError(f"{source} is a {type(gt).__name__}, not COCO ground truth: it must be an object "
                           f"with 'images', 'annotations' and 'categories'{hint}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise EdgekitError(f"{source} has no '{key}' list: COCO ground truth needs 'images', "
                               "'annotations' and 'categories' lists")
    if not gt["categories"]:
        raise EdgekitError(f"{source} has an empty 'categories' list: list the dataset's categories with id and name")
    for i, c in enumerate(gt["categories"]):
        if not isinstance(c, dict) or not _is_id(c.get("id")) or "name" not in c:
            raise EdgekitError(f"{source}: categories[{i}] needs an integer 'id' and a 'name'")
    for i, im in enumerate(gt["images"]):
        if not isinstance(im, dict) or not _is_id(im.get("id")):
            raise EdgekitError(f"{source}: images[{i}] needs an integer 'id'")
    image_ids = {im["id"] for im in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    for i, a in enumerate(gt["annotations"]):
        where = f"{source}: annotations[{i}]"
        if not isinstance(a, dict):
            raise EdgekitError(f"{where} is a {type(a).__name__}: each annotation must be an object")
        for key in ("image_id", "category_id", "bbox"):
            if key not in a:
                raise EdgekitError(f"{where} has no '{key}': each annotation needs image_id, category_id and bbox")
        if not _is_id(a["image_id"]) or a["image_id"] not in image_ids:
            raise EdgekitError(f"{where} refers to image_id {a['image_id']!r}, which is not in 'images': "
                               "add the image or drop the annotation")
        if not _is_id(a["category_id"]) or a["category_id"] not in cat_ids:
            raise EdgekitError(f"{where} refers to category_id {a['category_id']!r}, which is not in 'categories': "
                               "add the category or drop the annotation")
        _check_bbox(a["bbox"], where)
        if "area" in a and not (_is_num(a["area"]) and a["area"] >= 0):
            raise EdgekitError(f"{where} has area {a['area']!r}: it must be a finite number >= 0 (or left out)")
        if a.get("iscrowd", 0) not in (0, 1):
            raise EdgekitError(f"{where} has iscrowd {a['iscrowd']!r}: it must be 0 or 1")


def check_coco_predictions(preds: Any, gt: dict | None = None, source: str = "predictions") -> None:
    """Check a COCO results list (and, given ``gt``, that its image and category ids exist there).

    Example:
        >>> check_coco_predictions([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])
        >>> check_coco_predictions({"images": []})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: predictions is an object, not a COCO results list: ... (is this a ground-truth file?)
    """
    if not isinstance(preds, list):
        what = "an object" if isinstance(preds, dict) else f"a {type(preds).__name__}"
        hint = " (is this a ground-truth file?)" if isinstance(preds, dict) else ""
        raise EdgekitError(f"{source} is {what}, not a COCO results list: give a JSON list of "
                           f"{{image_id, category_id, bbox, score}}{hint}")
    image_ids = {im["id"] for im in gt["images"]} if gt is not None else None
    cat_ids = _class_names(gt["categories"])[0] if gt is not None else None
    cat_set = set(cat_ids or ())
    for i, p in enumerate(preds):
        where = f"{source}: entry {i}"
        if not isinstance(p, dict):
            raise EdgekitError(f"{where} is a {type(p).__name__}: each detection must be an object "
                               "{image_id, category_id, bbox, score}")
        for key in _PRED_KEYS:
            if key not in p:
                hint = " (is this a ground-truth file?)" if key == "score" else ""
                raise EdgekitError(f"{where} has no '{key}': each detection needs image_id, category_id, "
                                   f"bbox [x, y, width, height] and score{hint}")
        _check_bbox(p["bbox"], where)
        if not _is_num(p["score"]):
            raise EdgekitError(f"{where} has score {p['score']!r}: it must be a finite number")
        for key in ("image_id", "category_id"):
            if not _is_id(p[key]):
                raise EdgekitError(f"{where} has {key} {p[key]!r}: it must be an integer id from the ground truth")
        if image_ids is not None and p["image_id"] not in image_ids:
            raise EdgekitError(f"{where} refers to image_id {p['image_id']!r}, which is not among the ground truth's "
                               f"{len(image_ids)} images: evaluate with the ground truth these predictions were made for")
        if gt is not None and p["category_id"] not in cat_set:
            shown = ", ".join(map(str, cat_ids[:20])) + (", ..." if len(cat_ids) > 20 else "")
            raise EdgekitError(f"{where} has category_id {p['category_id']!r}, which is not a ground-truth category "
                               f"({shown}): write the dataset's category ids, not the model's class indices")


def _class_names(categories: Sequence[dict]) -> tuple[list, list[str]]:
    """Category ids sorted (pycocotools' order) and unique display names for them."""
    cats = sorted(categories, key=lambda c: (isinstance(c["id"], str), c["id"]))
    names = [str(c["name"]) for c in cats]
    dup = {n for n in names if names.count(n) > 1}
    names = [f"{n} (id {c['id']})" if n in dup else n for n, c in zip(names, cats)]
    return [c["id"] for c in cats], names


def _split(img_idx: np.ndarray, n_images: int) -> list[np.ndarray]:
    """Indices of the entries of each image, keeping the input order within an image."""
    order = np.argsort(img_idx, kind="stable")
    bounds = np.searchsorted(img_idx[order], np.arange(n_images + 1))
    return [order[bounds[i]:bounds[i + 1]] for i in range(n_images)]


def _xywh(entries: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(xyxy, w*h) float64 arrays; corners as x + w like pycocotools, so IoUs are bit-equal."""
    b = np.array([e["bbox"] for e in entries], dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1), b[:, 2] * b[:, 3]


def evaluate_coco(gt: dict, preds: list[dict], max_dets: int = 100, areas: bool = False,
                  use_ignore_flag: bool = False) -> MapResult:
    """COCO box mAP of a results list against COCO ground truth, as pycocotools' COCOeval.

    Every ground-truth image is evaluated, with or without detections. Class names in the
    result are the categories' names (in increasing id order; a name used twice gets
    " (id N)" appended).

    Args:
        gt: COCO ground truth (``images``, ``annotations``, ``categories``). An annotation's
            ``area`` is used for the area ranges when present, else w * h; ``iscrowd``
            defaults to 0.
        preds: COCO results: dicts with ``image_id``, ``category_id``, ``bbox``
            [x, y, w, h] and ``score``.
        max_dets: detections kept per image and category (COCO: 100).
        areas: also compute the small/medium/large figures.
        use_ignore_flag: also ignore annotations with ``"ignore": 1``. Off by default, as
            pycocotools overwrites that key with ``iscrowd``.

    Returns:
        A :class:`~edgekit.metrics.coco_map.MapResult`.

    Raises:
        EdgekitError: malformed input, or detections naming an image or category id that
            the ground truth does not have.

    Example:
        >>> gt = {"images": [{"id": 7}], "categories": [{"id": 3, "name": "car"}],
        ...       "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [0, 0, 20, 10]}]}
        >>> r = evaluate_coco(gt, [{"image_id": 7, "category_id": 3, "bbox": [0, 0, 20, 10], "score": 0.5}])
        >>> round(r.map50_95, 6)  # precision is tp / (tp + fp + eps), as in pycocotools
        1.0
    """
    check_coco_gt(gt)
    check_coco_predictions(preds, gt)
    cat_ids, names = _class_names(gt["categories"])
    cat_index = {c: k for k, c in enumerate(cat_ids)}
    img_ids = sorted({im["id"] for im in gt["images"]}, key=lambda i: (isinstance(i, str), i))
    img_index = {i: k for k, i in enumerate(img_ids)}
    anns = gt["annotations"]
    g_xyxy, g_box_area = _xywh(anns)
    g_area = np.array([a.get("area", ba) for a, ba in zip(anns, g_box_area.tolist())], dtype=np.float64)
    g_crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
    g_ignore = np.array([use_ignore_flag and bool(a.get("ignore", 0)) for a in anns], dtype=bool)
    g_cls = np.array([cat_index[a["category_id"]] for a in anns], dtype=np.int64)
    g_img = np.array([img_index[a["image_id"]] for a in anns], dtype=np.int64)
    d_xyxy, d_area = _xywh(preds)
    d_score = np.array([p["score"] for p in preds], dtype=np.float64)
    d_cls = np.array([cat_index[p["category_id"]] for p in preds], dtype=np.int64)
    d_img = np.array([img_index[p["image_id"]] for p in preds], dtype=np.int64)
    images = [
        _Image(gt_xyxy=g_xyxy[gi], gt_box_area=g_box_area[gi], gt_area=g_area[gi], gt_crowd=g_crowd[gi],
               gt_ignore=g_ignore[gi], gt_cls=g_cls[gi], dt_xyxy=d_xyxy[di], dt_area=d_area[di],
               dt_score=d_score[di], dt_cls=d_cls[di])
        for gi, di in zip(_split(g_img, len(img_ids)), _split(d_img, len(img_ids)))
    ]
    return _evaluate_images(images, names, max_dets=max_dets, areas=areas)
