"""What ``predict`` returns: :class:`Detections` and :class:`Classification`, plain numpy + JSON.

Every runtime model (edgekit artifacts, foreign TFLite SSDs, YAML-described ONNX) returns
these, so a camera script or a benchmark reads one shape whatever runs underneath.
Boxes are ``xyxy`` in original-image pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from edgekit.runtime.classify import UNSURE


def _name(names: list[str] | None, k: int) -> str:
    if k == UNSURE:
        return "unsure"
    if names and 0 <= k < len(names):
        return str(names[k])
    return str(k)


@dataclass
class Detections:
    """Detections of one image.

    Attributes:
        boxes: ``(n, 4)`` float32 ``x1, y1, x2, y2`` in original-image pixels.
        scores: ``(n,)`` float32 confidences, best first.
        classes: ``(n,)`` int64 class ids.
        names: the model's class names (index -> name); may be empty.
        image_shape: ``(height, width)`` of the original image.

    Example:
        >>> d = Detections(np.array([[1, 2, 30, 40]], np.float32), np.array([0.9], np.float32),
        ...                np.array([0]), ["fish"], (100, 200))
        >>> len(d), d.labels, d.to_dict()["detections"][0]["name"]
        (1, ['fish'], 'fish')
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    names: list[str] = field(default_factory=list)
    image_shape: tuple[int, int] = (0, 0)

    def __post_init__(self):
        b, s, c = self.boxes, self.scores, self.classes
        # a detector's own arrays are already in shape and dtype (checked here in Python, no numpy call per field)
        if not (type(b) is np.ndarray and b.dtype == np.float32 and b.ndim == 2 and b.shape[1] == 4):
            self.boxes = np.asarray(b, np.float32).reshape(-1, 4)
        if not (type(s) is np.ndarray and s.dtype == np.float32 and s.ndim == 1):
            self.scores = np.asarray(s, np.float32).reshape(-1)
        if not (type(c) is np.ndarray and c.dtype == np.int64 and c.ndim == 1):
            self.classes = np.asarray(c, np.int64).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.classes):
            raise ValueError(f"boxes {self.boxes.shape}, scores {self.scores.shape}, classes {self.classes.shape} differ in length")

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def labels(self) -> list[str]:
        """Class name of each detection."""
        return [_name(self.names, int(k)) for k in self.classes]

    def filter(self, conf: float | None = None, classes: list[int] | None = None) -> "Detections":
        """The detections at or above ``conf`` whose class is in ``classes`` (None: any).

        Example:
            >>> d = Detections(np.zeros((2, 4)), [0.9, 0.2], [0, 1], ["a", "b"], (8, 8))
            >>> len(d.filter(conf=0.5)), len(d.filter(classes=[1]))
            (1, 1)
        """
        keep = np.ones(len(self), bool)
        if conf is not None:
            keep &= self.scores >= conf
        if classes is not None:
            keep &= np.isin(self.classes, np.asarray(list(classes), np.int64))
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep], self.names, self.image_shape)

    def to_dict(self) -> dict:
        return {"image_shape": [int(v) for v in self.image_shape],
                "detections": [{"box": [round(float(v), 2) for v in b], "score": round(float(s), 5),
                                "class": int(c), "name": _name(self.names, int(c))}
                               for b, s, c in zip(self.boxes, self.scores, self.classes)]}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


@dataclass
class Classification:
    """Top-k classes of one image, and the label (``-1``: the model declined, "unsure").

    Example:
        >>> c = Classification(np.array([2, 0]), np.array([0.7, 0.2]), 2, ["a", "b", "c"])
        >>> c.name, c.to_dict()["top"][0]
        ('c', {'class': 2, 'name': 'c', 'score': 0.7})
    """

    classes: np.ndarray
    scores: np.ndarray
    label: int
    names: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.classes = np.asarray(self.classes, np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)

    @property
    def name(self) -> str:
        return _name(self.names, int(self.label))

    @property
    def unsure(self) -> bool:
        return int(self.label) == UNSURE

    def to_dict(self) -> dict:
        return {"label": int(self.label), "name": self.name,
                "top": [{"class": int(c), "name": _name(self.names, int(c)), "score": round(float(s), 5)}
                        for c, s in zip(self.classes, self.scores)]}

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)
