"""A small multi-object tracker in numpy: IoU matching, optional constant-velocity Kalman, stable ids.

Why our own and not a library: the maintained trackers (``supervision``'s ByteTrack, ``norfair``,
``motpy``) pull scipy, filterpy, matplotlib or Pillow onto a board that has numpy and one
interpreter; what a fixed camera counting fish or people needs is SORT's recipe, which is a
hundred lines: predict each track (constant velocity on centre and size), match detections to
predictions greedily by IoU (best pair first, deterministic), then match what is left by centre
distance (within ``max_distance`` box sizes: a small object moving fast overlaps little from one
frame to the next, and a new track has no velocity yet), start a track for each unmatched
detection, drop a track after ``max_missed`` frames without a match. A track's class is a
score-weighted vote over its frames, so one misclassified frame does not flip it.

Example:
    >>> t = Tracker(iou=0.3, min_hits=1)
    >>> [tr.id for tr in t.update(np.array([[0, 0, 10, 10]]), np.array([0.9]), np.array([0]))]
    [1]
    >>> [tr.id for tr in t.update(np.array([[2, 0, 12, 10]]), np.array([0.8]), np.array([0]))]
    [1]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgekit.runtime.boxes import box_iou, cxcywh_to_xyxy, xyxy_to_cxcywh


class _Kalman:
    """Constant-velocity Kalman filter on (cx, cy, w, h) with velocities: SORT's model, 8 states."""

    _F = np.eye(8)
    _F[:4, 4:] = np.eye(4)
    _H = np.eye(4, 8)

    def __init__(self, box: np.ndarray):
        self.x = np.zeros(8)
        self.x[:4] = xyxy_to_cxcywh(np.asarray(box, np.float64))
        size = max(self.x[2], self.x[3], 1.0)
        # position known to a few pixels, velocity unknown: large initial velocity variance
        self.P = np.diag([size / 10] * 4 + [size] * 4) ** 2
        self.q = size / 20

    def predict(self) -> np.ndarray:
        predict_all([self])
        return self.box()

    def update(self, box: np.ndarray) -> None:
        update_all([self], np.asarray(box, np.float64).reshape(1, 4))

    def box(self) -> np.ndarray:
        return cxcywh_to_xyxy(self.x[:4]).astype(np.float32)


_Q_SCALE = np.array([1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25])


def predict_all(filters: list[_Kalman]) -> np.ndarray:
    """One predict step of many filters at once (stacked: one numpy call for all tracks, not one each);
    returns the predicted xyxy boxes ``(n, 4)``."""
    if not filters:
        return np.zeros((0, 4), np.float32)
    F = _Kalman._F
    x = np.stack([k.x for k in filters]) @ F.T
    x[:, 2:4] = np.maximum(x[:, 2:4], 1.0)
    q = (np.array([k.q for k in filters])[:, None] * _Q_SCALE) ** 2
    P = F @ np.stack([k.P for k in filters]) @ F.T
    P[:, np.arange(8), np.arange(8)] += q
    for k, xi, Pi in zip(filters, x, P):
        k.x, k.P = xi, Pi
    return cxcywh_to_xyxy(x[:, :4]).astype(np.float32)


def update_all(filters: list[_Kalman], boxes: np.ndarray) -> None:
    """The measurement update of many filters at once, each with its xyxy box (H = [I 0]: the first 4 states)."""
    if not filters:
        return
    z = xyxy_to_cxcywh(np.asarray(boxes, np.float64))
    x = np.stack([k.x for k in filters])
    P = np.stack([k.P for k in filters])
    r = (np.maximum(np.maximum(x[:, 2], x[:, 3]), 1.0) / 10) ** 2
    S = P[:, :4, :4] + r[:, None, None] * np.eye(4)
    K = P[:, :, :4] @ np.linalg.inv(S)  # (n, 8, 4)
    x = x + (K @ (z - x[:, :4])[:, :, None])[:, :, 0]
    P = P - K @ P[:, :4, :]
    for k, xi, Pi in zip(filters, x, P):
        k.x, k.P = xi, Pi


@dataclass
class Track:
    """One tracked object.

    Attributes:
        id: stable id, 1, 2, ... in order of confirmation.
        box: latest xyxy box (the matched detection's, or the prediction while unmatched).
        seen_box: the box of the latest matched detection (what a "lost" event reports).
        score: detector confidence of the latest match.
        hits: frames matched so far; ``misses``: frames since the latest match.
        votes: class id -> summed detector score over the track's frames.
        frames: class id -> number of frames the detector gave that class.
    """

    id: int
    box: np.ndarray
    score: float
    hits: int = 1
    misses: int = 0
    votes: dict = field(default_factory=dict)
    frames: dict = field(default_factory=dict)
    kalman: _Kalman | None = None
    seen_box: np.ndarray | None = None

    def __post_init__(self):
        if self.seen_box is None:
            self.seen_box = self.box.copy()

    @property
    def cls(self) -> int:
        """The class decided so far: the largest summed score (ties: the lower class id)."""
        return min(self.votes, key=lambda k: (-self.votes[k], k)) if self.votes else -1

    @property
    def label_confidence(self) -> float:
        """Mean detector score of the frames that voted for :attr:`cls`."""
        k = self.cls
        return float(self.votes[k] / self.frames[k]) if k in self.frames else 0.0

    @property
    def center(self) -> np.ndarray:
        return (self.box[:2] + self.box[2:]) / 2

    def vote(self, k: int, score: float) -> None:
        self.votes[k] = self.votes.get(k, 0.0) + float(score)
        self.frames[k] = self.frames.get(k, 0) + 1


class Tracker:
    """SORT-style tracker: ``update(boxes, scores, classes)`` once per frame -> the tracks seen in it.

    Args:
        iou: minimum IoU between a track's predicted box and a detection to match them.
        max_missed: frames a track survives without a match (predicted forward meanwhile).
        min_hits: detections before a track is confirmed and gets an id (1: at once; the default 2
            keeps one-frame false positives from becoming tracks: on vtest.avi with Yolo-Fastest
            INT8 at conf 0.3, 136 tracks instead of 177).
        kalman: predict with a constant-velocity Kalman filter (else the track stays where it was
            last seen: enough at high frame rates, cheaper).
        per_class: match only detections of the track's class.
        max_distance: second matching stage: centre distance, in units of the track's box size
            (the root of its area), under which an unmatched track and detection still match; 0: off.

    Example:
        >>> t = Tracker(kalman=False, min_hits=1)
        >>> _ = t.update(np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.array([0.9, 0.8]), np.array([0, 1]))
        >>> [(tr.id, tr.cls) for tr in t.update(np.array([[51, 50, 61, 60]]), np.array([0.7]), np.array([1]))]
        [(2, 1)]
    """

    def __init__(self, iou: float = 0.3, max_missed: int = 15, min_hits: int = 2, kalman: bool = True,
                 per_class: bool = False, max_distance: float = 1.0):
        self.max_distance = float(max_distance)
        self.iou, self.max_missed, self.min_hits = float(iou), int(max_missed), int(min_hits)
        self.kalman, self.per_class = bool(kalman), bool(per_class)
        self.tracks: list[Track] = []
        self.removed: list[Track] = []  # dropped by the latest update (for "lost" events and forgetting state)
        self._next_id = 1
        self._pending: list[Track] = []  # not yet confirmed (hits < min_hits); id 0 until confirmed

    @property
    def next_id(self) -> int:
        """The id the next confirmed track will get (so ``next_id - 1`` tracks were confirmed so far)."""
        return self._next_id

    def _confirm(self, tr: Track) -> None:
        tr.id = self._next_id
        self._next_id += 1

    def update(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> list[Track]:
        """Advance one frame; returns the confirmed tracks matched in this frame, in id order."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        classes = np.asarray(classes, np.int64).reshape(-1)
        live = self.tracks + self._pending
        pred = np.array([tr.box for tr in live], np.float32).reshape(-1, 4)
        kal = [i for i, tr in enumerate(live) if tr.kalman]
        if kal:
            pred[kal] = predict_all([live[i].kalman for i in kal])
        for tr, b in zip(live, pred):
            tr.box = b
        pairs = self._match(live, pred, boxes, classes)
        matched_t, matched_d = set(), set()
        for ti, di in pairs:
            tr = live[ti]
            tr.box, tr.score = boxes[di].copy(), float(scores[di])
            tr.seen_box = tr.box.copy()
            tr.hits += 1
            tr.misses = 0
            tr.vote(int(classes[di]), scores[di])
            matched_t.add(ti)
            matched_d.add(di)
        fed = [(live[ti].kalman, di) for ti, di in pairs if live[ti].kalman]
        update_all([k for k, _ in fed], boxes[[di for _, di in fed]])
        for ti, tr in enumerate(live):
            if ti not in matched_t:
                tr.misses += 1
        for di in range(len(boxes)):
            if di not in matched_d:
                tr = Track(0, boxes[di].copy(), float(scores[di]), kalman=_Kalman(boxes[di]) if self.kalman else None)
                tr.vote(int(classes[di]), scores[di])
                self._pending.append(tr)
        # pending tracks: confirmed after min_hits matches, forgotten at their first miss
        still = []
        for tr in self._pending:
            if tr.hits >= self.min_hits and tr.misses == 0:
                self._confirm(tr)
                self.tracks.append(tr)
            elif tr.misses == 0:
                still.append(tr)
        self._pending = still
        self.removed = [tr for tr in self.tracks if tr.misses > self.max_missed]
        self.tracks = [tr for tr in self.tracks if tr.misses <= self.max_missed]
        return sorted((tr for tr in self.tracks if tr.misses == 0), key=lambda tr: tr.id)

    def _match(self, live, pred, boxes, classes) -> list[tuple[int, int]]:
        if not len(live) or not len(boxes):
            return []
        allowed = np.ones((len(live), len(boxes)), bool)
        if self.per_class:
            allowed = np.array([tr.cls for tr in live])[:, None] == classes[None, :]
        pairs = _greedy(np.where(allowed, box_iou(pred, boxes), 0.0), self.iou, set(), set())
        if self.max_distance > 0 and len(pairs) < min(len(live), len(boxes)):
            cp, cd = (pred[:, :2] + pred[:, 2:]) / 2, (boxes[:, :2] + boxes[:, 2:]) / 2
            size = np.sqrt(np.prod(np.maximum(pred[:, 2:] - pred[:, :2], 1.0), axis=1))
            dist = np.linalg.norm(cp[:, None] - cd[None], axis=2) / size[:, None]
            # closeness in (0, 1]: 1 at the same centre, 1 / (1 + max_distance) at the limit
            close = np.where(allowed, 1.0 / (1.0 + dist), 0.0)
            pairs += _greedy(close, 1.0 / (1.0 + self.max_distance), {t for t, _ in pairs}, {d for _, d in pairs})
        return pairs


def _greedy(m: np.ndarray, floor: float, used_t: set, used_d: set) -> list[tuple[int, int]]:
    """Pairs (row, column) of ``m``, best value first, each row and column once, values >= floor.

    Ties go by (row, column) index, so the result is deterministic.
    """
    order = np.lexsort((np.arange(m.size), -m.ravel()))
    pairs = []
    for flat in order:
        if m.flat[flat] < floor:
            break
        ti, di = divmod(int(flat), m.shape[1])
        if ti in used_t or di in used_d:
            continue
        pairs.append((ti, di))
        used_t.add(ti)
        used_d.add(di)
    return pairs
