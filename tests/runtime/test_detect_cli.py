"""``edgekit detect`` end to end on a real exported artifact (a tiny random-weight detector as ONNX),
the two-stage mode with a real classifier artifact and its "unsure" reject, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgekit.runtime.pipeline import Stream
from edgekit.runtime.video import open_source
from tests.conftest import restore_sigint
from tests.runtime.video_helpers import FRAMES, H, LINE, W, ColorDetector, make_video

SCHEMA = {"frames", "dropped", "fps_mean", "fps_p90", "counts", "tracks"}
EVENT_KEYS = {"t", "frame", "track_id", "class", "event", "label_confidence"}


def edgekit(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("detect-video") / "movers.avi")


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """yolo-lite at 64 px with random weights, exported to ONNX (parity-checked by export)."""
    from edgekit.export import export
    from tests.export.export_helpers import make_checkpoint

    out = tmp_path_factory.mktemp("detect-onnx")
    rep = export(make_checkpoint(out / "yolo-lite.pt", "yolo-lite", 64), ["onnx"], out=out)
    assert rep.ok, rep.results[0].reason
    return out / rep.results[0].file


def test_detect_json_jsonl_and_saved_video(tiny_onnx, video, tmp_path):
    out, events = tmp_path / "out.mp4", tmp_path / "events.jsonl"
    r = edgekit("detect", "--model", tiny_onnx, "--source", video, "--conf", "0.02", "--count-line",
                ",".join(map(str, LINE)), "--save", out, "--jsonl", events, "--json", "--threads", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)  # stdout is exactly one JSON document
    assert set(summary) == SCHEMA
    assert summary["frames"] == FRAMES and summary["dropped"] == 0 and summary["fps_mean"] > 0
    assert all(set(v) == {"in", "out"} for v in summary["counts"].values())
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert lines and all(EVENT_KEYS <= set(e) for e in lines)
    assert len({e["track_id"] for e in lines if e["event"] == "new"}) == summary["tracks"] > 0
    crossings = sum(v["in"] + v["out"] for v in summary["counts"].values())
    assert crossings == sum(e["event"] in ("in", "out") for e in lines)
    import cv2

    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    ok, img = cap.read()
    assert ok and img.shape == (H, W, 3)
    assert not list(tmp_path.glob(".*partial*"))  # the temporary name was renamed into place


def test_detect_text_output_with_stride(tiny_onnx, video):
    r = edgekit("detect", "--model", tiny_onnx, "--source", video, "--stride", "2", "--track", "--conf", "0.02")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{FRAMES // 2} frames (0 dropped)")


@pytest.mark.parametrize("args,env,message", [
    (["--source", "no-such.mp4"], {}, "no-such.mp4 does not exist: give a video file"),
    (["--source", "{video}", "--show"], {"DISPLAY": "", "WAYLAND_DISPLAY": ""}, "--show needs a display"),
    (["--source", "{video}", "--count-line", "1,2,3"], {}, "--count-line '1,2,3': give x1,y1,x2,y2"),
])
def test_detect_errors_are_one_line(tiny_onnx, video, args, env, message):
    r = edgekit("detect", "--model", tiny_onnx, *[a.format(video=video) for a in args], env=env)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr and r.stdout == ""


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    from edgekit.export import export
    from tests.export.export_helpers import make_checkpoint

    out = tmp_path_factory.mktemp("detect-cls")
    rep = export(make_checkpoint(out / "cls.pt", "mobilenetv2-cls", 64, num_classes=2), ["onnx"], out=out)
    assert rep.ok, rep.results[0].reason
    return out / rep.results[0].file


@pytest.mark.parametrize("threshold", [0.0, 1.01])
def test_two_stage_counts_species_or_unsure(tiny_classifier, video, threshold):
    """Species come from the classifier's mean probability over each track's crops; under the
    manifest's reject threshold (1.01: nothing passes) every track is counted "unsure"."""
    from edgekit.runtime import load

    clf = load(tiny_classifier)
    clf.manifest["reject"] = {"thresholds": [threshold, threshold]}  # what `edgekit calibrate-reject` writes
    s = Stream(ColorDetector(), open_source(video), line=LINE, classifier=clf)
    with s:
        events = [e for r in s for e in r.events]
    counts = s.summary()["counts"]
    total = {k: v["in"] + v["out"] for k, v in counts.items()}
    assert sum(total.values()) == 3 and "unsure" in counts  # 3 crossings, "unsure" always reported
    if threshold > 1:
        assert total["unsure"] == 3 and all(e["class"] == "unsure" for e in events)
    else:
        assert total["unsure"] == 0 and set(total) - {"unsure"} <= set(clf.names)
        # the decision is the top class of the mean probability over the crops the track had so far
        for e in events:
            assert e["class"] in clf.names and 0.5 <= e["label_confidence"] <= 1.0
    assert np.all([0 <= e["label_confidence"] <= 1 for e in events])


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_and_flushes(tiny_onnx, video, tmp_path, sig):
    """SIGTERM (a service manager) or Ctrl-C mid-run: exit 0, the summary, a complete video and JSONL."""
    import signal
    import time

    out, events = tmp_path / "out.avi", tmp_path / "events.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "edgekit", "detect", "--model", str(tiny_onnx), "--source", str(video),
                          "--max-fps", "8", "--conf", "0.02", "--track", "--save", str(out), "--jsonl", str(events),
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=restore_sigint)
    deadline = time.monotonic() + 60
    while not (events.exists() and events.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)  # the loop is running once the first event is written
    time.sleep(0.5)
    p.send_signal(getattr(signal, sig))
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    summary = json.loads(stdout)
    assert set(summary) == SCHEMA and 0 < summary["frames"] < FRAMES
    assert all(EVENT_KEYS <= set(json.loads(x)) for x in events.read_text().splitlines())
    import cv2

    assert int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)) == summary["frames"]


def test_preprocessing_ahead_in_the_capture_thread_changes_nothing(tiny_onnx, video):
    """Files: the capture thread prepares frame n+1 during frame n's inference; same detections as inline."""
    from edgekit.runtime import load

    model = load(tiny_onnx, threads=1)
    runs = {}
    for ahead in (True, False):
        s = Stream(model, open_source(video), conf=0.02, prepare_ahead=ahead)
        with s:
            runs[ahead] = [(r.detections, r.timing) for r in s]
    assert len(runs[True]) == len(runs[False]) == FRAMES
    assert all(t.get("pre_overlapped") for _, t in runs[True])
    assert not any(t.get("pre_overlapped") for _, t in runs[False])
    for (a, _), (b, _) in zip(runs[True], runs[False]):
        assert len(a) > 0 and np.array_equal(a.boxes, b.boxes) and np.array_equal(a.classes, b.classes)


def test_two_stage_from_the_command_line(tiny_onnx, tiny_classifier, video):
    r = edgekit("detect", "--model", tiny_onnx, "--source", video, "--classify", tiny_classifier, "--conf", "0.02",
                "--count-line", ",".join(map(str, LINE)), "--json", "--threads", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    # the tiny classifier's manifest has no reject thresholds: species only, "unsure" reported at zero
    assert set(summary) == SCHEMA and summary["counts"]["unsure"] == {"in": 0, "out": 0}
    assert set(summary["counts"]) <= {"c0", "c1", "unsure"}


def test_the_video_loop_runs_lean(tiny_onnx, video):
    """On a board: the loop, tracker and counters with torch, TensorFlow, onnx and nncf unimportable."""
    code = ("import json, sys\n"
            "from edgekit.runtime.lean import block_imports, loaded\n"
            "block_imports()\n"
            "from edgekit.runtime import stream\n"
            f"s = stream({str(tiny_onnx)!r}, {str(video)!r}, conf=0.02, line={list(LINE)!r})\n"
            "n = sum(1 for _ in s)\n"
            "print(json.dumps({'frames': n, 'heavy': loaded()}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"frames": FRAMES, "heavy": []}
