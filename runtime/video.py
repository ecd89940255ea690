"""Frame sources for the video loop: files, image folders, cameras, streams, the Pi camera.

``open_source(spec)`` understands:

- a video file (``clip.mp4``): every frame, in order, or every ``stride``-th;
- a folder of images or a glob (``frames/``, ``"frames/*.jpg"``): in natural order (``f9`` before ``f10``);
- a camera index (``0``) or a V4L2 device (``/dev/video0``), through OpenCV;
- a stream URL (``rtsp://``, ``http(s)://``, ``tcp://``, ``udp://``), through OpenCV's FFmpeg;
- ``picamera2`` (or ``picam``): the Raspberry Pi camera, when the picamera2 package is installed.

Capture runs in its own thread. A *live* source (camera, stream, Pi camera) keeps only the
newest frame: the loop always infers on the latest picture and frames it had no time for are
counted in ``dropped``; a live source that fails is reopened with back-off (0.5 s doubling to
8 s) until ``reconnect_s`` passes without a frame. A *file* source decodes ahead into a short
queue and never drops a frame, so inference overlaps decoding. OpenCV and picamera2 are
imported when a source opens (numpy only at module level).

Example:
    >>> with open_source("clip.mp4", stride=2) as src:  # doctest: +SKIP
    ...     for f in src:
    ...         print(f.index, f.t, f.image.shape)
"""

from __future__ import annotations

import glob
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.model import IMAGE_SUFFIXES
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "tcp://", "udp://", "srt://")
PICAMERA = ("picamera2", "picam", "picamera")
_END = object()


@dataclass
class Frame:
    """One captured frame: its number in the source (0-based, counting dropped and skipped ones),
    its time in seconds (source time for files: ``index / fps``; wall time since the start for live
    sources) and the BGR uint8 image."""

    index: int
    t: float
    image: np.ndarray
    prepared: object = None  # what the source's ``transform`` made of the image in the capture thread


class _Reader:
    """Opens and reads one kind of source; ``read()`` -> BGR image or None at the end / on failure."""

    live = False
    fps: float | None = None

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def skip(self) -> bool:
        """Advance one frame without decoding it (files); False at the end."""
        return self.read() is not None

    def close(self) -> None: ...


class _OpenCVReader(_Reader):
    def __init__(self, target, live: bool, what: str, hint: str):
        self.target, self.live, self.what, self.hint = target, live, what, hint
        self.cap = None

    def open(self) -> None:
        import cv2

        if isinstance(self.target, int) or str(self.target).startswith("/dev/video"):
            cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
        else:
            # a stream that stops sending must not block read() for ever: reconnecting needs it to fail
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, params) if self.live else cv2.VideoCapture(str(self.target))
        if not cap.isOpened():
            cap.release()
            raise EdgekitError(f"cannot open {self.what} {self.target}: {self.hint}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        self.cap = cap

    def read(self):
        ok, img = self.cap.read() if self.cap is not None else (False, None)
        return img if ok and img is not None else None

    def skip(self) -> bool:
        return bool(self.cap is not None and self.cap.grab())

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class _ImagesReader(_Reader):
    def __init__(self, files: list[Path]):
        self.files, self.k = files, 0

    def open(self) -> None:
        self.k = 0

    def read(self):
        from edgekit.runtime.model import read_image

        if self.k >= len(self.files):
            return None
        self.k += 1
        return read_image(self.files[self.k - 1])

    def skip(self) -> bool:
        self.k += 1
        return self.k <= len(self.files)


class _PiCameraReader(_Reader):
    live = True

    def __init__(self, size=(640, 480)):
        self.size, self.cam = size, None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise EdgekitError("picamera2 is not installed: on Raspberry Pi OS, `sudo apt install python3-picamera2` "
                               "and create the venv with --system-site-packages") from None
        try:
            cam = Picamera2()
            # libcamera's "RGB888" is B, G, R in memory: what OpenCV and the models expect
            cam.configure(cam.create_video_configuration(main={"format": "RGB888", "size": tuple(self.size)}))
            cam.start()
        except Exception as exc:  # libcamera raises RuntimeError/IndexError when no camera is connected
            raise EdgekitError(f"cannot start the Pi camera through picamera2 ({exc}): check the ribbon cable "
                               "and that no other program holds the camera") from None
        self.cam = cam

    def read(self):
        try:
            return np.ascontiguousarray(self.cam.capture_array()[..., :3])
        except Exception:
            return None

    def close(self) -> None:
        if self.cam is not None:
            self.cam.stop()
            self.cam.close()
            self.cam = None


def natural_key(path: Path) -> list:
    """Sort key that orders numbers by value: ``frame2.jpg`` before ``frame10.jpg``.

    Example:
        >>> sorted(["f10.jpg", "f9.jpg", "f100.jpg"], key=natural_key)
        ['f9.jpg', 'f10.jpg', 'f100.jpg']
    """
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(path)) if t]


def _image_files(spec: str) -> list[Path] | None:
    p = Path(spec)
    if p.is_dir():
        return sorted((f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if any(ch in spec for ch in "*?["):
        return sorted((Path(f) for f in glob.glob(spec) if Path(f).suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    return None


def make_reader(spec) -> _Reader:
    """The reader for a source spec (see the module docstring); a clear error for one that cannot exist."""
    s = str(spec).strip()
    if isinstance(spec, int) or s.isdigit():
        return _OpenCVReader(int(s), True, "camera",
                             "check that it exists (ls /dev/video*) and no other program holds it")
    if s.startswith("/dev/video"):
        return _OpenCVReader(s, True, "camera", "check that it exists (ls /dev/video*) and no other program holds it")
    if s.lower() in PICAMERA:
        return _PiCameraReader()
    if s.lower().startswith(URL_SCHEMES):
        return _OpenCVReader(s, True, "stream", "check the URL and that the server is up (OpenCV reads it through FFmpeg)")
    files = _image_files(s)
    if files is not None:
        if not files:
            raise EdgekitError(f"no images in {s}: give a folder or glob of .jpg/.png files")
        return _ImagesReader(files)
    if not Path(s).is_file():
        raise EdgekitError(f"{s} does not exist: give a video file, a folder or glob of images, a camera index "
                           "(0, /dev/video0), a stream URL (rtsp://, http://, tcp://) or picamera2")
    return _OpenCVReader(s, False, "video", "give a video file OpenCV can decode (.mp4, .avi, .mkv)")


class VideoSource:
    """A source opened for reading, with its capture thread; iterate for :class:`Frame` objects.

    Attributes:
        live: frames come in real time (only the newest is kept).
        fps: the source's frame rate when it reports one.
        dropped: live frames overwritten before the loop took them.
        reconnects: times a live source was reopened after failing.
    """

    def __init__(self, reader: _Reader, stride: int = 1, reconnect_s: float = 30.0, queue_size: int = 4,
                 loop: bool = False):
        if stride < 1:
            raise EdgekitError(f"--stride {stride}: give 1 (every frame) or more")
        self.reader, self.stride, self.reconnect_s = reader, int(stride), float(reconnect_s)
        self.loop = bool(loop) and not reader.live
        self.live = reader.live
        reader.open()  # a source that cannot open at all is an error now, not a reconnect loop
        self.fps = reader.fps
        self.dropped = self.reconnects = 0
        self.error: str | None = None
        # files: called on each frame in the capture thread (the loop sets the model's preprocessing here,
        # so it overlaps the previous frame's inference); live sources never call it (most frames are dropped)
        self.transform = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._done = False
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._t0 = time.monotonic()
        # started by the first read, so a transform set after opening applies from the first frame
        self._thread = threading.Thread(target=self._capture_live if self.live else self._capture_file,
                                        name="edgekit-capture", daemon=True)

    # -- capture threads ------------------------------------------------------------------------
    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _capture_file(self) -> None:
        fps = self.fps or 1.0
        index = 0
        try:
            while not self._stop.is_set():
                img = self.reader.read()
                if img is None and self.loop and index > 0:  # start again (a demo kiosk, a soak test)
                    self.reader.close()
                    self.reader.open()
                    img = self.reader.read()
                if img is None:
                    break
                transform = self.transform
                extra = transform(img) if transform is not None else None
                if not self._put(Frame(index, index / fps if self.fps else float(index), img, extra)):
                    return
                for _ in range(self.stride - 1):  # skipped frames are grabbed, not decoded
                    index += 1
                    if not self.reader.skip() and not self.loop:
                        self._put(_END)
                        return
                index += 1
        except Exception as exc:  # noqa: BLE001 - the loop must end and say why, not wait for ever
            self.error = str(exc) if isinstance(exc, EdgekitError) else f"capture failed: {type(exc).__name__}: {exc}"
        self._put(_END)

    def _capture_live(self) -> None:
        try:
            self._live_loop()
        except Exception as exc:  # noqa: BLE001 - the loop must end and say why, not wait for ever
            self.error = f"capture failed: {type(exc).__name__}: {exc}"
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def _live_loop(self) -> None:
        index, backoff, last_ok = 0, 0.5, time.monotonic()
        while not self._stop.is_set():
            img = self.reader.read()
            if img is None:
                if time.monotonic() - last_ok > self.reconnect_s:
                    self.error = f"the source gave no frame for {self.reconnect_s:g} s (reconnecting did not help)"
                    break
                self.reader.close()
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, 8.0)
                try:
                    self.reader.open()
                    self.reconnects += 1
                except EdgekitError:
                    pass
                continue
            backoff, last_ok = 0.5, time.monotonic()
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1
                self._latest = Frame(index, last_ok - self._t0, img)
                self._cond.notify_all()
            index += 1

    # -- the consumer side ---------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """No frame will come any more (the end of a file, a live source given up on, or :meth:`stop`)."""
        return self._stop.is_set() or self._done and (self.live is False or self._latest is None)

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame (live: the newest one); None at the end, when stopped, or after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._thread.ident is None and not self._stop.is_set():
            self._thread.start()
        if self.live:
            with self._cond:
                while self._latest is None and not self._done and not self._stop.is_set():
                    left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                    if left <= 0:
                        return None
                    self._cond.wait(left)
                frame, self._latest = self._latest, None
                return frame
        while not self._stop.is_set() and not self._done:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if deadline is not None and time.monotonic() > deadline:
                    return None
                continue
            if item is _END:
                self._done = True
                return None
            return item
        return None

    def __iter__(self):
        while not self.finished:
            f = self.read()
            if f is not None:
                yield f

    def stop(self) -> None:
        """Ask the capture thread to end (safe from a signal handler); :meth:`close` waits for it."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        self.stop()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)
        self.reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_source(spec, stride: int = 1, reconnect_s: float = 30.0, loop: bool = False) -> VideoSource:
    """Open a frame source (see the module docstring) and start its capture thread.

    Args:
        spec: a path, glob, camera index, ``/dev/videoN``, stream URL or ``picamera2``.
        stride: files and image folders: process every ``stride``-th frame (live sources always
            take the newest frame; limit their rate with ``max_fps`` in the loop instead).
        reconnect_s: live sources: give up after this long without a frame.
        loop: files and image folders: start again at the end, for ever (until stopped).

    Example:
        >>> open_source("no-such.mp4")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        edgekit.errors.EdgekitError: no-such.mp4 does not exist: give a video file, ...
    """
    return VideoSource(make_reader(spec), stride=stride, reconnect_s=reconnect_s, loop=loop)
