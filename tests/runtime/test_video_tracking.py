"""Video loop, tracker and counters on a generated video whose objects, crossings and ids are known.

The detections come from a colour detector on the decoded frames (tests/runtime/video_helpers.py),
so the counts are exact; the end-to-end run of a real exported artifact is in test_detect_cli.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.runtime.boxes import box_iou
from edgekit.runtime.counting import LineCounter, ZoneCounter
from edgekit.runtime.pipeline import RateStats, Stream
from edgekit.runtime.tracker import Tracker
from edgekit.runtime.video import open_source
from tests.runtime.video_helpers import FPS, FRAMES, H, W, LINE, MOVERS, ColorDetector, expected_crossings, make_video


@pytest.fixture(scope="module")
def movers_video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "movers.avi")


def _mover_of(box, k) -> int:
    """Which mover a box at frame k is (the one it overlaps most)."""
    def clipped(b):  # the part of the square inside the frame
        return np.clip(np.array([b], np.float32), 0, [W, H, W, H])

    ious = [float(box_iou(np.array([box]), clipped(m.box(k)))[0, 0]) if m.box(k) else 0.0 for m in MOVERS]
    assert max(ious) > 0.3, (box, k, ious)  # a sliver leaving the frame blurs by a pixel
    return int(np.argmax(ious))


@pytest.mark.parametrize("kalman", [True, False])
def test_line_counts_and_stable_ids_on_a_generated_video(movers_video, kalman):
    src = open_source(movers_video)
    assert not src.live and src.fps == FPS
    s = Stream(ColorDetector(), src, line=LINE, tracker=Tracker(kalman=kalman, max_missed=5))
    ids: dict[int, set] = {}
    events = []
    with s:
        for r in s:
            for tr in r.tracks:
                ids.setdefault(_mover_of(tr.box, r.frame.index), set()).add(tr.id)
            events += r.events
    # every mover had one id from start to end, and no two movers shared one
    assert all(len(v) == 1 for v in ids.values()), ids
    assert sorted(next(iter(v)) for v in ids.values()) == [1, 2, 3, 4]
    assert s.summary()["tracks"] == 4 and s.frames == FRAMES
    crossings = [(e["frame"], e["event"], e["class"]) for e in events if e["event"] in ("in", "out")]
    expected = [(k, ev, ColorDetector.names[MOVERS[i].cls]) for i, k, ev in expected_crossings()]
    assert crossings == expected == [(15, "out", "blue"), (17, "in", "red"), (20, "in", "red")]
    # events carry the schema's keys, with the source's time
    for e in events:
        assert {"t", "frame", "track_id", "class", "event", "label_confidence"} <= set(e)
        assert e["t"] == pytest.approx(e["frame"] / FPS)
    # a "lost" event reports where the object was last seen, not where the prediction drifted to
    lost = [e for e in events if e["event"] == "lost"]
    assert lost and all(0 <= e["box"][0] <= e["box"][2] <= W and 0 <= e["box"][1] <= e["box"][3] <= H for e in lost)
    assert s.summary()["counts"] == {"blue": {"in": 0, "out": 1}, "red": {"in": 2, "out": 0}}


def test_stride_duration_and_zone(movers_video):
    # every 2nd frame, the first 3 s: A (down the left) and C enter a zone over the bottom-left quarter?
    zone = [(0, 130), (120, 130), (120, 240), (0, 240)]  # A passes through it, D runs along y=200 inside it
    s = Stream(ColorDetector(), open_source(movers_video, stride=2), zone=zone, duration=3.0)
    with s:
        frames = [r.frame.index for r in s]
    assert frames == list(range(0, 30, 2))
    assert s.ended == "duration" and s.summary()["counts"] == {"red": 2}


def test_tracker_keeps_ids_through_gaps_and_fast_motion():
    # a 20 px box moving 15 px a frame (consecutive boxes overlap at IoU 0.14, under the 0.3 gate: the
    # centre-distance stage matches them), then a 3-frame gap over which it moves 60 px: only the
    # Kalman prediction carries the track across
    def run(kalman):
        t, seen = Tracker(iou=0.3, max_missed=5, min_hits=1, kalman=kalman), []
        for k in range(20):
            if k in (9, 10, 11):
                seen.append(t.update(np.zeros((0, 4)), [], []))
                continue
            x = 15.0 * k
            seen.append(t.update(np.array([[x, 50, x + 20, 70]]), [0.9], [0]))
        return [tr.id for frame in seen for tr in frame]

    assert set(run(True)) == {1}
    assert set(run(False)) == {1, 2}  # without prediction the object after the gap is a new one


def test_track_class_is_a_score_weighted_vote():
    t = Tracker(kalman=False, min_hits=1)
    for cls, score in [(0, 0.9), (1, 0.4), (0, 0.8), (1, 0.5)]:
        (tr,) = t.update(np.array([[0, 0, 10, 10]]), [score], [cls])
    assert tr.cls == 0 and tr.label_confidence == pytest.approx(0.85)


def test_line_counter_direction_extent_and_hysteresis():
    c = LineCounter("100,0,100,100", margin=2)  # drawn top to bottom: moving left is "in"
    assert [c.update(1, p, "a") for p in [(110, 50), (90, 50), (110, 50)]] == [None, "in", "out"]
    # past the segment's end the line does not exist
    assert [c.update(2, p, "a") for p in [(110, 150), (90, 150)]] == [None, None]
    # jitter within the margin is not a crossing
    assert [c.update(3, p, "a") for p in [(105, 50), (99, 50), (101.5, 50), (98.5, 50), (104, 50)]] == [None] * 5
    assert c.counts == {"a": {"in": 1, "out": 1}}
    with pytest.raises(EdgekitError, match="x1,y1,x2,y2"):
        LineCounter("1,2,3")


def test_one_frame_detections_do_not_become_tracks():
    t = Tracker()  # min_hits=2
    assert t.update(np.array([[0, 0, 10, 10]]), [0.9], [0]) == []
    assert t.update(np.array([[50, 50, 60, 60]]), [0.9], [0]) == []  # the first one vanished: forgotten
    (tr,) = t.update(np.array([[51, 50, 61, 60]]), [0.9], [0])
    assert tr.id == 1 and t.next_id == 2


def test_zone_counts_each_track_once():
    z = ZoneCounter([(0, 0), (10, 0), (10, 10), (0, 10)])
    got = [z.update(1, p, "fish") for p in [(20, 5), (5, 5), (20, 5), (5, 5)]]
    assert got == [None, "enter", "exit", "enter"] and z.counts == {"fish": 1} and z.occupancy == 1
    z.forget([1])
    assert z.occupancy == 0


def test_rate_stats_are_flat_memory_and_right():
    r = RateStats()
    for dt in [0.02] * 900 + [0.1] * 100:
        r.add(dt)
    assert r.fps_mean == pytest.approx(1000 / 28.0)
    assert r.fps_p90 == pytest.approx(50, rel=0.01)
    assert r.hist.nbytes < 20_000


@pytest.mark.parametrize("spec,message", [
    ("no-such.mp4", "does not exist"),
    ("picamera2", "picamera2 is not installed"),
    ("rtsp://127.0.0.1:9/none", "cannot open stream"),
])
def test_sources_that_cannot_open_are_one_clear_error(spec, message, tmp_path):
    pytest.importorskip("cv2")
    try:
        import picamera2  # noqa: F401
        if spec == "picamera2":
            pytest.skip("picamera2 is installed here")
    except ImportError:
        pass
    with pytest.raises(EdgekitError, match=message):
        open_source(spec)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(EdgekitError, match="no images"):
        open_source(str(tmp_path))


def test_loop_starts_again_until_the_duration(movers_video):
    s = Stream(ColorDetector(), open_source(movers_video, loop=True, stride=3), track=True, duration=2 * FRAMES / FPS)
    with s:
        idx = [r.frame.index for r in s]
    assert idx == list(range(0, 2 * FRAMES, 3))  # indices (and times) go on across the restart
    assert s.ended == "duration"


def test_a_failing_capture_ends_the_loop_with_the_reason(movers_video):
    src = open_source(movers_video)
    src.transform = lambda img: 1 / 0  # anything the capture thread runs may fail
    s = Stream(ColorDetector(), src, track=True, prepare_ahead=False)
    with s, pytest.raises(EdgekitError, match=r"no frame could be read from the source \(capture failed: ZeroDiv"):
        list(s)


class _Camera:
    """A live reader at ~200 frames/s (what a camera thread sees), numbering its frames in pixel (0, 0)."""

    live, fps = True, 200.0

    def __init__(self, frames: int):
        self.n, self.limit = 0, frames

    def open(self):
        pass

    def read(self):
        import time

        time.sleep(0.005)
        if self.n >= self.limit:
            return None
        self.n += 1
        img = np.zeros((8, 8, 3), np.uint8)
        img[0, 0, 0] = self.n % 256
        return img

    def close(self):
        pass


def test_live_sources_take_the_newest_frame_and_count_the_dropped():
    import time

    from edgekit.runtime.video import VideoSource

    cam = _Camera(100)
    src = VideoSource(cam, reconnect_s=0.2)  # after the last frame the camera "fails": give up quickly
    seen = []
    for f in src:
        seen.append(f.index)
        time.sleep(0.03)  # a slow model: ~6 camera frames per processed one
    assert src.live and len(seen) < 40 and seen == sorted(set(seen))
    assert len(seen) + src.dropped == 100  # every captured frame was either processed or counted as dropped
    assert src.error and "no frame" in src.error


def test_max_fps_holds_the_rate(movers_video):
    import time

    s = Stream(ColorDetector(), open_source(movers_video), max_fps=40)
    t0 = time.monotonic()
    with s:
        n = sum(1 for _ in s)
    assert n == FRAMES and time.monotonic() - t0 >= (FRAMES - 1) / 40
