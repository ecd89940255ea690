"""Detection post-processing written once: decode -> class-aware NMS -> inverse letterbox.

The torch validator, the export verifier and every runtime backend call
:func:`postprocess_detections`, so a model and its artifacts are scored by one code path.
"""

from __future__ import annotations

import numpy as np

from edgekit.runtime.decode import decode_yolo_outputs
from edgekit.runtime.preprocess import Letterbox, boxes_from_letterbox


def postprocess_detections(outputs: list[np.ndarray], head_spec: dict, lb: Letterbox | None, conf: float = 0.25,
                           iou: float = 0.45, max_det: int = 300) -> dict:
    """Raw head maps of one image -> ``{"boxes": (n, 4) xyxy, "scores": (n,), "classes": (n,)}``.

    Boxes are in original-image pixels when ``lb`` is given, else in input pixels.

    Example:
        >>> spec = {"type": "yolo", "num_classes": 1, "imgsz": [64, 64], "strides": [32],
        ...         "anchors": [[[16.0, 16.0]]], "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
        >>> out = np.full((1, 6, 2, 2), -10, np.float32); out[0, :, 0, 0] = [0, 0, 0, 0, 10, 10]
        >>> r = postprocess_detections([out], spec, None)
        >>> r["boxes"].round(1).tolist(), r["classes"].tolist()
        ([[8.0, 8.0, 24.0, 24.0]], [0])
    """
    boxes, scores, classes = decode_yolo_outputs(outputs, head_spec, conf=conf, iou=iou, max_det=max_det)
    if lb is not None:
        boxes = boxes_from_letterbox(boxes, lb)
    return {"boxes": boxes.astype(np.float32), "scores": scores.astype(np.float32), "classes": classes.astype(np.int64)}
