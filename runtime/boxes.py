"""Box conversions, IoU and class-aware NMS in numpy (device side: numpy only).

Conventions: ``xyxy`` is (x1, y1, x2, y2) corners; ``xywh`` is COCO's (x, y, w, h) with
(x, y) the top-left corner; ``cxcywh`` is (centre x, centre y, w, h) as in YOLO labels.
All functions take ``(..., 4)`` arrays and return new arrays of the same leading shape.
"""

from __future__ import annotations

import math

import numpy as np


def xyxy_to_xywh(b: np.ndarray) -> np.ndarray:
    """Corners to COCO (x, y, w, h).

    Example:
        >>> xyxy_to_xywh(np.array([[10., 20., 30., 60.]])).tolist()
        [[10.0, 20.0, 20.0, 40.0]]
    """
    b = np.asarray(b, dtype=np.float64 if np.asarray(b).dtype == np.float64 else np.float32)
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    """COCO (x, y, w, h) to corners.

    Example:
        >>> xywh_to_xyxy(np.array([[10., 20., 20., 40.]])).tolist()
        [[10.0, 20.0, 30.0, 60.0]]
    """
    b = np.asarray(b, dtype=np.float64 if np.asarray(b).dtype == np.float64 else np.float32)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def xyxy_to_cxcywh(b: np.ndarray) -> np.ndarray:
    """Corners to (centre x, centre y, w, h).

    Example:
        >>> xyxy_to_cxcywh(np.array([[10., 20., 30., 60.]])).tolist()
        [[20.0, 40.0, 20.0, 40.0]]
    """
    b = np.asarray(b, dtype=np.float64 if np.asarray(b).dtype == np.float64 else np.float32)
    return np.concatenate([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], axis=-1)


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    """(centre x, centre y, w, h) to corners.

    Example:
        >>> cxcywh_to_xyxy(np.array([[20., 40., 20., 40.]])).tolist()
        [[10.0, 20.0, 30.0, 60.0]]
    """
    b = np.asarray(b, dtype=np.float64 if np.asarray(b).dtype == np.float64 else np.float32)
    half = b[..., 2:] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def box_area(b: np.ndarray) -> np.ndarray:
    """Area of xyxy boxes (0 for inverted boxes).

    Example:
        >>> box_area(np.array([[0, 0, 2, 3]])).tolist()
        [6]
    """
    b = np.asarray(b)
    # np.maximum(v, 0) is np.clip(v, 0, None)'s values (NaN stays NaN) without clip's per-call cost
    return np.maximum(b[..., 2] - b[..., 0], 0) * np.maximum(b[..., 3] - b[..., 1], 0)


def box_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas of xyxy boxes ``a`` (N, 4) and ``b`` (M, 4) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    # coordinate by coordinate: numpy's inner loops then run along the M boxes, not along 2 values
    w = np.minimum(a[:, 2, None], b[:, 2]) - np.maximum(a[:, 0, None], b[:, 0])
    h = np.minimum(a[:, 3, None], b[:, 3]) - np.maximum(a[:, 1, None], b[:, 1])
    return np.maximum(w, 0) * np.maximum(h, 0)


def box_iou(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Pairwise IoU of xyxy boxes ``a`` (N, 4) and ``b`` (M, 4) -> (N, M) float64.

    Example:
        >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6]])).round(4).tolist()
        [[0.3333, 0.0]]
    """
    inter = box_intersection(a, b)
    union = box_area(np.asarray(a, np.float64))[:, None] + box_area(np.asarray(b, np.float64))[None, :] - inter
    return inter / np.maximum(union, eps)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None = None,
    iou_threshold: float = 0.45,
    max_det: int = 300,
    max_candidates: int = 30000,
) -> np.ndarray:
    """Greedy non-maximum suppression, per class when ``classes`` is given.

    Boxes of different classes never suppress each other: each class's boxes are shifted by
    an offset larger than any coordinate, so one pass over all boxes is class-aware. A handful
    of boxes (a video frame's usual case) goes through plain Python floats; more go through
    OpenCV DNN's ``NMSBoxes`` (C++, the NMS of OpenCV's own detectors), checked to be exact
    (:func:`_greedy_in_opencv`; float32 boxes and scores, a detector's, reach it unsorted through
    :func:`nms_corners_in_opencv`); non-finite or empty boxes, IoUs within 1e-5 of the threshold
    and a missing OpenCV take a numpy loop over the kept boxes. Every path keeps the boxes that
    float64 IoUs compared with the threshold keep, in the same order.

    Args:
        boxes: (N, 4) xyxy.
        scores: (N,) confidences; higher first.
        classes: (N,) integer class ids, or None for class-agnostic NMS.
        iou_threshold: a box whose IoU with a kept box of its class is above this is dropped.
        max_det: at most this many indices are returned.
        max_candidates: only the top-scoring candidates are considered (bounds the work).

    Returns:
        Indices into ``boxes`` of the kept boxes, by descending score.

    Example:
        >>> b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], float)
        >>> nms(b, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1])).tolist()
        [0, 2]
    """
    # a detector's float32 boxes are not converted before the Python path: its tolist() gives the same
    # float64 values the conversion would; the numpy paths below compute in float64
    boxes, scores = _floats(boxes).reshape(-1, 4), _floats(scores).reshape(-1)
    if boxes.shape[0] != scores.shape[0]:
        raise ValueError(f"nms: {boxes.shape[0]} boxes but {scores.shape[0]} scores")
    if boxes.shape[0] == 0 or max_det < 1:
        return np.zeros(0, dtype=np.int64)
    n = boxes.shape[0]
    if n <= _PYTHON_NMS and max_candidates >= n:
        keep = _greedy_in_python(boxes, scores, classes, iou_threshold, max_det)
        if keep is not None:
            return keep
    if boxes.dtype == np.float32 and scores.dtype == np.float32 and max_candidates >= n:
        # a detector's float32 boxes and scores, unsorted (OpenCV's stable sort by float32 score is the order
        # below): the decoder's pass, with this call's largest coordinate as the bound
        cls = np.zeros(n, np.int64) if classes is None else np.asarray(classes).reshape(-1)
        keep = nms_corners_in_opencv(boxes[:, :2], boxes[:, 2:], scores, cls, float(np.abs(boxes).max()),
                                     int(np.abs(cls).max()) + 1, iou_threshold, max_det)
        if keep is not None:
            return keep
    boxes, scores = boxes.astype(np.float64, copy=False), scores.astype(np.float64, copy=False)
    order = np.argsort(-scores, kind="stable")[:max_candidates]
    b = _class_shifted(boxes[order], None if classes is None else np.asarray(classes).reshape(-1)[order])
    # the scores handed to OpenCV are the ranks n, ..., 1: its stable sort by them is the order by the float64
    # scores, whatever float32 would round together
    keep = _greedy_in_opencv(b, list(range(len(b), 0, -1)), iou_threshold, max_det)
    if keep is None:
        # one contiguous array per coordinate: numpy's inner loops then run along the boxes, not along 2 values
        x1, y1, x2, y2 = (np.ascontiguousarray(v) for v in b.T)
        keep = _greedy_per_kept_box(x1, y1, x2, y2, box_area(b), iou_threshold, max_det)
    return order[np.asarray(keep, dtype=np.int64)]


def _class_shifted(b: np.ndarray, classes) -> np.ndarray:
    """float64 boxes ``b`` (a copy of the caller's, changed in place) with each class's boxes shifted by an offset
    larger than any coordinate: boxes of two classes then never overlap, and one greedy pass is class-aware."""
    if classes is not None:
        b += (np.asarray(classes).reshape(-1) * ((np.abs(b).max() + 1.0) * 2.0))[:, None]
    return b


# up to this many candidates NMS runs on Python floats (a video frame's usual handful: the numpy paths' fixed cost of
# some forty calls is most of their time there, the more so right after inference has evicted numpy from the caches)
_PYTHON_NMS = 16
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # exactly float64 in Python, as nms() converts them


def _floats(values) -> np.ndarray:
    """A float32/float64 array as it is, anything else as float64."""
    return values if type(values) is np.ndarray and values.dtype in _FLOATS else np.asarray(values, np.float64)


def _greedy_in_python(boxes, scores, classes, iou_threshold: float, max_det: int) -> np.ndarray | None:
    """:func:`nms` of a few boxes in plain Python: the same float64 operations (IEEE, correctly rounded in both),
    so the same boxes are kept, in the same order; None for non-finite input (NaN orders and compares
    differently in Python), which the numpy path then handles.

    Each box is tested against the kept boxes of its own class only, and a pair whose boxes do not overlap in x
    (or y) is passed after one subtraction: with the class shift of :func:`nms` the boxes of two classes never
    overlap, and a pair that does not overlap has an IoU of 0, under any threshold >= 0 (the usual case; a
    negative threshold tests every pair, as the numpy paths do).
    """
    if max_det < 1:
        return np.zeros(0, dtype=np.int64)
    b, s = boxes.tolist(), scores.tolist()
    if not math.isfinite(sum(s) + sum(map(sum, b))):
        return None
    n = len(s)
    order = sorted(range(n), key=s.__getitem__, reverse=True)  # stable, as argsort(-scores, kind="stable")
    if classes is not None:
        cls = np.asarray(classes).reshape(-1).tolist()
        offset = (max(max(max(row), -min(row)) for row in b) + 1.0) * 2.0  # np.abs(b).max(), as nms() shifts classes
        b = [[v + shift for v in row] for row, shift in zip(b, [float(c) * offset for c in cls])]
    else:
        cls = [0] * n
    skip = iou_threshold >= 0  # a pair without overlap (IoU 0) never passes the threshold
    kept: dict = {}  # class -> its kept boxes (x1, y1, x2, y2, area), best first
    keep: list[int] = []
    for i in order:
        x1, y1, x2, y2 = b[i]
        area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
        suppressed = False
        for kx1, ky1, kx2, ky2, karea in kept.get(cls[i], ()) if skip else [k for c in kept.values() for k in c]:
            w = min(kx2, x2) - max(kx1, x1)  # _pair_iou's operations, one pair at a time
            if skip and not w > 0.0:
                continue
            h = min(ky2, y2) - max(ky1, y1)
            if skip and not h > 0.0:
                continue
            inter = max(w, 0.0) * max(h, 0.0)
            if inter / max(karea + area - inter, 1e-12) > iou_threshold:
                suppressed = True
                break
        if suppressed:
            continue
        kept.setdefault(cls[i], []).append((x1, y1, x2, y2, area))
        keep.append(i)
        if len(keep) >= max_det:
            break
    return np.array(keep, dtype=np.int64)


def _greedy_in_opencv(b: np.ndarray, scores: list, iou_threshold: float, max_det: int) -> np.ndarray | None:
    """:func:`nms`'s greedy pass on boxes ``b`` (class-shifted) through OpenCV DNN's ``NMSBoxes``, or
    None where OpenCV cannot give :func:`nms`'s float64 answer: OpenCV missing, a non-finite box, an empty one
    (OpenCV calls two empty boxes identical) or one too thin for the coordinates' rounding, or an IoU too near
    the threshold.

    OpenCV rounds each IoU to float32 before comparing it. So it runs twice, at the threshold minus and plus
    ``_NEAR`` (far more than that rounding): a box suppressed at the higher threshold is suppressed by the exact
    test too, a box kept at the lower one is kept by it, so when both passes keep the same boxes, that is the
    exact answer (by induction over the boxes, best first). They differ only when some IoU lies within
    ``_NEAR`` of the threshold; the numpy loop then decides. ``scores``: positive, finite, and such that OpenCV's
    stable sort by their float32 values, best first, is :func:`nms`'s order (float32 scores, or ranks n, ..., 1).
    """
    try:
        import cv2
    except ImportError:  # opencv-python-headless is a dependency; a hand-pruned board install may lack it
        return None
    wh = b[:, 2:] - b[:, :2]
    # NaN and inf fail both tests; a side over 1e-9 of the largest coordinate keeps OpenCV's intersection (from x
    # and width, not from the corners) within 1e-6 of ours, and over 1e-6 keeps areas clear of OpenCV's "two
    # empty boxes" epsilon and of our union's 1e-12 floor
    floor = max(float(np.abs(b).max()) * 1e-9, 1e-6)
    if len(b) >= 1 << 24 or not iou_threshold >= _NEAR or not (wh.min() > floor and wh.max() < np.inf):
        return None  # (OpenCV refuses a negative threshold)
    # as Python lists: OpenCV's binding reads those faster than an array's rows (13 vs 22 us for 45 boxes)
    return _both_thresholds(cv2, np.concatenate([b[:, :2], wh], axis=1).tolist(), scores, iou_threshold, max_det)


def nms_corners_in_opencv(x1y1: np.ndarray, x2y2: np.ndarray, scores: np.ndarray, classes: np.ndarray, bound: float,
                          num_classes: int, iou_threshold: float, max_det: int) -> np.ndarray | None:
    """:func:`nms` of a decoder's boxes, its float32 corners apart, whose every coordinate lies within
    [-``bound``, ``bound``]: OpenCV's pass with a constant class shift (``2 * bound + 2``, so no per-frame maximum)
    and float32 sizes (within 2**-24 of the float64 ones, far inside the ``_NEAR`` margin that checks OpenCV's
    answer); None where :func:`_greedy_in_opencv` would decline (or ``bound`` is not finite): then call :func:`nms`.
    Some ten numpy calls instead of twenty, for the video loop's frames.

    Example:
        >>> c1 = np.array([[0, 0], [1, 1], [50, 50]], np.float32)
        >>> nms_corners_in_opencv(c1, c1 + 10, np.float32([0.9, 0.8, 0.7]), np.array([0, 0, 0]), 60.0, 1,
        ...                       0.45, 300).tolist()
        [0, 2]
    """
    try:
        import cv2
    except ImportError:
        return None
    s = scores.tolist()
    shift = 2.0 * bound + 2.0
    floor = max((bound + max(num_classes - 1, 0) * shift) * 1e-9, 1e-6)  # _greedy_in_opencv's, from a bound
    if not (shift < math.inf and min(s) > 0.0 and math.isfinite(sum(s)) and iou_threshold >= _NEAR):
        return None
    wh = x2y2 - x1y1
    if not wh.min() > floor:
        return None
    xywh = np.concatenate([x1y1 + (classes * shift)[:, None], wh], axis=1).tolist()
    return _both_thresholds(cv2, xywh, s, iou_threshold, max_det)


def _both_thresholds(cv2, xywh: list, scores: list, iou_threshold: float, max_det: int) -> np.ndarray | None:
    """OpenCV's NMS at the threshold minus and plus ``_NEAR``: its kept indices where both agree, else None."""
    low = cv2.dnn.NMSBoxes(xywh, scores, 0.0, float(iou_threshold) - _NEAR)
    high = cv2.dnn.NMSBoxes(xywh, scores, 0.0, float(iou_threshold) + _NEAR)
    if low.tobytes() != high.tobytes():
        return None
    return low.astype(np.int64)[:max_det]


_NEAR = 1e-5  # see _greedy_in_opencv: an IoU this close to the threshold is decided in float64 by numpy


def _pair_iou(x1, y1, x2, y2, areas, i, rest) -> np.ndarray:
    """IoU of boxes ``i`` with boxes ``rest`` (broadcasting indices or slices): one formula for both NMS paths,
    so both give the same floats, bit for bit."""
    w = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
    h = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
    inter = np.maximum(w, 0.0) * np.maximum(h, 0.0)
    return inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)


def _greedy_per_kept_box(x1, y1, x2, y2, areas, iou_threshold: float, max_det: int) -> list[int]:
    alive = np.ones(len(x1), dtype=bool)
    keep = []
    for i in range(len(x1)):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) >= max_det:
            break
        rest = np.nonzero(alive[i + 1:])[0] + i + 1
        if rest.size == 0:
            break
        alive[rest[_pair_iou(x1, y1, x2, y2, areas, i, rest) > iou_threshold]] = False
    return keep
