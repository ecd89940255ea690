"""Draw a video frame's result: boxes with class and track id, the counting line or zone, counts, FPS.

OpenCV is imported when drawing (a headless board writing only JSONL never draws).
"""

from __future__ import annotations

import numpy as np

from edgekit.runtime.draw import _color, draw


def _text(out, text: str, org, font: float, color=(255, 255, 255)) -> None:
    import cv2

    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
    x, y = org
    cv2.rectangle(out, (x, y - th - base), (x + tw + 2, y + 2), (0, 0, 0), -1)
    cv2.putText(out, text, (x + 1, y - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font, color, 1, cv2.LINE_AA)


def _count_lines(counts: dict) -> list[str]:
    lines = []
    for name, v in counts.items():
        lines.append(f"{name}: in {v['in']} out {v['out']}" if isinstance(v, dict) else f"{name}: {v}")
    return lines


def annotate(result) -> np.ndarray:
    """A copy of ``result.frame.image`` with the tracks (or detections), counter, counts and FPS drawn.

    Example:
        >>> from edgekit.runtime.pipeline import FrameResult
        >>> from edgekit.runtime.results import Detections
        >>> from edgekit.runtime.video import Frame
        >>> img = np.zeros((64, 96, 3), np.uint8)
        >>> r = FrameResult(Frame(0, 0.0, img), Detections(np.array([[8, 8, 40, 40]]), [0.9], [0], ["fish"], (64, 96)))
        >>> int(annotate(r).sum()) > 0
        True
    """
    import cv2

    img = result.frame.image
    h, w = img.shape[:2]
    font = max(0.35, min(h, w) / 1400)
    line = max(1, round(min(h, w) / 300))
    if not result.tracks:
        out = draw(img, result.detections, line=line)
    else:
        out = np.ascontiguousarray(img.copy())
        for tr in result.tracks:
            x1, y1, x2, y2 = (int(round(v)) for v in tr.box)
            color = _color(tr.id)  # a colour per track, so an id switch shows
            cv2.rectangle(out, (x1, y1), (x2, y2), color, line)
            _text(out, f"#{tr.id} {result.names.get(tr.id, tr.cls)} {tr.score:.2f}", (x1, max(y1, 12)), font, color)
    counter = result.counter
    if counter is not None:
        pts = np.array(counter.draw_points(), np.int32)
        if counter.kind == "line":
            cv2.line(out, tuple(pts[0]), tuple(pts[1]), (0, 255, 255), line + 1)
            # a tick on the IN side (right-hand side walking from the first point to the second)
            mid, d = (pts[0] + pts[1]) / 2, (pts[1] - pts[0]).astype(float)
            normal = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-9) * 12 * line
            cv2.arrowedLine(out, tuple(int(v) for v in mid), tuple(int(v) for v in mid + normal), (0, 255, 255), line)
            _text(out, "IN", tuple(int(v) for v in mid + normal * 1.5), font, (0, 255, 255))
        else:
            cv2.polylines(out, [pts.reshape(-1, 1, 2)], True, (0, 255, 255), line + 1)
    y = int(18 * font / 0.35)
    for text in [f"{result.fps:.1f} FPS  frame {result.frame.index}"] + _count_lines(result.counts):
        _text(out, text, (4, y), font)
        y += int(16 * font / 0.35)
    return out
