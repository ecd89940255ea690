"""A live TCP stream from a local ffmpeg drops mid-way and comes back: the loop reconnects and keeps counting.

Needs Debian's ``ffmpeg`` (``apt-get install -y ffmpeg``, which .ci/run does); skipped with that
reason where it is absent. The server is ffmpeg with ``-listen 1`` serving the generated movers
video as MPEG-TS, looped in real time (``-re``); the loop reads it through OpenCV as a live
source, so it keeps only the newest frame and counts what it drops.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import pytest

from edgekit.errors import EdgekitError
from edgekit.runtime.pipeline import Stream
from edgekit.runtime.video import open_source
from tests.runtime.video_helpers import LINE, ColorDetector, make_video

FFMPEG = shutil.which("ffmpeg")
pytestmark = [pytest.mark.network,
              pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed: apt-get install -y ffmpeg")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(video, port) -> subprocess.Popen:
    return subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(video),
                             "-c:v", "mpeg2video", "-q:v", "2", "-g", "5", "-f", "mpegts", "-listen", "1",
                             f"tcp://127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_stream_drops_and_reconnects_without_losing_counts(tmp_path):
    video = make_video(tmp_path / "movers.avi")
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    server = _serve(video, port)
    try:
        src = None
        for _ in range(100):  # the server listens once ffmpeg has started (a probe would take its one client)
            try:
                src = open_source(url, reconnect_s=20)
                break
            except EdgekitError:
                time.sleep(0.1)
        assert src is not None and src.live
        s = Stream(ColorDetector(), src, line=LINE)
        crossings = []

        def loop():
            for r in s:
                crossings.append(sum(v["in"] + v["out"] for v in r.counts.values()))

        t = threading.Thread(target=loop)
        t.start()
        _wait(lambda: crossings and crossings[-1] >= 1, 20, "a first crossing")
        server.kill()  # the stream drops mid-video
        server.wait()
        before, frames_before = crossings[-1], s.frames
        time.sleep(0.3)
        server = _serve(video, port)
        _wait(lambda: src.reconnects >= 1 and crossings[-1] >= before + 2, 30, "crossings after reconnecting")
        s.stop()
        t.join(10)
        assert not t.is_alive()
        summary = s.summary()
        # the counts went on from where they were: nothing was reset by the reconnect
        assert summary["frames"] > frames_before and s.ended == "stopped"
        assert sum(v["in"] + v["out"] for v in summary["counts"].values()) >= before + 2
        assert set(summary["counts"]) <= {"red", "blue"}
    finally:
        server.kill()
        server.wait()
