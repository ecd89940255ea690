"""The video loop: a source in, detections, tracks, counts and events out, one :class:`FrameResult` a frame.

``stream(model, source, ...)`` is the public iterator a ten-line script on a board is built on::

    from edgekit.runtime import stream

    with stream("fish-tflite-int8.tflite", "picamera2", track=True, line=(0, 240, 640, 240)) as s:
        for r in s:                      # r.detections, r.tracks, r.events, r.counts, r.fps
            for e in r.events:
                print(e)                 # {"t": 3.2, "frame": 32, "track_id": 4, "class": "fish", "event": "in", ...}
    print(s.summary())                   # {"frames", "dropped", "fps_mean", "fps_p90", "counts", "tracks"}

With ``classifier`` (the two-stage mode), each track's crops go through the classifier and the
track's species is the top class of the *mean probability* over its crops; when that mean is
under the classifier's calibrated "unsure" threshold (its manifest's ``reject.thresholds``, as
``edgekit calibrate-reject`` writes them) the track is ``unsure`` and counted so, never forced
into a species. Without a classifier a track's class is the detector's score-weighted vote.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.counting import LineCounter, ZoneCounter, anchor_point
from edgekit.runtime.detector import Detector
from edgekit.runtime.loader import load
from edgekit.runtime.results import Detections
from edgekit.runtime.tracker import Track, Tracker
from edgekit.runtime.video import Frame, VideoSource, open_source

UNSURE = "unsure"


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t0) * 1e3


class RateStats:
    """Frame intervals in a fixed log-spaced histogram (flat memory over hours): mean and p90 FPS.

    ``fps_p90`` is the rate that 90 % of frames met or beat: ``1 / p90(interval)``, to within 1 %
    (the bin width).

    Example:
        >>> r = RateStats()
        >>> for _ in range(9): r.add(0.1)
        >>> r.add(1.0)
        >>> round(r.fps_p90), round(r.fps_mean, 2)
        (10, 5.26)
    """

    EDGES = np.geomspace(1e-5, 1e3, 1601)  # 0.7 % wide bins from 10 us to 1000 s

    def __init__(self):
        self.hist = np.zeros(len(self.EDGES) + 1, np.int64)
        self.n, self.total = 0, 0.0

    def add(self, dt: float) -> None:
        self.hist[int(np.searchsorted(self.EDGES, dt))] += 1
        self.n += 1
        self.total += dt

    @property
    def fps_mean(self) -> float:
        return self.n / self.total if self.total > 0 else 0.0

    @property
    def fps_p90(self) -> float:
        if not self.n:
            return 0.0
        k = int(np.searchsorted(np.cumsum(self.hist), int(np.ceil(0.9 * self.n))))
        edges = np.concatenate([[self.EDGES[0]], self.EDGES, [self.EDGES[-1]]])
        return float(1.0 / np.sqrt(edges[k] * edges[k + 1]))  # the bin's geometric middle


@dataclass
class FrameResult:
    """What the loop made of one frame.

    Attributes:
        frame: the :class:`~edgekit.runtime.video.Frame` (``index``, ``t``, ``image``).
        detections: the detector's output on it.
        tracks: the tracks matched in it (empty without tracking).
        events: event dicts (``t``, ``frame``, ``track_id``, ``class``, ``event``, ``label_confidence``).
        counts: the running counts (the summary's ``counts``).
        fps: the loop's frame rate, smoothed.
        timing: the model's ``pre_ms``/``infer_ms``/``post_ms`` for this frame (``pre_overlapped``: the
            preprocessing ran in the capture thread, during the previous frame's inference).
    """

    frame: Frame
    detections: Detections
    tracks: list[Track] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    fps: float = 0.0
    timing: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)  # track id -> class name (species or "unsure" with a classifier)
    counter: object = None

    def annotate(self) -> np.ndarray:
        """The frame with boxes, labels, track ids, the counting line/zone, counts and FPS drawn."""
        from edgekit.runtime.overlay import annotate

        return annotate(self)


class _Species:
    """Per-track mean classifier probabilities and the reject decision (two-stage mode)."""

    def __init__(self, classifier, max_crops: int = 16, pad: float = 0.1):
        if getattr(classifier, "task", None) != "classify":
            raise EdgekitError("--classify needs a classifier artifact (its manifest's task is 'classify')")
        self.clf, self.max_crops, self.pad = classifier, int(max_crops), float(pad)
        self.names = list(classifier.names)
        th = classifier.reject_thresholds
        self.thresholds = None if th is None else np.broadcast_to(np.asarray(th, np.float64), (len(self.names),))
        self.sums: dict[int, np.ndarray] = {}
        self.n: dict[int, int] = {}

    def observe(self, image: np.ndarray, track: Track) -> None:
        if self.n.get(track.id, 0) >= self.max_crops:
            return
        h, w = image.shape[:2]
        x1, y1, x2, y2 = track.box
        px, py = (x2 - x1) * self.pad, (y2 - y1) * self.pad
        x1, y1 = int(max(0, x1 - px)), int(max(0, y1 - py))
        x2, y2 = int(min(w, x2 + px)), int(min(h, y2 + py))
        if x2 - x1 < 2 or y2 - y1 < 2:
            return
        c = self.clf.predict_one(image[y1:y2, x1:x2], k=len(self.names), unsure=False)
        probs = np.zeros(len(self.names))
        probs[c.classes] = c.scores
        self.sums[track.id] = self.sums.get(track.id, 0) + probs
        self.n[track.id] = self.n.get(track.id, 0) + 1

    def decide(self, track_id: int) -> tuple[str, float]:
        """(species name or "unsure", mean probability of the top species) over the crops seen so far."""
        if track_id not in self.n:
            return UNSURE, 0.0
        mean = self.sums[track_id] / self.n[track_id]
        top = int(np.argmax(mean))
        p = float(mean[top])
        if self.thresholds is not None and p < self.thresholds[top]:
            return UNSURE, p
        return self.names[top], p

    def forget(self, ids) -> None:
        for k in ids:
            self.sums.pop(k, None)
            self.n.pop(k, None)


class Stream:
    """The loop over a source; iterate it for :class:`FrameResult`; :meth:`summary` at any time.

    Built by :func:`stream`; see there for the arguments. Three threads share the work: the capture
    thread reads frame n+2 and (files) letterboxes it, an inference thread runs the interpreter on
    frame n+1, and the iterating thread decodes, tracks and counts frame n (``overlap=False``: inference
    in the iterating thread too; ``prepare_ahead=False``: letterboxing too). The interpreter and OpenCV
    let go of the GIL, so on two cores or more only inference stays on the critical path; the results
    are the same, frame for frame.
    """

    def __init__(self, model, source: VideoSource, conf=0.25, iou=0.45, classes=None, track=False, line=None,
                 zone=None, anchor="center", max_fps=None, duration=None, classifier=None, tracker=None,
                 prepare_ahead: bool = True, overlap: bool = True):
        if getattr(model, "task", None) != "detect":
            raise EdgekitError("the model is not a detector (its task is "
                               f"{getattr(model, 'task', None)!r}): give a detector; a classifier goes to --classify")
        if line is not None and zone is not None:
            raise EdgekitError("give --count-line or --count-zone, not both")
        self.model, self.source = model, source
        self.options = {"conf": conf, "iou": iou, "classes": classes}
        self.counter = LineCounter(line) if line is not None else ZoneCounter(zone) if zone is not None else None
        self.species = _Species(classifier) if classifier is not None else None
        track = bool(track or self.counter is not None or self.species is not None)
        self.tracker = tracker or (Tracker() if track else None)
        self.anchor, self.max_fps, self.duration = anchor, max_fps, duration
        self.frames, self.rates = 0, RateStats()
        self.track_counts: dict[str, int] = {}  # tracks per class, counted when they end (no line/zone)
        self._stopped = False
        self._ahead = False
        runner = getattr(model, "runner", None)
        if prepare_ahead and not source.live and isinstance(model, Detector):
            # the capture thread letterboxes and quantises frame n+1 while the interpreter runs frame n
            self._ahead = True
            source.transform = lambda img: _timed(runner.prepare, img)
        # the interpreter runs frame n+1 in a thread of its own while this thread decodes, tracks and counts
        # frame n (the interpreter lets go of the GIL): only inference stays on the loop's critical path
        self._overlap = bool(overlap) and callable(getattr(model, "infer", None)) and callable(getattr(model, "finish", None))
        self.ended = None  # why the loop ended: "end", "duration", "stopped", or an error message

    def name_of(self, tr: Track) -> tuple[str, float]:
        """The track's class name and label confidence (species decision with a classifier)."""
        if self.species is not None:
            return self.species.decide(tr.id)
        names = self.model.names
        return (str(names[tr.cls]) if 0 <= tr.cls < len(names) else str(tr.cls)), tr.label_confidence

    def _event(self, frame: Frame, tr: Track, event: str) -> dict:
        name, conf = self.name_of(tr)
        return {"t": round(float(frame.t), 3), "frame": int(frame.index), "track_id": int(tr.id), "class": name,
                "event": event, "label_confidence": round(conf, 4),
                "box": [round(float(v), 1) for v in tr.seen_box]}

    def _track(self, frame: Frame, det: Detections) -> tuple[list[Track], list[dict]]:
        seen_before = self.tracker.next_id
        tracks = self.tracker.update(det.boxes, det.scores, det.classes)
        if self.species is not None:
            for tr in tracks:
                self.species.observe(frame.image, tr)
        events = [self._event(frame, tr, "new") for tr in tracks if tr.id >= seen_before]
        if self.counter is not None:
            for tr in tracks:
                name = self.name_of(tr)[0]
                ev = self.counter.update(tr.id, anchor_point(tr.box, self.anchor), name)
                if ev:
                    events.append(self._event(frame, tr, ev))
        gone = self.tracker.removed
        for tr in gone:
            events.append(self._event(frame, tr, "lost"))
            self._count_track(tr)
        ids = [tr.id for tr in gone]
        if self.counter is not None:
            self.counter.forget(ids)
        if self.species is not None:
            self.species.forget(ids)
        return tracks, events

    def _count_track(self, tr: Track) -> None:
        name = self.name_of(tr)[0]
        self.track_counts[name] = self.track_counts.get(name, 0) + 1

    @property
    def counts(self) -> dict:
        """Line: ``{class: {"in", "out"}}``; zone: ``{class: n}``; tracking only: tracks per class."""
        if self.counter is not None:
            counts = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.counter.counts.items()}
        elif self.tracker is not None:
            counts = dict(self.track_counts)
            for tr in self.tracker.tracks:  # the tracks still alive count too
                name = self.name_of(tr)[0]
                counts[name] = counts.get(name, 0) + 1
        else:
            return {}
        if self.species is not None and UNSURE not in counts:
            counts[UNSURE] = {"in": 0, "out": 0} if isinstance(self.counter, LineCounter) else 0
        return dict(sorted(counts.items()))

    def _frames(self, start: float):
        """The frames to run on: ``max_fps`` pacing, the duration limit; ends at the source's end or on stop."""
        next_slot = start
        while not self._stopped:
            if self.max_fps:  # hold the rate: at most one frame per 1/max_fps seconds
                now = time.monotonic()
                if next_slot > now:
                    time.sleep(next_slot - now)
                next_slot = max(now, next_slot) + 1.0 / self.max_fps
            if self.duration is not None and self.source.live and time.monotonic() - start >= self.duration:
                self.ended = "duration"
                return
            frame = self.source.read(timeout=0.5)
            if frame is None:
                if self.source.finished:
                    return
                continue
            if self.duration is not None and not self.source.live and frame.t >= self.duration:
                self.ended = "duration"
                return
            yield frame

    def _prepared(self, frame: Frame):
        if self._ahead and frame.prepared is not None:
            prepared, pre_ms = frame.prepared
            return prepared, {"pre_ms": pre_ms, "pre_overlapped": True}
        return None, {}

    def _detected_in_turn(self, start: float):
        """(frame, detections, timing), one frame after the other in this thread."""
        for frame in self._frames(start):
            prepared, extra = self._prepared(frame)
            if prepared is not None:
                det = self.model.predict_one(frame.image, prepared=prepared, **self.options)
            else:
                det = self.model.predict_one(frame.image, **self.options)
            yield frame, det, {**getattr(self.model, "last_timing", {}), **extra}

    def _detected_overlapped(self, start: float):
        """(frame, detections, timing) with the interpreter in a thread of its own, one frame ahead.

        The inference thread reads frames and runs :meth:`Detector.infer` on each into a queue of two; this
        thread runs :meth:`Detector.finish` (decoding, NMS) on them in order, then the caller tracks and
        counts: the same detections, in the same order, as :meth:`_detected_in_turn`.
        """
        done = object()
        handoff: queue.Queue = queue.Queue(maxsize=2)
        halt = threading.Event()

        def put(item) -> bool:
            while not halt.is_set():
                try:
                    handoff.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for frame in self._frames(start):
                    prepared, extra = self._prepared(frame)
                    if not put((frame, self.model.infer(frame.image, prepared), extra)) or halt.is_set():
                        return
            except BaseException as exc:  # noqa: BLE001 - raised in the loop's thread
                put((done, exc, None))
                return
            put((done, None, None))

        worker = threading.Thread(target=work, name="edgekit-infer", daemon=True)
        worker.start()
        try:
            while True:
                frame, inferred, extra = handoff.get()
                if frame is done:
                    if inferred is not None:
                        raise inferred
                    return
                det = self.model.finish(inferred, **self.options)
                yield frame, det, {**self.model.last_timing, **extra, "post_overlapped": True}
        finally:
            halt.set()
            worker.join(timeout=10)

    def __iter__(self):
        start = last = time.monotonic()
        ema = 0.0
        try:
            detected = self._detected_overlapped(start) if self._overlap else self._detected_in_turn(start)
            for frame, det, timing in detected:
                tracks, events = self._track(frame, det) if self.tracker is not None else ([], [])
                self.frames += 1
                now = time.monotonic()
                dt, last = max(now - last, 1e-6), now
                self.rates.add(dt)
                ema = 1 / dt if ema == 0 else 0.9 * ema + 0.1 / dt
                yield FrameResult(frame, det, tracks, events, self.counts, ema, timing,
                                  {tr.id: self.name_of(tr)[0] for tr in tracks}, self.counter)
                if self._stopped:
                    break
        finally:
            if "detected" in locals():
                detected.close()  # ends the inference thread before the source closes under it
            if self.ended is None:
                self.ended = "stopped" if self._stopped else (self.source.error or "end")
            self.source.close()  # the capture thread ends with the loop, even in a script without `with`
        if self.frames == 0 and not self._stopped and self.ended != "duration":
            why = "" if self.ended == "end" else f" ({self.ended})"
            raise EdgekitError(f"no frame could be read from the source{why}: check it plays (e.g. with ffplay)")

    def stop(self) -> None:
        """End the loop after the current frame (safe from a signal handler)."""
        self._stopped = True
        self.source.stop()

    def summary(self) -> dict:
        """``{"frames", "dropped", "fps_mean", "fps_p90", "counts", "tracks"}`` so far."""
        return {"frames": self.frames, "dropped": int(self.source.dropped),
                "fps_mean": round(self.rates.fps_mean, 2), "fps_p90": round(self.rates.fps_p90, 2),
                "counts": self.counts, "tracks": (self.tracker.next_id - 1) if self.tracker is not None else 0}

    def close(self) -> None:
        self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def stream(model, source, *, conf: float = 0.25, iou: float = 0.45, classes=None, track: bool = False,
           line=None, zone=None, anchor: str = "center", stride: int = 1, max_fps: float | None = None,
           duration: float | None = None, classifier=None, reconnect_s: float = 30.0, loop: bool = False,
           **load_options) -> Stream:
    """Run a detector over a video, camera, stream or image folder: an iterator of :class:`FrameResult`.

    Args:
        model: a detector artifact path, or a model from :func:`edgekit.runtime.load`.
        source: a video file, folder/glob of images, camera index or ``/dev/videoN``, stream URL, or
            ``"picamera2"`` (see :mod:`edgekit.runtime.video`).
        conf, iou, classes: the detector's score threshold, NMS IoU and class filter.
        track: follow objects with stable ids (on by itself with ``line``, ``zone`` or ``classifier``).
        line: count crossings of ``(x1, y1, x2, y2)`` (or ``"x1,y1,x2,y2"``), ``in``/``out`` per class.
        zone: count tracks entering a polygon (``[(x, y), ...]`` or ``"x1,y1,x2,y2,x3,y3,..."``).
        anchor: the point of a box that counts: ``center`` or ``bottom``.
        stride: files: every ``stride``-th frame. max_fps: cap the loop's rate.
        duration: stop after this many seconds (source time for files, wall time for live sources).
        classifier: a classifier artifact path or model: two-stage species with "unsure".
        reconnect_s: live sources: give up after this long without a frame.
        loop: files and image folders: start again at the end (stop with ``duration`` or :meth:`Stream.stop`).
        **load_options: ``backend``, ``threads``, ``delegate``... for :func:`edgekit.runtime.load`.

    Example:
        >>> with stream("det.tflite", "clip.mp4", line=(0, 200, 640, 200)) as s:  # doctest: +SKIP
        ...     for r in s:
        ...         print(r.frame.index, len(r.tracks), r.events)
        >>> s.summary()["counts"]  # doctest: +SKIP
        {'person': {'in': 3, 'out': 1}}
    """
    det = load(model, **load_options) if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__") else model
    clf = load(classifier, **load_options) if isinstance(classifier, str) or hasattr(classifier, "__fspath__") else classifier
    src = open_source(source, stride=stride, reconnect_s=reconnect_s, loop=loop)
    try:
        return Stream(det, src, conf=conf, iou=iou, classes=classes, track=track, line=line, zone=zone, anchor=anchor,
                      max_fps=max_fps, duration=duration, classifier=clf)
    except BaseException:
        src.close()
        raise
