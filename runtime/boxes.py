"""Box conversions, IoU and class-aware NMS in numpy (device side: numpy only).

Conventions: ``xyxy`` is (x1, y1, x2, y2) corners; ``xywh`` is COCO's (x, y, w, h) with
(x, y) the top-left corner; ``cxcywh`` is (centre x, centre y, w, h) as in YOLO labels.
All functions take ``(..., 4)`` arrays and return new arrays of the same leading shape.
"""

from __future__ import annotations

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
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def box_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas of xyxy boxes ``a`` (N, 4) and ``b`` (M, 4) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    return wh[..., 0] * wh[..., 1]


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
    an offset larger than any coordinate, so one pass over all boxes is class-aware. The
    pass loops over the boxes it *keeps* (at most ``max_det``) with the IoU of each kept box
    against all remaining ones computed at once, never over pairs of boxes.

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
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if boxes.shape[0] != scores.shape[0]:
        raise ValueError(f"nms: {boxes.shape[0]} boxes but {scores.shape[0]} scores")
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")[:max_candidates]
    b = boxes[order]
    if classes is not None:
        cls = np.asarray(classes).reshape(-1)[order].astype(np.float64)
        offset = (np.abs(b).max() + 1.0) * 2.0
        b = b + (cls * offset)[:, None]
    areas = box_area(b)
    alive = np.ones(len(b), dtype=bool)
    keep = []
    for i in range(len(b)):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) >= max_det:
            break
        rest = np.nonzero(alive[i + 1:])[0] + i + 1
        if rest.size == 0:
            break
        lt = np.maximum(b[i, :2], b[rest, :2])
        rb = np.minimum(b[i, 2:], b[rest, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[:, 0] * wh[:, 1]
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        alive[rest[iou > iou_threshold]] = False
    return order[np.asarray(keep, dtype=np.int64)]
