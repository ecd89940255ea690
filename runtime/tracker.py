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


_Q_SCALE = np.array([1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25])
_DIAG = np.arange(8)


class KalmanBank:
    """SORT's constant-velocity Kalman filters on (cx, cy, w, h) and their velocities, one row a track.

    The states of all tracks sit in stacked arrays (``x`` (n, 8), ``P`` (n, 8, 8), ``q`` (n,)), so a
    frame's predict and update are a few numpy calls for all tracks, not a few per track.

    Example:
        >>> k = KalmanBank()
        >>> k.add(np.array([[0, 0, 10, 10]]))
        >>> k.predict().tolist()
        [[0.0, 0.0, 10.0, 10.0]]
    """

    def __init__(self):
        self.x, self.P, self.q = np.zeros((0, 8)), np.zeros((0, 8, 8)), np.zeros(0)

    def __len__(self) -> int:
        return len(self.x)

    def add(self, boxes: np.ndarray) -> None:
        """New filters at xyxy ``boxes``: position known to a few pixels, velocity unknown (large variance)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        x = np.zeros((len(boxes), 8))
        x[:, :4] = xyxy_to_cxcywh(boxes)
        size = np.maximum(np.maximum(x[:, 2], x[:, 3]), 1.0)
        P = np.zeros((len(boxes), 8, 8))
        P[:, _DIAG[:4], _DIAG[:4]] = (size[:, None] / 10) ** 2
        P[:, _DIAG[4:], _DIAG[4:]] = size[:, None] ** 2
        self.x, self.P = np.concatenate([self.x, x]), np.concatenate([self.P, P])
        self.q = np.concatenate([self.q, size / 20])

    def keep(self, rows) -> None:
        """Keep only ``rows``, in that order (the tracks still alive, in the tracker's order)."""
        rows = np.asarray(rows, np.intp)
        self.x, self.P, self.q = self.x[rows], self.P[rows], self.q[rows]

    def predict(self) -> np.ndarray:
        """One predict step of every filter; returns the predicted xyxy boxes ``(n, 4)`` float32."""
        # F = [[I, I], [0, I]] written out by blocks: x @ F.T and F @ P @ F.T are these sums of two terms, the
        # same floats as the matrix products (a product by 1 or 0 is exact), without (n, 8, 8) matmuls
        p, v = self.x[:, :4], self.x[:, 4:]
        x = np.concatenate([p + v, v], axis=1)
        x[:, 2:4] = np.maximum(x[:, 2:4], 1.0)
        A, B, C, D = self.P[:, :4, :4], self.P[:, :4, 4:], self.P[:, 4:, :4], self.P[:, 4:, 4:]
        P = np.empty_like(self.P)
        P[:, :4, :4] = (A + C) + (B + D)
        P[:, :4, 4:] = B + D
        P[:, 4:, :4] = C + D
        P[:, 4:, 4:] = D
        P[:, _DIAG, _DIAG] += (self.q[:, None] * _Q_SCALE) ** 2
        self.x, self.P = x, P
        return cxcywh_to_xyxy(x[:, :4]).astype(np.float32)

    def update(self, rows, boxes: np.ndarray) -> None:
        """The measurement update of filters ``rows``, each with its xyxy box (H = [I 0]: the first 4 states)."""
        if not len(rows):
            return
        rows = np.asarray(rows, np.intp)
        z = xyxy_to_cxcywh(np.asarray(boxes, np.float64))
        x, P = self.x[rows], self.P[rows]
        r = (np.maximum(np.maximum(x[:, 2], x[:, 3]), 1.0) / 10) ** 2
        S = P[:, :4, :4] + r[:, None, None] * np.eye(4)
        K = P[:, :, :4] @ np.linalg.inv(S)  # (n, 8, 4)
        self.x[rows] = x + (K @ (z - x[:, :4])[:, :, None])[:, :, 0]
        self.P[rows] = P - K @ P[:, :4, :]


@dataclass
class Track:
    """One tracked object.

    Attributes:
        id: stable id, 1, 2, ... in order of confirmation.
        box: latest xyxy box (the matched detection's, or the prediction while unmatched).
        seen_box: the box of the latest matched detection (what a "lost" event reports).
        score: detector confidence of the latest match.
        hits: frames matched so far; ``misses``: frames since the latest match.
        votes: class id -> summed detector score over the track's frames (grown by :meth:`vote`).
        frames: class id -> number of frames the detector gave that class.
    """

    id: int
    box: np.ndarray
    score: float
    hits: int = 1
    misses: int = 0
    votes: dict = field(default_factory=dict)
    frames: dict = field(default_factory=dict)
    seen_box: np.ndarray | None = None

    def __post_init__(self):
        if self.seen_box is None:
            self.seen_box = self.box.copy()
        self._best = min(self.votes, key=lambda k: (-self.votes[k], k)) if self.votes else -1

    @property
    def cls(self) -> int:
        """The class decided so far: the largest summed score (ties: the lower class id)."""
        return self._best

    @property
    def label_confidence(self) -> float:
        """Mean detector score of the frames that voted for :attr:`cls`."""
        k = self._best
        return float(self.votes[k] / self.frames[k]) if k in self.frames else 0.0

    @property
    def center(self) -> np.ndarray:
        return (self.box[:2] + self.box[2:]) / 2

    def vote(self, k: int, score: float) -> None:
        score = float(score)
        self.votes[k] = self.votes.get(k, 0.0) + score
        self.frames[k] = self.frames.get(k, 0) + 1
        # the decision kept up to date here (the video loop reads it for every track every frame): only
        # votes[k] changed, so the best is k, or stays what it was (unless a negative score lowered the best)
        best = self._best
        if best == -1 or best not in self.votes:
            self._best = min(self.votes, key=lambda c: (-self.votes[c], c))
        elif k == best:
            if score < 0:
                self._best = min(self.votes, key=lambda c: (-self.votes[c], c))
        elif self.votes[k] > self.votes[best] or (self.votes[k] == self.votes[best] and k < best):
            self._best = k


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
        self._bank = KalmanBank()  # row k: the filter of (tracks + pending)[k]

    @property
    def next_id(self) -> int:
        """The id the next confirmed track will get (so ``next_id - 1`` tracks were confirmed so far)."""
        return self._next_id

    def _confirm(self, tr: Track) -> None:
        tr.id = self._next_id
        self._next_id += 1

    def update(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> list[Track]:
        """Advance one frame; returns the confirmed tracks matched in this frame, in id order."""
        boxes = np.array(boxes, np.float32).reshape(-1, 4)  # a copy: the tracks keep rows of it
        scores = np.asarray(scores, np.float32).reshape(-1)
        classes = np.asarray(classes, np.int64).reshape(-1)
        live = self.tracks + self._pending  # the Kalman bank's rows are in this order
        if self.kalman and live:
            pred = self._bank.predict()
        else:
            pred = np.array([tr.box for tr in live], np.float32).reshape(-1, 4)
        for tr, b in zip(live, pred):
            tr.box = b
        pairs = self._match(live, pred, boxes, classes)
        matched_t = np.zeros(len(live), bool)
        matched_d = np.zeros(len(boxes), bool)
        for ti, di in pairs:
            tr = live[ti]
            tr.box = tr.seen_box = boxes[di]
            tr.score = float(scores[di])
            tr.hits += 1
            tr.misses = 0
            tr.vote(int(classes[di]), scores[di])
            matched_t[ti] = matched_d[di] = True
        if self.kalman and pairs:
            self._bank.update([ti for ti, _ in pairs], boxes[[di for _, di in pairs]])
        for ti in np.flatnonzero(~matched_t).tolist():
            live[ti].misses += 1
        rows = {id(tr): k for k, tr in enumerate(live)}  # bank row of each live track
        new = np.flatnonzero(~matched_d).tolist()
        if self.kalman and new:
            self._bank.add(boxes[new])
        for k, di in enumerate(new):
            tr = Track(0, boxes[di], float(scores[di]))
            tr.vote(int(classes[di]), scores[di])
            rows[id(tr)] = len(live) + k
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
        if self.kalman:
            self._bank.keep([rows[id(tr)] for tr in self.tracks + self._pending])
        return sorted((tr for tr in self.tracks if tr.misses == 0), key=lambda tr: tr.id)

    def _match(self, live, pred, boxes, classes) -> list[tuple[int, int]]:
        if not len(live) or not len(boxes):
            return []
        allowed = None
        if self.per_class:
            allowed = np.array([tr.cls for tr in live])[:, None] == classes[None, :]
        iou = box_iou(pred, boxes)
        pairs = _greedy(iou if allowed is None else np.where(allowed, iou, 0.0), self.iou, set(), set())
        if self.max_distance > 0 and len(pairs) < min(len(live), len(boxes)):
            cp, cd = (pred[:, :2] + pred[:, 2:]) / 2, (boxes[:, :2] + boxes[:, 2:]) / 2
            wh = np.maximum(pred[:, 2:] - pred[:, :2], 1.0)
            size = np.sqrt(wh[:, 0] * wh[:, 1])
            # the Euclidean norm written out (what np.linalg.norm computes along an axis of 2)
            dx, dy = cp[:, 0, None] - cd[:, 0], cp[:, 1, None] - cd[:, 1]
            dist = np.sqrt(dx * dx + dy * dy) / size[:, None]
            # closeness in (0, 1]: 1 at the same centre, 1 / (1 + max_distance) at the limit
            close = 1.0 / (1.0 + dist)
            if allowed is not None:
                close = np.where(allowed, close, 0.0)
            pairs += _greedy(close, 1.0 / (1.0 + self.max_distance), {t for t, _ in pairs}, {d for _, d in pairs})
        return pairs


def _greedy(m: np.ndarray, floor: float, used_t: set, used_d: set) -> list[tuple[int, int]]:
    """Pairs (row, column) of ``m``, best value first, each row and column once, values >= floor.

    Ties go by (row, column) index, so the result is deterministic.
    """
    flat = np.flatnonzero(m >= floor)  # only these can pair: sort a handful, not the whole matrix
    order = flat[np.lexsort((flat, -m.ravel()[flat]))].tolist()
    pairs = []
    for f in order:
        ti, di = divmod(f, m.shape[1])
        if ti in used_t or di in used_d:
            continue
        pairs.append((ti, di))
        used_t.add(ti)
        used_d.add(di)
    return pairs
