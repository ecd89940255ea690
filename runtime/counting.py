"""Counting tracks: crossing a line (IN/OUT by direction) or entering a zone, per class, as events.

Both counters read a track's anchor point (its box centre by default, or the bottom centre,
where a person's feet are) once per frame and remember only the previous state of each live
track, so memory stays flat over hours (:meth:`forget` drops the tracks the tracker dropped).

**Direction of a line**: walk from its first point to its second on the image; ``in`` is a
crossing towards your right-hand side, ``out`` towards your left. A line drawn left to right
counts downward motion as ``in``; drawn top to bottom, leftward motion.

Example:
    >>> c = LineCounter((0, 50, 100, 50))
    >>> c.update(7, (10, 40), "fish"), c.update(7, (12, 60), "fish")
    (None, 'in')
    >>> c.counts
    {'fish': {'in': 1, 'out': 0}}
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import EdgekitError


def parse_points(text: str, what: str, minimum: int) -> list[tuple[float, float]]:
    """``"x1,y1,x2,y2,..."`` -> ``[(x1, y1), (x2, y2), ...]``; a clear error when it is not that.

    Example:
        >>> parse_points("0,10, 20,10", "--count-line", 2)
        [(0.0, 10.0), (20.0, 10.0)]
    """
    try:
        vals = [float(v) for v in text.replace(";", ",").replace(" ", ",").split(",") if v.strip()]
    except ValueError:
        vals = []
    if len(vals) < 2 * minimum or len(vals) % 2:
        raise EdgekitError(f"{what} {text!r}: give {'x1,y1,x2,y2' if minimum == 2 else 'x1,y1,x2,y2,x3,y3,...'} "
                           f"in pixels ({minimum}{'' if minimum == 2 else ' or more'} points)")
    return [(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)]


def anchor_point(box, anchor: str = "center") -> tuple[float, float]:
    """The point of an xyxy box a counter follows: ``center`` or ``bottom`` (bottom centre)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return ((x1 + x2) / 2, y2 if anchor == "bottom" else (y1 + y2) / 2)


class LineCounter:
    """Counts tracks crossing the segment ``(x1, y1, x2, y2)``: ``in`` and ``out`` per class.

    A crossing is the anchor's move from one side to the other whose path meets the segment
    itself (not its extension). ``margin`` (pixels) is a hysteresis band: a side is only
    taken when the point is farther than that from the line, so a box jittering on the
    line is not counted back and forth.
    """

    kind = "line"

    def __init__(self, line, margin: float = 0.0):
        pts = parse_points(line, "--count-line", 2) if isinstance(line, str) else [tuple(map(float, line[:2])),
                                                                                  tuple(map(float, line[2:4]))]
        if len(pts) != 2 or pts[0] == pts[1]:
            raise EdgekitError(f"--count-line {line!r}: give two different points x1,y1,x2,y2")
        self.p1, self.p2 = np.array(pts[0]), np.array(pts[1])
        self.margin = float(margin)
        self._side: dict[int, tuple[int, np.ndarray]] = {}  # track id -> (side, point where it was taken)
        self.counts: dict[str, dict[str, int]] = {}

    def _signed(self, p: np.ndarray) -> float:
        d = self.p2 - self.p1
        # image y points down, so a positive cross product is the right-hand side of p1 -> p2
        return float((d[0] * (p[1] - self.p1[1]) - d[1] * (p[0] - self.p1[0])) / np.hypot(*d))

    def _meets_segment(self, a: np.ndarray, b: np.ndarray) -> bool:
        # the path a -> b crosses the line between p1 and p2 (parameter along the segment in [0, 1])
        d, e = self.p2 - self.p1, b - a
        den = e[0] * d[1] - e[1] * d[0]
        if den == 0:
            return False
        u = ((self.p1[0] - a[0]) * e[1] - (self.p1[1] - a[1]) * e[0]) / den
        return -1e-9 <= u <= 1 + 1e-9

    def update(self, track_id: int, point, name: str) -> str | None:
        """Feed a track's anchor; returns ``"in"``/``"out"`` when it crossed, else None."""
        p = np.asarray(point, np.float64)
        s = self._signed(p)
        if abs(s) <= self.margin:
            return None
        side = 1 if s > 0 else -1
        prev = self._side.get(track_id)
        self._side[track_id] = (side, p)
        if prev is None or prev[0] == side or not self._meets_segment(prev[1], p):
            return None
        event = "in" if side > 0 else "out"
        c = self.counts.setdefault(name, {"in": 0, "out": 0})
        c[event] += 1
        return event

    def forget(self, track_ids) -> None:
        for k in track_ids:
            self._side.pop(k, None)

    def draw_points(self) -> list[tuple[int, int]]:
        return [tuple(int(round(v)) for v in self.p1), tuple(int(round(v)) for v in self.p2)]


def inside_polygon(point, polygon: np.ndarray) -> bool:
    """Whether a point is inside a polygon (even-odd rule; points on an edge may go either way).

    Example:
        >>> sq = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
        >>> inside_polygon((5, 5), sq), inside_polygon((15, 5), sq)
        (True, False)
    """
    x, y = float(point[0]), float(point[1])
    xs, ys = polygon[:, 0], polygon[:, 1]
    xj, yj = np.roll(xs, 1), np.roll(ys, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        hit = ((ys > y) != (yj > y)) & (x < (xj - xs) * (y - ys) / (yj - ys) + xs)
    return bool(np.count_nonzero(hit) % 2)


class ZoneCounter:
    """Counts tracks entering a polygon zone, per class (each track at most once); ``exit`` events too.

    A track first seen inside the zone counts as entering it (a fish appearing in the zone
    was not there before).

    Example:
        >>> z = ZoneCounter("0,0,10,0,10,10,0,10")
        >>> z.update(1, (20, 5), "fish"), z.update(1, (5, 5), "fish"), z.update(1, (25, 5), "fish")
        (None, 'enter', 'exit')
        >>> z.counts
        {'fish': 1}
    """

    kind = "zone"

    def __init__(self, polygon):
        pts = parse_points(polygon, "--count-zone", 3) if isinstance(polygon, str) else [tuple(map(float, p)) for p in polygon]
        if len(pts) < 3:
            raise EdgekitError(f"--count-zone {polygon!r}: a zone needs 3 points or more")
        self.polygon = np.array(pts, np.float64)
        self._inside: dict[int, bool] = {}
        self._counted: set[int] = set()
        self.counts: dict[str, int] = {}

    def update(self, track_id: int, point, name: str) -> str | None:
        """Feed a track's anchor; returns ``"enter"``/``"exit"`` on a change, else None."""
        now = inside_polygon(point, self.polygon)
        before = self._inside.get(track_id, False)
        self._inside[track_id] = now
        if now and not before:
            if track_id not in self._counted:
                self._counted.add(track_id)
                self.counts[name] = self.counts.get(name, 0) + 1
            return "enter"
        if before and not now:
            return "exit"
        return None

    @property
    def occupancy(self) -> int:
        """Tracks inside the zone now."""
        return sum(self._inside.values())

    def forget(self, track_ids) -> None:
        for k in track_ids:
            self._inside.pop(k, None)
            self._counted.discard(k)

    def draw_points(self) -> list[tuple[int, int]]:
        return [(int(round(x)), int(round(y))) for x, y in self.polygon]
