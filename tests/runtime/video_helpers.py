"""A generated video with known moving objects, and a colour detector that finds them exactly.

The objects are filled squares on a grey background: red ones are class 0, blue ones class 1.
``ColorDetector`` is a real (if trivial) detector implementing the runtime model contract with
OpenCV connected components, so the video loop, tracker and counters are exercised on decoded
frames while the expected counts stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

W, H, FPS, FRAMES, SIZE = 320, 240, 10, 44, 24
LINE = (0, 120, W, 120)  # drawn left to right: moving down is "in"
COLORS = {0: (0, 0, 230), 1: (230, 0, 0)}  # BGR: red, blue


@dataclass(frozen=True)
class Mover:
    """A square of class ``cls`` whose centre moves from ``start`` by ``step`` px per frame, from frame ``first``."""

    cls: int
    start: tuple[float, float]
    step: tuple[float, float]
    first: int = 0
    last: int = FRAMES - 1

    def center(self, k: int) -> tuple[float, float] | None:
        if not self.first <= k <= self.last:
            return None
        n = k - self.first
        return self.start[0] + self.step[0] * n, self.start[1] + self.step[1] * n

    def box(self, k: int):
        c = self.center(k)
        if c is None:
            return None
        h = SIZE / 2
        return c[0] - h, c[1] - h, c[0] + h, c[1] + h


# A and C go down across the line (in, red), B goes up (out, blue), D moves along without crossing,
# E goes down but passes beside the end of a short line... (only in the zone test)
MOVERS = [
    Mover(0, (60, 20), (0, 6)),               # A: red, down, crosses y=120 between frames 16 and 17
    Mover(1, (160, 220), (0, -7)),            # B: blue, up, crosses between frames 14 and 15
    Mover(0, (260, 30), (0, 8), first=8),     # C: red, down, appears at frame 8, crosses between 19 and 20
    Mover(0, (20, 200), (6, 0), last=30),     # D: red, right along y=200, never crosses, leaves at frame 30
]


def expected_crossings(line_y: float = LINE[1]) -> list[tuple[int, int, str]]:
    """(mover index, frame, "in"/"out") of every crossing of the horizontal line, from the geometry."""
    out = []
    for i, m in enumerate(MOVERS):
        prev = None
        for k in range(FRAMES):
            c = m.center(k)
            if c is None:
                continue
            if prev is not None and (prev[1] - line_y) * (c[1] - line_y) < 0:
                out.append((i, k, "in" if c[1] > prev[1] else "out"))
            prev = c
    return sorted(out, key=lambda x: (x[1], x[0]))


def make_video(path: Path) -> Path:
    """Write the movers to a lossless-enough MJPG .avi (colours survive compression)."""
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    assert w.isOpened()
    for k in range(FRAMES):
        img = np.full((H, W, 3), 128, np.uint8)
        for m in MOVERS:
            b = m.box(k)
            if b is not None:
                x1, y1, x2, y2 = (int(round(v)) for v in b)
                cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), COLORS[m.cls], -1)
        w.write(img)
    w.release()
    return path


class ColorDetector:
    """Boxes of saturated red/blue blobs: the runtime model contract (``task``, ``names``, ``predict_one``)."""

    task = "detect"
    names = ["red", "blue"]

    def __init__(self):
        self.last_timing = {}

    def predict_one(self, image, conf=0.25, iou=0.45, classes=None, **_):
        import cv2

        from edgekit.runtime.results import Detections

        img = image.astype(np.int16)
        b, g, r = img[..., 0], img[..., 1], img[..., 2]
        boxes, scores, cls = [], [], []
        for k, mask in enumerate([(r - b > 80) & (r - g > 80), (b - r > 80) & (b - g > 80)]):
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
            for x, y, w, h, area in stats[1:]:
                if area >= 20:
                    boxes.append([x, y, x + w, y + h])
                    scores.append(0.9)
                    cls.append(k)
        return Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, cls, self.names, image.shape[:2])
