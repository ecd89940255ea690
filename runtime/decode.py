"""Decoding of YOLO (v3-style) and region (v2-style) head maps, in numpy (device side).

One implementation serves the torch model, every exported artifact and the board. The
inputs are the raw maps a detector returns, each ``(N, A*(5+C), H, W)``; ``head_spec``
(see ``edgekit.models.detector``) says how to read them:

* ``region`` (YOLOv2): x = (i + sigmoid(tx)) / W, w = exp(tw) * anchor_grid / W,
  objectness sigmoid, classes softmax.
* ``yolo`` (YOLOv3/v4): x = (i + sigmoid(tx) * s - (s - 1) / 2) / W with s = scale_x_y,
  w = exp(tw) * anchor_px / net_w, objectness and classes sigmoid. With ``new_coords``
  (Scaled-YOLOv4) the map is already through a sigmoid and w = (2 tw)^2 * anchor_px.

These are Darknet's formulas (and OpenCV's ``Region`` layer's), so a Darknet model gives
Darknet's boxes. Rows are ordered per output, then grid row, column, anchor (OpenCV's
order). Coordinates are in input pixels; undoing a letterbox is the caller's step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .boxes import cxcywh_to_xyxy, nms


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # written as tanh so large negative logits do not overflow exp
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _cells(out: np.ndarray, n_anchors: int, num_classes: int) -> np.ndarray:
    """(N, A*(5+C), H, W) -> (N, H, W, A, 5+C) float32."""
    out = np.asarray(out, dtype=np.float32)
    if out.ndim != 4 or out.shape[1] != n_anchors * (5 + num_classes):
        raise ValueError(f"head map of shape {out.shape} does not hold {n_anchors} anchors x (5 + {num_classes})")
    n, _, h, w = out.shape
    return out.reshape(n, n_anchors, 5 + num_classes, h, w).transpose(0, 3, 4, 1, 2)


def _input_size(outputs: Sequence[np.ndarray], head_spec: dict, imgsz) -> tuple[float, float]:
    if imgsz is not None:
        return (float(imgsz), float(imgsz)) if np.isscalar(imgsz) else (float(imgsz[0]), float(imgsz[1]))
    s, out = head_spec["strides"][0], outputs[0]
    return float(out.shape[2] * s), float(out.shape[3] * s)


def decode_output(out: np.ndarray, head_spec: dict, k: int, in_hw: tuple[float, float]) -> np.ndarray:
    """Decode output ``k`` into rows (cx, cy, w, h, obj, class probs), pixels: (N, H*W*A, 5+C).

    Args:
        out: raw map (N, A*(5+C), H, W).
        head_spec: the model's head_spec.
        k: index of this output in ``head_spec``.
        in_hw: input (height, width) in pixels.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]],
        ...         "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> decode_output(np.zeros((1, 6, 1, 1)), spec, 0, (32, 32))[0, 0].tolist()
        [16.0, 16.0, 10.0, 20.0, 0.5, 0.5]
    """
    anchors = np.asarray(head_spec["anchors"][k], dtype=np.float32).reshape(-1, 2)
    nc = head_spec["num_classes"]
    p = _cells(out, len(anchors), nc)
    n, gh, gw = p.shape[:3]
    gx = np.arange(gw, dtype=np.float32)[None, None, :, None]
    gy = np.arange(gh, dtype=np.float32)[None, :, None, None]
    return _decode_cells(p, gx, gy, anchors, head_spec, k, (gh, gw), in_hw).reshape(n, -1, 5 + nc)


def _decode_cells(p: np.ndarray, gx, gy, anchors, head_spec: dict, k: int, grid_hw, in_hw) -> np.ndarray:
    """The decoding formulas on cells ``p`` (..., 5+C), whose grid columns/rows/anchors broadcast from
    ``gx``, ``gy`` and ``anchors``: all cells of a map (:func:`decode_output`) or a few (:func:`decode_candidates`)."""
    kind = head_spec["type"]
    gh, gw = grid_hw
    in_h, in_w = in_hw
    rows = np.empty_like(p)
    if kind == "region":
        sx, sy = _sigmoid(p[..., 0]), _sigmoid(p[..., 1])
        scale_wh = np.array([in_w / gw, in_h / gh], np.float32)  # anchors are in grid cells
        wh = np.exp(p[..., 2:4]) * anchors * scale_wh
        rows[..., 4] = _sigmoid(p[..., 4])
        rows[..., 5:] = _softmax(p[..., 5:])
    elif kind == "yolo":
        s = float(head_spec.get("scale_x_y", [1.0] * (k + 1))[k])
        new = bool(head_spec.get("new_coords", 0))
        xy = p[..., 0:2] if new else _sigmoid(p[..., 0:2])
        sx, sy = (xy[..., 0] * s - 0.5 * (s - 1), xy[..., 1] * s - 0.5 * (s - 1))
        twh = p[..., 2:4]
        wh = (4.0 * twh * twh if new else np.exp(twh)) * anchors
        rows[..., 4:] = p[..., 4:] if new else _sigmoid(p[..., 4:])
    else:
        raise ValueError(f"unknown head type {kind!r}: expected 'region' or 'yolo'")
    rows[..., 0] = (gx + sx) / gw * in_w
    rows[..., 1] = (gy + sy) / gh * in_h
    rows[..., 2:4] = wh
    return rows


def decode_candidates(outputs: Sequence[np.ndarray], head_spec: dict, conf: float, imgsz=None) -> np.ndarray:
    """The decoded rows of one image whose objectness may pass ``conf``, as :func:`decode_dense` gives them.

    Most cells of a detector's maps are empty: thresholding the raw objectness first (sigmoid is
    monotonic, so ``sigmoid(t) > conf`` is ``t > logit(conf)``; a small margin keeps the borderline
    cells for :func:`select`'s exact test) decodes a few dozen rows instead of thousands. Same
    formulas, same row order as the dense decode, so :func:`select` keeps the same detections.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]],
        ...         "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> out = np.full((1, 6, 2, 2), -5.0, np.float32); out[0, :4, 1, 0] = 0; out[0, 4:, 1, 0] = 5
        >>> decode_candidates([out], spec, conf=0.25).astype(np.float64).round(2).tolist()
        [[16.0, 48.0, 10.0, 20.0, 0.99, 0.99]]
    """
    if len(outputs) != len(head_spec["anchors"]):
        raise ValueError(f"{len(outputs)} outputs, head_spec describes {len(head_spec['anchors'])}")
    in_hw = _input_size(outputs, head_spec, imgsz)
    nc = head_spec["num_classes"]
    direct = head_spec["type"] == "yolo" and bool(head_spec.get("new_coords", 0))  # objectness is already a probability
    cut = conf - 1e-6 if direct else float(np.log(conf / (1.0 - conf))) - 1e-4
    parts = []
    for k, out in enumerate(outputs):
        anchors = np.asarray(head_spec["anchors"][k], dtype=np.float32).reshape(-1, 2)
        p = _cells(out, len(anchors), nc)[0]  # (H, W, A, 5+C)
        iy, ix, ia = np.nonzero(p[..., 4] > cut)
        cells = np.ascontiguousarray(p[iy, ix, ia])
        parts.append(_decode_cells(cells, ix.astype(np.float32), iy.astype(np.float32), anchors[ia], head_spec, k,
                                   p.shape[:2], in_hw))
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 5 + nc), np.float32)


def decode_dense(outputs: Sequence[np.ndarray], head_spec: dict, imgsz=None) -> np.ndarray:
    """All decoded rows (cx, cy, w, h, obj, class probs) of all outputs: (N, R, 5+C).

    Args:
        outputs: raw maps, in ``head_spec`` order.
        head_spec: the model's head_spec.
        imgsz: input size (int or (h, w)); default grid size x stride of the first output.

    Returns:
        float32 rows, boxes in input pixels; class probs are not multiplied by obj.

    Example:
        >>> spec = {"type": "region", "num_classes": 2, "strides": [32], "anchors": [[[1.0, 2.0]]],
        ...         "anchor_units": "grid", "scale_x_y": [1.0], "new_coords": 0}
        >>> decode_dense([np.zeros((1, 7, 2, 2))], spec)[0, 3].tolist()
        [48.0, 48.0, 32.0, 64.0, 0.5, 0.5, 0.5]
    """
    if len(outputs) != len(head_spec["anchors"]):
        raise ValueError(f"{len(outputs)} outputs, head_spec describes {len(head_spec['anchors'])}")
    in_hw = _input_size(outputs, head_spec, imgsz)
    return np.concatenate([decode_output(o, head_spec, k, in_hw) for k, o in enumerate(outputs)], axis=1)


def select(rows: np.ndarray, conf: float = 0.25, iou: float | None = 0.45, max_det: int = 300,
           multi_label: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold and NMS for one image's dense rows (R, 5+C).

    Score = objectness x class probability (Darknet's). Class-aware NMS.

    Returns:
        boxes (K, 4) xyxy float32, scores (K,) float32, class_ids (K,) int64, best first.

    Example:
        >>> r = np.array([[10, 10, 4, 4, 0.9, 0.1, 0.9], [10, 10, 4, 4, 0.1, 0.9, 0.1]], np.float32)
        >>> b, s, c = select(r)
        >>> b.tolist(), [round(float(v), 2) for v in s], c.tolist()
        ([[8.0, 8.0, 12.0, 12.0]], [0.81], [1])
    """
    rows = rows[rows[:, 4] > conf]  # score <= obj: cheap first cut, most cells are empty
    scores_all = rows[:, 4:5] * rows[:, 5:]
    if multi_label:
        i, j = np.nonzero(scores_all > conf)
        boxes, scores, cls = rows[i, :4], scores_all[i, j], j
    else:
        cls = scores_all.argmax(1) if len(rows) else np.zeros(0, np.int64)
        scores = scores_all[np.arange(len(rows)), cls]
        keep = scores > conf
        boxes, scores, cls = rows[keep, :4], scores[keep], cls[keep]
    boxes = cxcywh_to_xyxy(boxes).astype(np.float32)
    order = nms(boxes, scores, cls, iou, max_det) if iou is not None else np.argsort(-scores, kind="stable")[:max_det]
    return boxes[order], scores[order].astype(np.float32), cls[order].astype(np.int64)


def decode_yolo_outputs(outputs: Sequence[np.ndarray], head_spec: dict, conf: float = 0.25,
                        iou: float | None = 0.45, imgsz=None, max_det: int = 300,
                        multi_label: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one image from its raw head maps: decode, threshold, class-aware NMS.

    Args:
        outputs: raw maps (1, A*(5+C), H, W), in ``head_spec`` order (numpy or anything
            ``np.asarray`` takes); for batches use :func:`decode_batch`.
        head_spec: the model's head_spec.
        conf: minimum objectness x class probability.
        iou: NMS IoU threshold; None skips NMS (greedy NMS is idempotent, so running it
            again later changes nothing).
        imgsz: input size (int or (h, w)); default grid size x stride.
        max_det: most detections.
        multi_label: one detection per class above ``conf`` (Darknet's way) instead of
            the best class only.

    Returns:
        boxes (K, 4) xyxy in input pixels (float32), scores (K,) float32, class_ids (K,)
        int64, best first.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]],
        ...         "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> out = np.full((1, 6, 1, 1), 5.0); out[0, :4] = 0
        >>> boxes, scores, ids = decode_yolo_outputs([out], spec)
        >>> boxes.tolist(), ids.tolist()
        ([[11.0, 6.0, 21.0, 26.0]], [0])
    """
    outputs = [np.asarray(o) for o in outputs]
    if outputs and outputs[0].shape[0] != 1:
        raise ValueError(f"decode_yolo_outputs takes one image, got a batch of {outputs[0].shape[0]}: use decode_batch")
    if 0 < conf < 1 and outputs:  # sparse: only the cells that may pass (same result as the dense decode)
        return select(decode_candidates(outputs, head_spec, conf, imgsz), conf, iou, max_det, multi_label)
    return decode_batch(outputs, head_spec, conf, iou, imgsz, max_det, multi_label)[0]


def decode_batch(outputs: Sequence[np.ndarray], head_spec: dict, conf: float = 0.25,
                 iou: float | None = 0.45, imgsz=None, max_det: int = 300,
                 multi_label: bool = False) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`decode_yolo_outputs` for a batch: one (boxes, scores, class_ids) per image.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "strides": [32], "anchors": [[[10, 20]]],
        ...         "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> [len(b) for b, s, c in decode_batch([np.zeros((3, 6, 1, 1))], spec, conf=0.2)]
        [1, 1, 1]
    """
    rows = decode_dense([np.asarray(o) for o in outputs], head_spec, imgsz)
    return [select(r, conf, iou, max_det, multi_label) for r in rows]


def anchors_in_pixels(head_spec: dict) -> list[np.ndarray]:
    """Each output's anchors as (A, 2) input pixels at ``head_spec['imgsz']`` (grid x stride for region).

    Example:
        >>> anchors_in_pixels({"anchors": [[[1.0, 2.0]]], "anchor_units": "grid", "strides": [32]})[0].tolist()
        [[32.0, 64.0]]
    """
    out = []
    for group, s in zip(head_spec["anchors"], head_spec["strides"]):
        a = np.asarray(group, dtype=np.float32).reshape(-1, 2)
        out.append(a * s if head_spec.get("anchor_units") == "grid" else a)
    return out
