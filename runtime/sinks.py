"""Where the video loop's results go: an annotated video, a JSONL event log, a window; and the run itself.

:func:`run_stream` drives a :class:`~edgekit.runtime.pipeline.Stream` into these sinks and
returns its summary; ``edgekit detect`` is a thin shell over it. A run ends at the end of the
source, after ``duration``, or on Ctrl-C / SIGTERM, and in every case the video is finalised
and the event log flushed: the video is written under a temporary name and renamed when
complete (an interrupted run never leaves half a file under the final name); the JSONL is
flushed line by line, so whatever happened before a crash is on disk.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import queue
import signal
import sys
import threading
from pathlib import Path

from edgekit.errors import EdgekitError

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class VideoSink:
    """An annotated video file, opened at the first frame (its size), renamed into place on :meth:`close`."""

    def __init__(self, path, fps: float):
        self.path = Path(path)
        if self.path.suffix.lower() not in FOURCC:
            raise EdgekitError(f"--save {self.path}: give a .mp4, .avi, .mkv or .mov file name")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = float(fps) if fps and fps > 0 else 10.0
        self.writer = None
        self.frames = 0

    def write(self, image) -> None:
        import cv2

        if self.writer is None:
            h, w = image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()]),
                                          self.fps, (w, h))
            if not self.writer.isOpened():
                raise EdgekitError(f"cannot write {self.path}: OpenCV has no encoder for it here; try a .avi name")
            self.size = (w, h)
        if (image.shape[1], image.shape[0]) != self.size:  # a folder of images of several sizes: one video size
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            os.replace(self.tmp, self.path)


class JsonlSink:
    """One JSON object per line, flushed as written."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.lines = 0

    def write(self, event: dict) -> None:
        self.f.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.f.flush()
        self.lines += 1

    def close(self) -> None:
        if not self.f.closed:
            self.f.close()


class Window:
    """An OpenCV window; a clear error where there is no display or OpenCV was built without one."""

    def __init__(self, title: str = "edgekit detect"):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise EdgekitError("--show needs a display and none is set (no DISPLAY/WAYLAND_DISPLAY): run headless "
                               "with --save out.mp4 / --jsonl events.jsonl, or log in with ssh -X")
        import cv2

        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise EdgekitError("--show: this OpenCV has no GUI (opencv-python-headless): install opencv-python, "
                               "or run headless with --save / --jsonl") from None
        self.title = title

    def show(self, image) -> bool:
        """Show a frame; False when the user pressed q or Esc."""
        import cv2

        cv2.imshow(self.title, image)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)


def run_stream(stream, save=None, jsonl=None, show: bool = False, on_result=None, handle_signals: bool = True) -> dict:
    """Drive ``stream`` to its end into the sinks; returns ``stream.summary()``.

    Args:
        stream: a :class:`~edgekit.runtime.pipeline.Stream` (from :func:`edgekit.runtime.stream`).
        save: write the annotated video here (.mp4/.avi/.mkv).
        jsonl: write the events here, one JSON object per line.
        show: show the annotated frames in a window (q or Esc stops).
        on_result: called with each :class:`~edgekit.runtime.pipeline.FrameResult` (progress, custom sinks).
        handle_signals: in the main thread, SIGTERM stops the run cleanly like Ctrl-C does.

    Example:
        >>> from edgekit.runtime import stream  # doctest: +SKIP
        >>> run_stream(stream("det.onnx", "clip.mp4", line="0,200,640,200"), save="out.mp4")  # doctest: +SKIP
        {'frames': 300, 'dropped': 0, 'fps_mean': 41.3, 'fps_p90': 37.9, 'counts': {...}, 'tracks': 12}
    """
    window = video = writer = log = previous = None
    try:
        window = Window() if show else None
        fps = (stream.source.fps or 10.0) / (1 if stream.source.live else stream.source.stride)
        video = VideoSink(save, stream.max_fps or fps) if save else None
        # drawing and encoding run in a thread of their own (OpenCV lets go of the GIL in both), overlapping
        # the next frame's inference; with a window the frame is drawn here, since the GUI wants this thread
        if video is not None:
            writer = Worker(video.write if window is not None else (lambda r: video.write(r.annotate())))
        log = JsonlSink(jsonl) if jsonl else None
        if handle_signals and threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: stream.stop())
        try:
            for r in stream:
                if log is not None:
                    for e in r.events:
                        log.write(e)
                if window is not None:
                    img = r.annotate()
                    if writer is not None:
                        writer.put(img)
                    if not window.show(img):
                        stream.stop()
                elif writer is not None:
                    writer.put(frozen(r))
                if on_result is not None:
                    on_result(r)
        except KeyboardInterrupt:
            stream.stop()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        failed = writer.close() if writer is not None else None  # every queued frame written, then the file
        for sink in (video, log, window):
            if sink is not None:
                sink.close()
        stream.close()  # the capture thread must end before the interpreter does
    if failed is not None:
        raise failed
    return stream.summary()


def frozen(result):
    """A copy of a :class:`~edgekit.runtime.pipeline.FrameResult` that the loop's next frames leave alone
    (the tracker updates its Track objects in place; their copies here keep this frame's boxes and scores).

    Example:
        >>> from edgekit.runtime.pipeline import FrameResult  # doctest: +SKIP
        >>> frozen(r).tracks[0] is not r.tracks[0]  # doctest: +SKIP
        True
    """
    return dataclasses.replace(result, tracks=[copy.copy(tr) for tr in result.tracks])


class Worker:
    """Calls ``fn(item)`` on each :meth:`put` item in a thread of its own, in order.

    The queue is short (``size`` items): a slow encoder slows the loop down rather than piling frames up
    in memory. An error in ``fn`` stops the work; the next :meth:`put` raises it, and :meth:`close`
    returns it.

    Example:
        >>> out = []
        >>> w = Worker(out.append)
        >>> for k in range(3): w.put(k)
        >>> w.close() is None, out
        (True, [0, 1, 2])
    """

    _STOP = object()

    def __init__(self, fn, size: int = 4, name: str = "edgekit-writer"):
        self.fn, self.error = fn, None
        self.queue: queue.Queue = queue.Queue(maxsize=size)
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is self._STOP:
                return
            if self.error is None:
                try:
                    self.fn(item)
                except Exception as exc:  # noqa: BLE001 - handed to the loop's thread, raised there
                    self.error = exc

    def put(self, item) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def close(self) -> Exception | None:
        """Finish the queued items and end the thread; the error that stopped the work, if any."""
        if self.thread.is_alive():
            self.queue.put(self._STOP)
            self.thread.join()
        return self.error
