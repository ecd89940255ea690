"""COCO-style box mAP in numpy, faithful to pycocotools' ``COCOeval`` (``iouType="bbox"``).

One implementation measures the torch model and every exported artifact, so the numbers
are comparable; the test suite checks every figure against pycocotools to within 1e-4.

What "faithful" means here, rule by rule, as in pycocotools:

- IoU thresholds 0.50:0.05:0.95; precision read at 101 recall points (0:0.01:1) from the
  precision envelope (precision made non-increasing from the right).
- At most ``max_dets`` detections per image *and class*, the highest scores, ties kept in
  input order (a stable sort on -score, like pycocotools' mergesort).
- Greedy matching by descending score: each detection takes the unmatched GT with the
  highest IoU >= the threshold (an IoU exactly equal to the threshold matches; on equal
  IoUs the later GT wins); a GT that counts is preferred over an ignored one.
- Crowd GT (``iscrowd``) is ignored, its overlap is intersection over the *detection's*
  area, and it may absorb any number of detections. GT flagged ``ignore`` is ignored too.
- Area ranges all / small / medium / large split at 32**2 and 96**2 pixels (bounds
  inclusive), using the GT's ``area`` when given, else its box area; a detection that
  matches nothing and lies outside the range is not counted.
- A class with no GT that counts (in the area range) has no AP (pycocotools' -1): it
  is left out of every mean and reported as ``None``.

A pycocotools quirk not reproduced: a match with a GT whose annotation id is 0 is
counted as a miss there (it stores matches as ids); here it is a match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.boxes import box_intersection

__all__ = ["MapResult", "GroundTruth", "Predictions", "evaluate_detections", "IOU_THRESHOLDS",
           "RECALL_POINTS", "AREA_RANGES"]

# np.linspace, not arange, so the thresholds are the very floats pycocotools compares with
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2),
               "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e5 ** 2)}
_MATCH_THR = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)


@dataclass
class GroundTruth:
    """Ground truth of one image.

    Attributes:
        boxes: (N, 4) xyxy pixels.
        classes: (N,) class indices 0..C-1.
        iscrowd: (N,) crowd flags (ignored; matched by intersection over detection area,
            any number of times), or None for none.
        ignore: (N,) boxes to ignore (neither a hit nor a miss; e.g. VOC "difficult").
        area: (N,) area used for the small/medium/large split (e.g. a mask area), or
            None for the box area.

    Plain dicts with the same keys, or any object with these attributes, work as well.
    """

    boxes: np.ndarray
    classes: np.ndarray
    iscrowd: np.ndarray | None = None
    ignore: np.ndarray | None = None
    area: np.ndarray | None = None


@dataclass
class Predictions:
    """Detections of one image: ``boxes`` (M, 4) xyxy pixels, ``scores`` (M,), ``classes`` (M,).

    Plain dicts with the same keys, or any object with these attributes (such as the
    runtime's detections), work as well.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


@dataclass
class MapResult:
    """COCO box metrics. Values are in [0, 1]; ``None`` where undefined (no GT that counts).

    Attributes:
        map50_95: AP averaged over IoU 0.50:0.05:0.95 and over classes (COCO's "mAP").
        map50: AP at IoU 0.50 (Pascal VOC-like, 101-point).
        map75: AP at IoU 0.75.
        mar: average recall at ``max_dets`` detections, over IoU 0.50:0.95 (COCO's AR@100).
        per_class: class name -> AP50:95; ``None`` for a class without GT (kept so that
            every class of the model is listed; such classes are not in the means).
        per_class_map50: class name -> AP50, ``None`` likewise.
        num_gt: class name -> number of GT boxes that count (not crowd, not ignored).
        num_images: images evaluated (every GT image, with or without detections).
        num_detections: detections given (before the ``max_dets`` cut).
        max_dets: detections kept per image and class.
        map_small, map_medium, map_large, mar_small, mar_medium, mar_large: AP50:95 and
            AR by GT area; ``None`` unless computed with ``areas=True``, or where no GT
            falls in the range.
        precision: (10, 101, C, A) precision at each IoU threshold, recall point, class
            and area range (all, then small/medium/large when computed); -1 where undefined.
        recall: (10, C, A) recall reached, -1 where undefined.
    """

    map50_95: float | None
    map50: float | None
    map75: float | None
    mar: float | None
    per_class: dict[str, float | None]
    per_class_map50: dict[str, float | None]
    num_gt: dict[str, int]
    num_images: int
    num_detections: int
    max_dets: int = 100
    map_small: float | None = None
    map_medium: float | None = None
    map_large: float | None = None
    mar_small: float | None = None
    mar_medium: float | None = None
    mar_large: float | None = None
    precision: np.ndarray | None = field(default=None, repr=False, compare=False)
    recall: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (no numpy types, no tables; area keys only when computed).

        Example:
            >>> r = evaluate_detections([{"boxes": [[0, 0, 10, 10]], "classes": [0]}],
            ...     [{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "classes": [0]}], ["cat"])
            >>> {k: round(v, 6) for k, v in r.to_dict()["per_class"].items()}
            {'cat': 1.0}
        """
        out: dict[str, Any] = {k: getattr(self, k) for k in ("map50_95", "map50", "map75", "mar")}
        if self.precision is not None and self.precision.shape[-1] == len(AREA_RANGES):
            for k in ("map_small", "map_medium", "map_large", "mar_small", "mar_medium", "mar_large"):
                out[k] = getattr(self, k)
        out.update(per_class=dict(self.per_class), per_class_map50=dict(self.per_class_map50),
                   num_gt={k: int(v) for k, v in self.num_gt.items()}, num_images=int(self.num_images),
                   num_detections=int(self.num_detections), max_dets=int(self.max_dets))
        return out


# ---------------------------------------------------------------------------- internals

@dataclass
class _Image:
    """One image in the canonical form the core evaluates (float64 arrays)."""

    gt_xyxy: np.ndarray      # (N, 4)
    gt_box_area: np.ndarray  # (N,) area entering the IoU union
    gt_area: np.ndarray      # (N,) area for the area ranges
    gt_crowd: np.ndarray     # (N,) bool
    gt_ignore: np.ndarray    # (N,) bool
    gt_cls: np.ndarray       # (N,) int
    dt_xyxy: np.ndarray      # (M, 4)
    dt_area: np.ndarray      # (M,)
    dt_score: np.ndarray     # (M,)
    dt_cls: np.ndarray       # (M,) int


def _iou(dt_xyxy, dt_area, gt_xyxy, gt_area, crowd) -> np.ndarray:
    """(D, G) IoU, or intersection over detection area for crowd GT, as pycocotools' bbIou.

    The areas are passed in (not recomputed from corners) so that COCO input gives the same
    floats as pycocotools, which multiplies the given widths and heights.
    """
    inter = box_intersection(dt_xyxy, gt_xyxy)
    union = np.where(crowd[None, :], dt_area[:, None], dt_area[:, None] + gt_area[None, :] - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def _evaluate_image(img: _Image, gsel, dsel, ranges: np.ndarray, max_dets: int):
    """Match one image's detections of one class; returns (scores, matched, dt_ignored, n_gt).

    ``matched`` and ``dt_ignored`` are (A, T, D) over area ranges and IoU thresholds; n_gt
    is (A,) the GT that count per range.
    """
    order = np.argsort(-img.dt_score[dsel], kind="mergesort")[:max_dets]
    d_xyxy, d_area, d_score = img.dt_xyxy[dsel][order], img.dt_area[dsel][order], img.dt_score[dsel][order]
    g_area = img.gt_area[gsel]
    crowd = img.gt_crowd[gsel]
    lo, hi = ranges[:, :1], ranges[:, 1:]
    gt_ig = (crowd | img.gt_ignore[gsel])[None, :] | (g_area[None, :] < lo) | (g_area[None, :] > hi)  # (A, G)
    A, T, D, G = len(ranges), len(IOU_THRESHOLDS), len(d_score), len(g_area)
    matched = np.zeros((A, T, D), dtype=bool)
    dt_ig = np.zeros((A, T, D), dtype=bool)
    if D and G:
        ious = _iou(d_xyxy, d_area, img.gt_xyxy[gsel], img.gt_box_area[gsel], crowd)
        ok = ious[:, None, :] >= _MATCH_THR[None, :, None]          # (D, T, G)
        any_ok = ok.any(axis=(1, 2))
        taken = np.zeros((A, T, G), dtype=bool)
        ig3 = np.broadcast_to(gt_ig[:, None, :], (A, T, G))
        rev = slice(None, None, -1)
        for d in np.flatnonzero(any_ok):
            cand = ok[d][None] & ~(taken & ~crowd)                  # crowd GT stays available
            # pycocotools walks GT with the counted ones first and keeps the best IoU (>=, so
            # the last of equal IoUs); it only falls back to ignored GT when no counted GT fits
            has, m = None, None
            for group in (~ig3, ig3):
                v = np.where(cand & group, ious[d], -1.0)
                idx = G - 1 - np.argmax(v[..., rev], axis=-1)        # last maximum
                hit = np.take_along_axis(v, idx[..., None], -1)[..., 0] >= 0
                if has is None:
                    has, m = hit, idx
                else:
                    m = np.where(has, m, idx)
                    has = has | hit
            matched[:, :, d] = has
            dt_ig[:, :, d] = has & np.take_along_axis(gt_ig, m, axis=1)
            a_i, t_i = np.nonzero(has)
            taken[a_i, t_i, m[a_i, t_i]] = True
    d_out = (d_area[None, :] < lo) | (d_area[None, :] > hi)          # (A, D)
    dt_ig |= ~matched & d_out[:, None, :]
    return d_score, matched, dt_ig, (~gt_ig).sum(axis=1)


def image_parts(img: _Image, ranges: np.ndarray, max_dets: int) -> dict:
    """{class id: matched part} of one image, for every class in its ground truth or detections."""
    return {c: _evaluate_image(img, img.gt_cls == c, img.dt_cls == c, ranges, max_dets)
            for c in np.union1d(img.gt_cls, img.dt_cls).tolist()}


def accumulate(parts, A: int):
    """Precision (T, R, A) and recall (T, A) of one class from its per-image parts.

    Public with :func:`image_parts` and :func:`canonical_images` so that
    :mod:`edgekit.metrics.bootstrap` can match each image once and re-accumulate resamples.
    """
    T, R = len(IOU_THRESHOLDS), len(RECALL_POINTS)
    precision = -np.ones((T, R, A))
    recall = -np.ones((T, A))
    if not parts:
        return precision, recall
    scores = np.concatenate([p[0] for p in parts])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([p[1] for p in parts], axis=2)[:, :, order]
    ignored = np.concatenate([p[2] for p in parts], axis=2)[:, :, order]
    n_gt = np.sum([p[3] for p in parts], axis=0)
    tp = np.cumsum(matched & ~ignored, axis=2).astype(float)
    fp = np.cumsum(~matched & ~ignored, axis=2).astype(float)
    nd = tp.shape[2]
    for a in range(A):
        if n_gt[a] == 0:
            continue
        rc = tp[a] / n_gt[a]
        pr = tp[a] / (fp[a] + tp[a] + np.spacing(1))
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]    # precision envelope
        recall[:, a] = rc[:, -1] if nd else 0.0
        for t in range(T):
            idx = np.searchsorted(rc[t], RECALL_POINTS, side="left")
            q = np.zeros(R)
            ok = idx < nd
            q[ok] = pr[t, idx[ok]]
            precision[t, :, a] = q
    return precision, recall


def _mean(x: np.ndarray) -> float | None:
    x = x[x > -1]
    return float(np.mean(x)) if x.size else None


def _evaluate_images(images: Sequence[_Image], class_names: Sequence[str], max_dets: int = 100,
                    areas: bool = False) -> MapResult:
    """Core: evaluate images already in canonical form (see ``evaluate_detections``)."""
    if int(max_dets) < 1:
        raise EdgekitError(f"max_dets is {max_dets}: it must be at least 1 (COCO uses 100)")
    max_dets = int(max_dets)
    C = len(class_names)
    labels = list(AREA_RANGES) if areas else ["all"]
    ranges = np.array([AREA_RANGES[k] for k in labels], dtype=np.float64)
    A = len(ranges)
    parts: list[list] = [[] for _ in range(C)]
    for img in images:
        for c, part in image_parts(img, ranges, max_dets).items():
            parts[c].append(part)
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_POINTS), C, A))
    recall = -np.ones((len(IOU_THRESHOLDS), C, A))
    n_gt = np.zeros(C, dtype=np.int64)
    for c in range(C):
        precision[:, :, c], recall[:, c] = accumulate(parts[c], A)
        n_gt[c] = sum(int(p[3][0]) for p in parts[c])
    t75 = int(np.flatnonzero(IOU_THRESHOLDS == 0.75)[0])
    res = MapResult(
        map50_95=_mean(precision[..., 0]), map50=_mean(precision[0, ..., 0]),
        map75=_mean(precision[t75, ..., 0]), mar=_mean(recall[..., 0]),
        per_class={n: _mean(precision[:, :, c, 0]) for c, n in enumerate(class_names)},
        per_class_map50={n: _mean(precision[0, :, c, 0]) for c, n in enumerate(class_names)},
        num_gt={n: int(n_gt[c]) for c, n in enumerate(class_names)},
        num_images=len(images), num_detections=int(sum(len(i.dt_score) for i in images)),
        max_dets=max_dets, precision=precision, recall=recall)
    if areas:
        for a, label in enumerate(labels[1:], start=1):
            setattr(res, f"map_{label}", _mean(precision[..., a]))
            setattr(res, f"mar_{label}", _mean(recall[..., a]))
    return res


def _get(obj, key: str, default=None):
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _array(obj, key: str, n: int | None, where: str, dtype=np.float64, required=True) -> np.ndarray | None:
    value = _get(obj, key)
    if value is None:
        if required:
            raise EdgekitError(f"{where} has no '{key}': give it as an array (empty if there are none)")
        return None
    if hasattr(value, "detach"):                   # a torch tensor, possibly on the GPU
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=dtype)
    if key == "boxes":
        arr = arr.reshape(-1, 4) if arr.size else np.zeros((0, 4), dtype)
    else:
        arr = arr.reshape(-1)
    if n is not None and len(arr) != n:
        raise EdgekitError(f"{where}: '{key}' has {len(arr)} entries but there are {n} boxes; give one per box")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise EdgekitError(f"{where}: '{key}' has NaN or infinite values; remove those boxes")
    return arr


def _checked_boxes(obj, where: str) -> np.ndarray:
    boxes = _array(obj, "boxes", None, where)
    if (boxes[:, 2:] < boxes[:, :2]).any():
        raise EdgekitError(f"{where}: a box has x2 < x1 or y2 < y1; boxes must be xyxy pixels")
    return boxes


def _classes(obj, n: int, num_classes: int, where: str) -> np.ndarray:
    cls = _array(obj, "classes", n, where, dtype=np.float64)
    if len(cls) and ((cls != np.round(cls)).any() or cls.min() < 0 or cls.max() >= num_classes):
        bad = cls[(cls != np.round(cls)) | (cls < 0) | (cls >= num_classes)][0]
        raise EdgekitError(f"{where}: class {bad:g} is not in 0..{num_classes - 1}; "
                           f"pass the model's full class_names ({num_classes} given)")
    return cls.astype(np.int64)


def evaluate_detections(gts: Sequence[Any], preds: Sequence[Any], class_names: Sequence[str],
                        max_dets: int = 100, areas: bool = False) -> MapResult:
    """COCO mAP of detections against ground truth, image by image, in memory.

    Args:
        gts: one :class:`GroundTruth` (or dict/object with the same fields) per image:
            ``boxes`` (N, 4) xyxy pixels, ``classes`` (N,) in 0..C-1, optional ``iscrowd``,
            ``ignore`` and ``area``. Images without boxes must be listed too (they count
            every detection on them as a false positive).
        preds: one :class:`Predictions` (or dict/object) per image, in the order of ``gts``:
            ``boxes`` (M, 4) xyxy, ``scores`` (M,), ``classes`` (M,).
        class_names: the model's class names; index = class id. Names must be unique.
        max_dets: detections kept per image and class, highest scores first (COCO: 100).
        areas: also compute the small/medium/large figures.

    Returns:
        A :class:`MapResult`.

    Raises:
        EdgekitError: mismatched lengths, classes out of range, non-finite or inverted boxes.

    Example:
        >>> gts = [{"boxes": [[0, 0, 10, 10], [20, 20, 40, 40]], "classes": [0, 1]}]
        >>> preds = [{"boxes": [[0, 0, 10, 9]], "scores": [0.8], "classes": [0]}]
        >>> r = evaluate_detections(gts, preds, ["cat", "dog"])
        >>> round(r.map50, 3), {k: round(v, 3) for k, v in r.per_class_map50.items()}
        (0.5, {'cat': 1.0, 'dog': 0.0})
    """
    names = [str(n) for n in class_names]
    return _evaluate_images(canonical_images(gts, preds, names), names, max_dets=max_dets, areas=areas)


def canonical_images(gts: Sequence[Any], preds: Sequence[Any], class_names: Sequence[str]) -> list[_Image]:
    """Check and convert ground truth and predictions (see :func:`evaluate_detections`) image by image.

    Shared by :func:`evaluate_detections` and :mod:`edgekit.metrics.bootstrap`, which match
    each image once and then resample images.
    """
    if len(gts) != len(preds):
        raise EdgekitError(f"{len(gts)} ground-truth images but {len(preds)} prediction entries: "
                           "give one predictions entry per image, in the same order (empty for none)")
    names = [str(n) for n in class_names]
    if len(set(names)) != len(names):
        raise EdgekitError("class_names has duplicates: give every class a distinct name")
    images = []
    for i, (g, p) in enumerate(zip(gts, preds)):
        gb = _checked_boxes(g, f"ground truth of image {i}")
        n = len(gb)
        where = f"ground truth of image {i}"
        gcls = _classes(g, n, len(names), where)
        crowd = _array(g, "iscrowd", n, where, required=False)
        ignore = _array(g, "ignore", n, where, required=False)
        box_area = (gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1])
        area = _array(g, "area", n, where, required=False)
        db = _checked_boxes(p, f"predictions of image {i}")
        where = f"predictions of image {i}"
        images.append(_Image(
            gt_xyxy=gb, gt_box_area=box_area, gt_area=box_area if area is None else area,
            gt_crowd=np.zeros(n, bool) if crowd is None else crowd.astype(bool),
            gt_ignore=np.zeros(n, bool) if ignore is None else ignore.astype(bool), gt_cls=gcls,
            dt_xyxy=db, dt_area=(db[:, 2] - db[:, 0]) * (db[:, 3] - db[:, 1]),
            dt_score=_array(p, "scores", len(db), where), dt_cls=_classes(p, len(db), len(names), where)))
    return images
