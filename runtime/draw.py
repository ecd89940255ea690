"""Annotate images with results: boxes + labels for detections, a caption for classifications.

OpenCV is imported when drawing (the device may run headless without ever drawing).
"""

from __future__ import annotations

import numpy as np

from edgekit.runtime.results import Classification, Detections


def _color(k: int) -> tuple[int, int, int]:
    # a fixed, well-spread hue per class so the same class keeps its colour across frames
    rng = np.random.default_rng(int(k) * 7919 + 17)
    return tuple(int(v) for v in rng.integers(64, 256, 3))


def draw(image: np.ndarray, result, line: int | None = None) -> np.ndarray:
    """A copy of a BGR image with ``result`` (Detections or Classification) drawn on it.

    Example:
        >>> img = np.zeros((64, 64, 3), np.uint8)
        >>> d = Detections(np.array([[8, 8, 40, 40]]), [0.9], [0], ["fish"], (64, 64))
        >>> int(draw(img, d).sum()) > 0
        True
    """
    import cv2

    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    line = line or max(1, round(min(h, w) / 300))
    font = max(0.35, min(h, w) / 900)
    if isinstance(result, Detections):
        for box, score, label, k in zip(result.boxes, result.scores, result.labels, result.classes):
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            color = _color(int(k))
            cv2.rectangle(out, (x1, y1), (x2, y2), color, line)
            text = f"{label} {score:.2f}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
            ty = max(y1, th + base)
            cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), color, -1)
            cv2.putText(out, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 1, cv2.LINE_AA)
    elif isinstance(result, Classification):
        text = result.name if result.unsure else f"{result.name} {float(result.scores[0]):.2f}"
        cv2.putText(out, text, (4, int(24 * font / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 255, 255), 1, cv2.LINE_AA)
    return out
