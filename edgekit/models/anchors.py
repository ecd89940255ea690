"""Anchor boxes: IoU k-means on the training labels, and splitting them across outputs.

Training calls :func:`kmeans_anchors` on the label sizes (in pixels at the training
``imgsz``) and passes the result as ``anchors=`` to ``create_model``; the anchors then
live in the model's ``head_spec`` and in every exported manifest. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.errors import EdgekitError


def wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of boxes and anchors as if they shared a centre: (N, 2) x (K, 2) -> (N, K).

    Example:
        >>> wh_iou(np.array([[2., 2.]]), np.array([[2., 2.], [4., 1.]])).round(3).tolist()
        [[1.0, 0.333]]
    """
    wh = np.asarray(wh, dtype=np.float64)[:, None, :]
    an = np.asarray(anchors, dtype=np.float64)[None, :, :]
    inter = np.minimum(wh, an).prod(-1)
    return inter / (wh.prod(-1) + an.prod(-1) - inter)


def kmeans_anchors(wh: np.ndarray, n: int, seed: int = 0, max_iter: int = 300) -> np.ndarray:
    """K-means with the 1 - IoU distance (YOLOv2 sec. 2), medians as centres; sorted by area.

    Euclidean k-means would favour large boxes; IoU does not, which is why YOLOv2 uses it.
    Zero-size boxes (they exist in real datasets) are dropped first.

    Args:
        wh: (N, 2) box widths and heights in pixels at the training image size.
        n: number of anchors.
        seed: seed of the initial centres, so results repeat.
        max_iter: iteration cap (it usually converges in tens of iterations).

    Returns:
        (n, 2) float32 anchors, smallest area first.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> wh = np.concatenate([rng.normal(20, 2, (50, 2)), rng.normal(100, 5, (50, 2))])
        >>> kmeans_anchors(wh, 2).round(-1).tolist()
        [[20.0, 20.0], [100.0, 100.0]]
    """
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    wh = wh[(wh > 0).all(1) & np.isfinite(wh).all(1)]
    if n < 1:
        raise EdgekitError(f"kmeans_anchors: n must be >= 1, got {n}")
    if len(wh) < n:
        raise EdgekitError(f"kmeans_anchors: {len(wh)} non-empty boxes for {n} anchors: give more labelled boxes or fewer anchors")
    rng = np.random.default_rng(seed)
    uniq = np.unique(wh, axis=0)
    if len(uniq) < n:
        raise EdgekitError(f"kmeans_anchors: only {len(uniq)} distinct box sizes for {n} anchors: use fewer anchors")
    centres = uniq[rng.choice(len(uniq), n, replace=False)]
    assign = None
    for _ in range(max_iter):
        iou = wh_iou(wh, centres)
        new = iou.argmax(1)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        for k in range(n):
            members = wh[assign == k]
            if len(members):
                centres[k] = np.median(members, axis=0)
            else:
                # an empty cluster restarts on the box worst served by the others
                centres[k] = wh[iou.max(1).argmin()]
    return centres[np.argsort(centres.prod(1), kind="stable")].astype(np.float32)


def anchor_fitness(wh: np.ndarray, anchors: np.ndarray) -> float:
    """Mean over boxes of the best IoU with any anchor (YOLOv2's "Avg IOU").

    Example:
        >>> anchor_fitness(np.array([[10., 10.]]), np.array([[10., 10.], [50., 50.]]))
        1.0
    """
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    wh = wh[(wh > 0).all(1)]
    return float(wh_iou(wh, anchors).max(1).mean()) if len(wh) else 0.0


def split_anchors(anchors: np.ndarray, strides: Sequence[int],
                  per_output: Sequence[int] | None = None) -> list[list[list[float]]]:
    """Split anchors across outputs: the smallest go to the finest stride.

    Args:
        anchors: (n, 2) anchors in pixels (any order).
        strides: stride of each output, in the model's output order.
        per_output: how many anchors each output gets; default an equal share.

    Returns:
        Per output (in ``strides`` order), a list of [w, h], smallest area first.

    Example:
        >>> split_anchors([[10, 14], [23, 27], [37, 58], [81, 82], [135, 169], [344, 319]], [32, 16])
        [[[81.0, 82.0], [135.0, 169.0], [344.0, 319.0]], [[10.0, 14.0], [23.0, 27.0], [37.0, 58.0]]]
    """
    a = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    a = a[np.argsort(a.prod(1), kind="stable")]
    if per_output is None:
        if len(a) % len(strides):
            raise EdgekitError(f"{len(a)} anchors do not split evenly over {len(strides)} outputs")
        per_output = [len(a) // len(strides)] * len(strides)
    if sum(per_output) != len(a):
        raise EdgekitError(f"{len(a)} anchors given, the outputs need {sum(per_output)}")
    order = sorted(range(len(strides)), key=lambda i: strides[i])
    groups: list = [None] * len(strides)
    start = 0
    for i in order:
        groups[i] = [[float(w), float(h)] for w, h in a[start:start + per_output[i]]]
        start += per_output[i]
    return groups


def resolve_anchors(anchors, strides: Sequence[int], default: list) -> list:
    """What a factory stores: ``default`` when None, a flat (n, 2) list split, groups checked.

    The number of anchors per output follows what the user gives (e.g. 3 k-means anchors
    for a one-output model), as long as every output gets the same number.

    Args:
        anchors: None, (n, 2) or (outputs, a, 2) sizes in input pixels.
        strides: the model's output strides, in output order.
        default: the family's default groups.

    Returns:
        Per output, a list of [w, h] in pixels.

    Example:
        >>> resolve_anchors([[30, 60], [10, 20]], [32, 16], None)
        [[[30.0, 60.0]], [[10.0, 20.0]]]
    """
    if anchors is None:
        anchors = default
    try:
        arr = np.asarray(anchors, dtype=np.float64)
    except ValueError:  # ragged groups: cannot match the equal groups our heads need
        raise EdgekitError(f"anchors: give {len(strides)} group(s) with the same number of (w, h) pairs") from None
    if arr.ndim == 2 and arr.shape[1] == 2:
        groups = split_anchors(arr, strides)
    elif arr.ndim == 3 and arr.shape[2] == 2:
        groups = [[[float(w), float(h)] for w, h in g] for g in arr]
    else:
        raise EdgekitError(f"anchors: expected (n, 2) or (outputs, n, 2) pixel sizes, got shape {arr.shape}")
    if len(groups) != len(strides) or not groups[0]:
        raise EdgekitError(f"anchors: this model has {len(strides)} output(s), got {len(groups)} anchor group(s)")
    if any(w <= 0 or h <= 0 for g in groups for w, h in g):
        raise EdgekitError("anchors: widths and heights must be > 0 pixels")
    return groups
