"""Detection post-processing written once: decode -> class-aware NMS -> inverse letterbox (or stretch).

The torch validator, the export verifier and every runtime backend call
:func:`postprocess_detections`, so a model and its artifacts are scored by one code path.
"""

from __future__ import annotations

import math

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.decode import decode_yolo_outputs
from edgekit.runtime.preprocess import Letterbox, boxes_from_letterbox


def postprocess_detections(outputs: list[np.ndarray], head_spec: dict, lb: Letterbox | None, conf: float = 0.25,
                           iou: float = 0.45, max_det: int = 300, quant=None, decoder=None) -> dict:
    """Raw head maps of one image -> ``{"boxes": (n, 4) xyxy, "scores": (n,), "classes": (n,)}``.

    Boxes are in original-image pixels when ``lb`` is given (a letterbox's one scale and pads, or a stretch's
    separate x and y scales: :class:`~edgekit.runtime.preprocess.Letterbox`), else in input pixels. ``quant``: the
    maps are an INT8 artifact's integers, one ``(scale, zero_point)`` (or None) per map. ``decoder``:
    the model's :class:`~edgekit.runtime.decode.CandidateDecoder`, kept by a caller that runs it per frame.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "imgsz": [64, 64], "strides": [32],
        ...         "anchors": [[[16.0, 16.0]]], "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> out = np.full((1, 6, 2, 2), -10, np.float32); out[0, :, 0, 0] = [0, 0, 0, 0, 10, 10]
        >>> r = postprocess_detections([out], spec, None)
        >>> r["boxes"].round(1).tolist(), r["classes"].tolist()
        ([[8.0, 8.0, 24.0, 24.0]], [0])
    """
    check_thresholds(conf, iou, max_det)
    boxes, scores, classes = decode_yolo_outputs(outputs, head_spec, conf=conf, iou=iou, max_det=max_det, quant=quant,
                                                 decoder=decoder)
    if lb is not None:
        boxes = boxes_from_letterbox(boxes, lb)
    return {"boxes": boxes.astype(np.float32, copy=False), "scores": scores.astype(np.float32, copy=False),
            "classes": classes.astype(np.int64, copy=False)}


def check_thresholds(conf: float, iou: float, max_det: int) -> None:
    """Refuse thresholds that would silently give wrong results (NaN, ``conf`` 2, ``iou`` -1, ``max_det`` 0).

    Example:
        >>> check_thresholds(0.25, -1, 300)
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: iou=-1 is out of range: give an NMS IoU above 0 and at most 1 (e.g. 0.45)
    """
    if type(conf) is float and type(iou) is float and type(max_det) is int and 0.0 <= conf <= 1.0 \
            and 0.0 < iou <= 1.0 and max_det >= 1:
        return  # the usual call, per video frame: plain Python numbers in range
    def number(v) -> bool:
        return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v)

    if not number(conf) or not 0.0 <= conf <= 1.0:
        raise EdgekitError(f"conf={conf!r} is out of range: give a minimum score from 0 to 1 (e.g. 0.25)")
    if not number(iou) or not 0.0 < iou <= 1.0:
        raise EdgekitError(f"iou={iou!r} is out of range: give an NMS IoU above 0 and at most 1 (e.g. 0.45)")
    if not isinstance(max_det, (int, np.integer)) or isinstance(max_det, bool) or max_det < 1:
        raise EdgekitError(f"max_det={max_det!r} is out of range: give a whole number of 1 or more (e.g. 300)")
