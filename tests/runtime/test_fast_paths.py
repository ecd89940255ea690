"""The video loop's fast paths give exactly what the reference paths give, bit for bit.

* :class:`CandidateDecoder` on an INT8 artifact's integer maps vs dequantizing every map and decoding
  it densely (``decode_output``, the formulas the torch validator runs);
* the NMS OpenCV path vs the float64 per-kept-box path;
* the tracker's stacked Kalman predict (written by blocks) vs the matrix products;
* ``Detector.predict_one`` (FramePrep, raw outputs, sparse decode) vs letterbox + to_tensor +
  dequantize + dense decode + inverse letterbox, on the sample's real images;
* the video loop with inference overlapped in its own thread vs one frame after the other.
"""

from __future__ import annotations

import numpy as np
import pytest

import edgekit.runtime.boxes as boxes_mod
from edgekit.runtime.decode import CandidateDecoder, _cells, decode_dense, dequantize, select
from edgekit.runtime.preprocess import boxes_from_letterbox, letterbox, to_tensor
from edgekit.runtime.tracker import _Q_SCALE, KalmanBank

SPECS = {
    "yolo": {"type": "yolo", "num_classes": 3, "strides": [16, 32], "anchors": [[[10, 14], [23, 27]], [[37, 58], [81, 82]]],
             "anchor_units": "pixels", "scale_x_y": [1.05, 2.0], "new_coords": 0},
    "yolo-new-coords": {"type": "yolo", "num_classes": 3, "strides": [16, 32],
                        "anchors": [[[10, 14], [23, 27]], [[37, 58], [81, 82]]], "anchor_units": "pixels",
                        "scale_x_y": [2.0, 2.0], "new_coords": 1},
    "region": {"type": "region", "num_classes": 3, "strides": [32], "anchors": [[[1.1, 2.2], [3.3, 4.4]]],
               "anchor_units": "grid", "scale_x_y": [1.0], "new_coords": 0},
}


def _int8_maps(spec, rng, imgsz=128):
    maps, quant = [], []
    for k, (stride, anchors) in enumerate(zip(spec["strides"], spec["anchors"])):
        g = imgsz // stride
        m = rng.integers(-128, 128, (1, len(anchors), 5 + spec["num_classes"], g, g), dtype=np.int16)
        m[:, :, 4] -= 60  # most cells empty, as in a real map
        maps.append(np.clip(m, -128, 127).astype(np.int8).reshape(1, -1, g, g))
        # new_coords maps are probabilities in [0, 1]; the others logits of a few units
        quant.append((1 / 255, -128) if spec.get("new_coords") else (0.0657 + 0.01 * k, 12 - 20 * k))
    return maps, quant


def _raw_objectness(maps, spec):
    """Each dense row's objectness before the sigmoid (the value the candidate threshold reads), in row order."""
    nc = spec["num_classes"]
    return np.concatenate([_cells(m, len(a), nc)[0][..., 4].reshape(-1) for m, a in zip(maps, spec["anchors"])])


def _reference_rows(dec, maps, quant, spec, conf):
    """The dense decode of every dequantized map, and its rows whose raw objectness passes the decoder's cut."""
    floats = [dequantize(m, q) for m, q in zip(maps, quant or [None] * len(maps))]
    dense = decode_dense(floats, spec)[0]
    return dense[_raw_objectness(floats, spec) > dec._cut(conf)], dense


@pytest.mark.parametrize("kind", list(SPECS))
@pytest.mark.parametrize("conf", [0.05, 0.3, 0.7])
def test_candidate_decoder_equals_the_dense_decode_bit_for_bit(kind, conf):
    spec, rng = SPECS[kind], np.random.default_rng(11)
    dec = CandidateDecoder(spec)
    found = 0
    for _ in range(4):
        maps, quant = _int8_maps(spec, rng)
        rows = dec(maps, conf, quant)
        want, _ = _reference_rows(dec, maps, quant, spec, conf)
        found += int((want[:, 4] > conf).sum())
        if kind == "region":  # softmax sums along a strided row in the dense decode: the last bit may differ
            np.testing.assert_allclose(rows, want, rtol=1e-6, atol=0)
        else:
            assert rows.dtype == np.float32 and np.array_equal(rows, want)
        got, ref = select(rows, conf), select(want, conf)
        assert all(np.array_equal(a, b) for a, b in zip(got, ref))
    assert found > 0


def test_candidate_decoder_on_float_maps_and_a_changed_threshold():
    spec, rng = SPECS["yolo"], np.random.default_rng(5)
    maps = [rng.normal(0, 2, (1, 16, g, g)).astype(np.float32) for g in (8, 4)]
    dec = CandidateDecoder(spec)
    for conf in (0.3, 0.6, 0.3):  # the per-cell tables are rebuilt when the threshold changes
        rows = dec(maps, conf)
        dense = decode_dense(maps, spec)[0]
        assert np.array_equal(rows, dense[_raw_objectness(maps, spec) > dec._cut(conf)])


@pytest.mark.parametrize("dtype", ["int8", "uint8", "float64", "float16"])
@pytest.mark.parametrize("conf", [1e-7, 0.02, 0.5, 0.99999])
def test_candidate_decoder_per_map_tests_at_the_threshold_extremes(dtype, conf):
    """The objectness test runs on each map in its own dtype: every cell passing, none, a few, and empty maps
    give the rows of dequantizing (or converting to float32) every map and decoding it densely."""
    spec, rng = SPECS["yolo"], np.random.default_rng(17)
    dec = CandidateDecoder(spec)
    for empty in (False, True):
        maps, quant = _int8_maps(spec, rng)
        if empty:  # a frame with nothing in it: every objectness at its lowest
            for m in maps:
                m.reshape(2, 8, -1)[:, 4] = -128
        if dtype == "uint8":
            maps, quant = [(m.astype(np.int16) + 128).astype(np.uint8) for m in maps], [(s, z + 128) for s, z in quant]
        elif dtype != "int8":
            maps, quant = [dequantize(m, q).astype(dtype) for m, q in zip(maps, quant)], None
        rows = dec(maps, conf, quant)
        want, dense = _reference_rows(dec, maps, quant, spec, conf)
        assert rows.dtype == np.float32 and rows.shape[1] == 8 and np.array_equal(rows, want)
        if conf < 1e-6:
            assert len(rows) == len(dense)  # every cell may pass
        elif empty or conf > 0.9:
            assert len(rows) == 0


@pytest.mark.parametrize("kind", list(SPECS))
@pytest.mark.parametrize("conf", [0.05, 0.3, 0.7])
def test_fused_detect_equals_select_of_the_decoded_rows(kind, conf):
    """CandidateDecoder.detect (the video loop's one pass) == select(decoder rows): same boxes, scores, classes, order."""
    spec, rng = SPECS[kind], np.random.default_rng(23)
    dec = CandidateDecoder(spec)
    found = 0
    for k in range(6):
        maps, quant = _int8_maps(spec, rng)
        for iou, max_det in ((0.45, 300), (0.3, 3), (None, 300), (1.0, 300)):
            got = dec.detect(maps, conf, iou, max_det, quant)
            want = select(dec(maps, conf, quant), conf, iou, max_det)
            assert [a.dtype for a in got] == [np.float32, np.float32, np.int64]
            assert all(np.array_equal(a, b) for a, b in zip(got, want))
            found += len(got[0])
    assert found > 0


@pytest.mark.parametrize("seed", range(8))
def test_nms_in_python_equals_the_numpy_paths(seed, monkeypatch):
    """A handful of boxes go through NMS in plain Python: the same indices as the numpy paths, ties and duplicates
    included; non-finite input falls back to numpy."""
    rng = np.random.default_rng(seed)
    for n in range(1, boxes_mod._PYTHON_NMS + 1):
        xy = rng.uniform(-20, 100, (n, 2)).round(1)
        b = np.concatenate([xy, xy + rng.uniform(0, 40, (n, 2)).round(1)], 1)
        b[n // 2:] = b[: n - n // 2] + rng.integers(0, 2, (n - n // 2, 4))  # near and exact duplicates
        scores = rng.uniform(0, 1, n).round(1)  # ties
        if seed == 7:
            b[0, 2] = np.nan
        for classes in (None, rng.integers(0, 3, n)):
            for thr, max_det in ((0.3, 300), (0.45, 2), (1.0, 300), (0.5, 0)):
                small = boxes_mod.nms(b, scores, classes, thr, max_det)
                monkeypatch.setattr(boxes_mod, "_PYTHON_NMS", 0)
                ref = boxes_mod.nms(b, scores, classes, thr, max_det)
                monkeypatch.undo()
                assert small.dtype == np.int64 and small.tolist() == ref.tolist()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("score_dtype", [np.float64, np.float32])
def test_nms_opencv_path_equals_the_numpy_path(seed, score_dtype, monkeypatch):
    """Above a handful of boxes NMS runs in OpenCV DNN: the same indices as the float64 numpy loop, duplicates,
    score ties, touching edges, degenerate boxes (the numpy loop's) and far negative coordinates included.
    float32 scores (a detector's) go to OpenCV as they are, unsorted: its stable sort must give the same order."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 600))
    xy = rng.uniform(0, 200, (n, 2)).round(1)
    b = np.concatenate([xy, xy + rng.uniform(5, 60, (n, 2)).round(1)], 1)
    b[n // 2:] = b[: n - n // 2]  # duplicates: IoU exactly 1, and ties at the threshold
    scores = rng.uniform(0.01, 1, n).round(2).astype(score_dtype)
    b = b.astype(score_dtype)  # float32 boxes and scores: a detector's, through the list path
    classes = rng.integers(0, 3, n)
    if seed % 2:  # touching edges (intersection exactly 0), degenerate boxes, negative and far coordinates
        b[::7, 0] = b[::7, 2]
        b[1::7, 2] = b[1::7, 0] - 1
        b[2::5] -= 500
    for thr in (0.0, 0.3, 0.45, 1.0):
        for cls in (classes, None):
            default = boxes_mod.nms(b, scores, cls, thr, max_det=1000)
            healthy = ~(b[:, 2:] <= b[:, :2]).any(1)  # what OpenCV takes (a degenerate box sends all to numpy)
            in_cv = boxes_mod.nms(b[healthy], scores[healthy], None if cls is None else cls[healthy], thr, 1000)
            monkeypatch.setattr(boxes_mod, "_greedy_in_opencv", lambda *a: None)
            monkeypatch.setattr(boxes_mod, "nms_corners_in_opencv", lambda *a: None)
            loop = boxes_mod.nms(b, scores, cls, thr, max_det=1000)
            loop_healthy = boxes_mod.nms(b[healthy], scores[healthy], None if cls is None else cls[healthy], thr, 1000)
            monkeypatch.undo()
            assert default.tolist() == loop.tolist()
            assert in_cv.tolist() == loop_healthy.tolist()
            assert boxes_mod.nms(b, scores, cls, thr, max_det=5).tolist() == loop[:5].tolist()


def test_nms_opencv_path_is_taken_and_refuses_what_it_would_get_wrong():
    """The OpenCV pass runs for ordinary boxes; for NaN, infinite or empty boxes it declines (OpenCV calls two
    empty boxes identical), and nms() then gives the numpy loop's answer."""
    b = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float64)
    assert boxes_mod._greedy_in_opencv(b, [3, 2, 1], 0.45, 300).tolist() == [0, 2]
    for bad in ([5, 5, 5, 9], [np.nan, 0, 1, 1], [0, 0, np.inf, 1]):
        assert boxes_mod._greedy_in_opencv(np.vstack([b, bad]), [4, 3, 2, 1], 0.45, 300) is None
    empties = np.tile([[3.0, 3.0, 3.0, 3.0]], (20, 1))  # twenty empty boxes: IoU 0, none suppresses another
    assert boxes_mod.nms(empties, np.linspace(1, 0.1, 20)).tolist() == list(range(20))


def test_nms_hands_float32_scores_to_opencv_unsorted(monkeypatch):
    """A detector's float32 boxes and scores go to OpenCV unsorted (no ranks): one pass, the loop's answer;
    scores OpenCV would drop (0, NaN) take the sorted path with ranks."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(-10, 100, (40, 2))
    b = np.concatenate([xy, xy + 30], 1).astype(np.float32)
    scores = rng.uniform(0.3, 1, 40).round(1).astype(np.float32)  # ties
    cls = rng.integers(0, 2, 40)
    seen = []
    real = boxes_mod._both_thresholds
    monkeypatch.setattr(boxes_mod, "_both_thresholds", lambda cv, xywh, s, *a: seen.append(s) or real(cv, xywh, s, *a))
    got = boxes_mod.nms(b, scores, cls, 0.45)
    assert seen == [scores.tolist()]
    monkeypatch.setattr(boxes_mod, "_greedy_in_opencv", lambda *a: None)
    monkeypatch.setattr(boxes_mod, "nms_corners_in_opencv", lambda *a: None)
    assert got.tolist() == boxes_mod.nms(b, scores, cls, 0.45).tolist()
    monkeypatch.undo()
    for bad in (0.0, np.nan):
        s2 = scores.copy()
        s2[5] = bad
        seen.clear()
        monkeypatch.setattr(boxes_mod, "_both_thresholds", lambda cv, xywh, s, *a: seen.append(s) or real(cv, xywh, s, *a))
        boxes_mod.nms(b, s2, cls, 0.45)
        assert seen == [list(range(40, 0, -1))]


def test_kalman_predict_by_blocks_equals_the_matrix_products():
    rng = np.random.default_rng(2)
    bank = KalmanBank()
    bank.add(rng.uniform(0, 100, (7, 2)).repeat(2, 1) + [0, 0, 20, 30][:2] * 2)
    bank.x[:, 4:] = rng.normal(0, 3, (7, 4))
    bank.P = bank.P + rng.uniform(0, 1, bank.P.shape)  # off-diagonal terms too
    F = np.eye(8)
    F[:4, 4:] = np.eye(4)
    x, P, q = bank.x.copy(), bank.P.copy(), bank.q.copy()
    bank.predict()
    want_x = x @ F.T
    want_x[:, 2:4] = np.maximum(want_x[:, 2:4], 1.0)
    want_P = F @ P @ F.T
    want_P[:, np.arange(8), np.arange(8)] += (q[:, None] * _Q_SCALE) ** 2
    assert np.array_equal(bank.x, want_x) and np.array_equal(bank.P, want_P)


@pytest.fixture(scope="module")
def int8_detector(fast_exports):
    from edgekit.runtime import load

    if "tflite-int8" not in fast_exports:
        pytest.skip("no tflite-int8 export here (ai-edge-litert not installed)")
    return load(fast_exports["tflite-int8"])


def _reference_predict(det, image, conf, iou):
    """letterbox + to_tensor + dequantize every map + dense decode + inverse letterbox: no fast path."""
    r = det.runner
    lb_img, lb = letterbox(image, r.imgsz, color=r.pad_value)
    maps = r.run_tensor(to_tensor(lb_img, r.layout, r.dtype, quant=r.quant))
    rows = decode_dense(maps, det.manifest["decode"])[0]
    b, s, c = select(rows, conf, iou)
    return boxes_from_letterbox(b, lb), s, c


def test_predict_equals_the_reference_path_on_real_images(int8_detector, sample_yaml):
    import cv2

    det = int8_detector
    images = sorted((sample_yaml.parent / "test" / "images").glob("*.jpg"))[:12]
    found = 0
    for conf in (0.01, 0.05):
        for path in images:
            img = cv2.imread(str(path))
            for frame in (img, cv2.resize(img, (360, 202))):  # a second size rebuilds FramePrep's buffers
                got = det.predict_one(frame, conf=conf, iou=0.45)
                b, s, c = _reference_predict(det, frame, conf, 0.45)
                assert np.array_equal(got.boxes, b) and np.array_equal(got.scores, s)
                assert np.array_equal(got.classes, c)
                found += len(got)
    assert found > 0


def test_overlapped_loop_equals_the_loop_in_turn(int8_detector, sample_yaml, tmp_path):
    import cv2

    from edgekit.runtime.pipeline import Stream
    from edgekit.runtime.video import open_source

    src = tmp_path / "frames"
    src.mkdir()
    for k, path in enumerate(sorted((sample_yaml.parent / "test" / "images").glob("*.jpg"))[:10]):
        img = cv2.imread(str(path))
        for j in range(3):  # a short "video": each image shifted a little over 3 frames
            cv2.imwrite(str(src / f"{k * 3 + j:04d}.png"), np.roll(img, 4 * j, axis=1))

    def run(overlap):
        s = Stream(int8_detector, open_source(src), conf=0.02, track=True, overlap=overlap)
        out = []
        with s:
            for r in s:
                out.append((r.frame.index, r.detections.boxes.tolist(), r.detections.scores.tolist(),
                            [(t.id, t.box.tolist()) for t in r.tracks], r.events, r.counts))
                assert r.timing.get("post_overlapped", False) is overlap
        return out, s.summary()

    (a, sa), (b, sb) = run(True), run(False)
    assert a == b and len(a) == 30
    assert {k: sa[k] for k in ("frames", "counts", "tracks")} == {k: sb[k] for k in ("frames", "counts", "tracks")}


def test_a_stop_mid_run_ends_the_inference_thread(int8_detector, sample_yaml):
    import threading

    from edgekit.runtime.pipeline import Stream
    from edgekit.runtime.video import open_source

    s = Stream(int8_detector, open_source(sample_yaml.parent / "test" / "images", loop=True), conf=0.05)
    with s:
        for r in s:
            if s.frames == 5:
                s.stop()
    assert s.frames == 5 and s.ended == "stopped"
    assert not [t for t in threading.enumerate() if t.name in ("edgekit-infer", "edgekit-capture")]
