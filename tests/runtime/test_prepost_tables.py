"""The video loop's third pass on pre/post-processing (issue 14) gives exactly what the paths before it gave.

* :class:`~edgekit.runtime.int8_decode.Int8Tables` (8-bit YOLO maps decoded through value tables) vs
  :class:`CandidateDecoder`'s dequantize-and-compute path, on random int8/uint8 maps and on real images;
* the Python NMS that tests a box only against kept boxes of its class, with early outs, vs the numpy paths,
  thresholds of 0 and below included;
* ``FramePrep(reuse=True)``: the thread's kept INT8 tensor (pads written once) vs a new tensor each call.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import edgekit.runtime.boxes as boxes_mod
from edgekit.runtime.decode import CandidateDecoder, _sigmoid, decode_dense, dequantize, select
from edgekit.runtime.fastprep import FramePrep
from edgekit.runtime.int8_decode import Int8Tables, spec_rows
from edgekit.runtime.preprocess import boxes_from_letterbox, letterbox, to_tensor
from tests.runtime.test_fast_paths import _int8_maps

ROOT = Path(__file__).resolve().parents[2]
SPEC = {"type": "yolo", "num_classes": 3, "strides": [16, 32], "anchors": [[[10, 14], [23, 27], [5, 9]], [[37, 58], [81, 82], [30, 20]]],
        "anchor_units": "pixels", "scale_x_y": [1.05, 2.0], "new_coords": 0}


def _maps(rng, dtype="int8", imgsz=128, empty=False):
    """test_fast_paths' random INT8 maps of SPEC; ``empty``: no objectness anywhere; uint8: the same values."""
    maps, quant = _int8_maps(SPEC, rng, imgsz)
    width = 5 + SPEC["num_classes"]
    for m, anchors in zip(maps, SPEC["anchors"]):
        if empty:
            m.reshape(len(anchors), width, -1)[:, 4] = -128
    if dtype == "uint8":
        maps = [(m.astype(np.int16) + 128).astype(np.uint8) for m in maps]
        quant = [(s, z + 128) for s, z in quant]
    return maps, quant


def _without_tables(dec: CandidateDecoder, maps, conf, quant) -> None:
    """Build the decoder's plan, then take its tables away: detect() runs the dequantize-and-compute path."""
    dec._plan_of(maps, conf, quant)
    dec._plan = dec._plan._replace(int8=None)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("conf", [0.001, 0.05, 0.3, 0.7, 0.999])
@pytest.mark.parametrize("plain", [False, True], ids=["scaled-xy", "unit-xy-one-quant"])
def test_table_decode_equals_the_float_path_bit_for_bit(dtype, conf, plain):
    """``plain``: scale_x_y 1 and one quantization for all outputs (most converted cfgs), the decoder's shortcuts."""
    rng = np.random.default_rng(3)
    spec = {**SPEC, "scale_x_y": [1.0, 1.0]} if plain else SPEC
    tables, floats = CandidateDecoder(spec), CandidateDecoder(spec)
    found = 0
    for k in range(8):
        maps, quant = _maps(rng, dtype, empty=k == 7)
        if plain:
            quant = [quant[0]] * len(quant)
        _without_tables(floats, maps, conf, quant)
        for iou, max_det in ((0.45, 300), (0.3, 2), (None, 300)):
            got = tables.detect(maps, conf, iou, max_det, quant)
            want = floats.detect(maps, conf, iou, max_det, quant)
            assert tables._plan.int8 is not None and floats._plan.int8 is None
            assert tables._plan.boxes is not None and tables._plan.int8.shared == plain
            assert [a.dtype for a in got] == [np.float32, np.float32, np.int64]
            assert all(np.array_equal(a, b) for a, b in zip(got, want)), (k, iou, max_det)
            # and both are the dense decode of every dequantized map, then select()
            dense = decode_dense([dequantize(m, q) for m, q in zip(maps, quant)], spec)[0]
            ref = select(dense, conf, iou, max_det)
            assert all(np.array_equal(a, b) for a, b in zip(got, ref))
            found += len(got[0])
    if conf < 0.9:
        assert found > 0


def test_table_threshold_is_the_exact_integer_form_of_both_float_tests():
    """A cell passes the integer test iff its dequantized objectness is over the cut and its sigmoid over conf."""
    rng = np.random.default_rng(8)
    maps, quant = _maps(rng)
    for conf in (0.01, 0.25, 0.5, 0.9):
        dec = CandidateDecoder(SPEC)
        _, plan = dec._plan_of(maps, conf, quant)
        tab = plan.int8
        q = np.arange(-128, 128, dtype=np.int8)
        for k, (scale, zero) in enumerate(quant):
            v = (q.astype(np.float32) - np.float32(zero)) * np.float32(scale)
            want = (v > plan.cut) & (_sigmoid(v) > conf)
            rows = np.flatnonzero(tab.offset == 256 * k)
            assert np.array_equal(q > tab.threshold[rows[0]], want)


def test_tables_only_for_8_bit_quantized_maps():
    rng = np.random.default_rng(1)
    maps, quant = _maps(rng)
    layout = spec_rows(SPEC, maps)
    assert Int8Tables.build(maps, quant, layout, -1.0, 0.25, _sigmoid) is not None
    assert Int8Tables.build(maps, None, layout, -1.0, 0.25, _sigmoid) is None  # no quantization given
    assert Int8Tables.build([m.astype(np.float32) for m in maps], quant, layout, -1.0, 0.25, _sigmoid) is None
    assert Int8Tables.build([maps[0], maps[1].view(np.uint8)], quant, layout, -1.0, 0.25, _sigmoid) is None
    assert Int8Tables.build(maps, [quant[0], (0.0, 0)], layout, -1.0, 0.25, _sigmoid) is None
    # region heads (softmax) and new_coords maps keep the float path
    for spec in ({**SPEC, "new_coords": 1}, {**SPEC, "type": "region", "anchor_units": "grid"}):
        dec = CandidateDecoder(spec)
        assert dec._plan_of(maps, 0.3, quant)[1].int8 is None


@pytest.mark.parametrize("seed", range(6))
def test_python_nms_equals_the_numpy_paths_at_any_threshold(seed, monkeypatch):
    """Per-class kept lists and the no-overlap early outs keep the same boxes as the numpy paths: thresholds of 0 and
    below (every pair tested, as numpy does), touching and duplicate boxes, ties, one class and several."""
    rng = np.random.default_rng(100 + seed)
    for n in range(2, boxes_mod._PYTHON_NMS + 1):
        xy = rng.uniform(0, 60, (n, 2)).round(0)
        b = np.concatenate([xy, xy + rng.uniform(0, 30, (n, 2)).round(0)], 1)
        b[n // 2:] = b[: n - n // 2] + rng.integers(-1, 2, (n - n // 2, 4))  # near and exact duplicates, edges touching
        scores = rng.uniform(0, 1, n).round(1)
        for classes in (None, np.zeros(n, np.int64), rng.integers(0, 3, n)):
            for thr in (-0.5, 0.0, 1e-9, 0.45, 1.0):
                small = boxes_mod.nms(b, scores, classes, thr, 300)
                monkeypatch.setattr(boxes_mod, "_PYTHON_NMS", 0)
                ref = boxes_mod.nms(b, scores, classes, thr, 300)
                monkeypatch.undo()
                assert small.tolist() == ref.tolist(), (n, thr)


@pytest.mark.parametrize("dtype,quant", [("int8", (1 / 255, -128)), ("uint8", (1 / 255, 0))])
def test_reused_tensor_equals_a_new_one_frame_after_frame(dtype, quant):
    rng = np.random.default_rng(4)
    prep = FramePrep((64, 64), "NHWC", dtype, quant, pad_value=114)
    frames = [rng.integers(0, 256, hw + (3,), dtype=np.uint8) for hw in [(36, 64), (36, 64), (64, 30), (36, 64), (64, 64)]]
    kept = None
    for img in frames:
        got, lb = prep(img, reuse=True)
        ref_img, ref_lb = letterbox(img, (64, 64), color=114)
        want = to_tensor(ref_img, "NHWC", dtype, quant=quant)
        assert lb == ref_lb and got.dtype == want.dtype and np.array_equal(got, want)
        if kept is not None and img.shape == kept[0]:
            assert got is kept[1]  # the same tensor: pads written once, not per frame
        kept = (img.shape, got)
    fresh, _ = prep(frames[0])
    assert fresh is not kept[1]  # without reuse: a new tensor each call


def test_reused_tensors_are_per_thread():
    prep = FramePrep((32, 32), "NHWC", "int8", (1 / 255, -128))
    mine, _ = prep(np.zeros((16, 32, 3), np.uint8), reuse=True)
    other = {}
    t = threading.Thread(target=lambda: other.setdefault("x", prep(np.full((16, 32, 3), 255, np.uint8), reuse=True)[0]))
    t.start()
    t.join()
    assert other["x"] is not mine and int(mine[0, 8:24].max()) == -128 and int(other["x"][0, 8:24].min()) == 127


SHIPPED = {  # the tflite-int8 exports of the detectors shipped in turn (make demo writes the Yolo-Fastest one)
    "mobilenetv2_050-yolo": "runs/export/mobilenetv2_050-yolo/mobilenetv2_050-yolo-tflite-int8.tflite",
    "yolo-fastest-1.1": "runs/export/yf-shipped/yolo-fastest-1.1-tflite-int8.tflite",
}


def _f4k(model: str = "mobilenetv2_050-yolo"):
    art = ROOT / SHIPPED[model]
    images = ROOT.parent / "shared" / "data" / "fish4knowledge" / "test" / "images"
    if not art.is_file() or not images.is_dir():
        pytest.skip(f"{model}'s tflite-int8 export or the F4K test images are not here")
    return art, sorted(images.glob("*.jpg"))


@pytest.mark.slow  # the 320 px detector on 188 images, twice per threshold: seconds of CPU
@pytest.mark.parametrize("conf", [0.05, 0.3])
@pytest.mark.parametrize("model", list(SHIPPED))
def test_shipped_detector_on_f4k_same_detections_as_the_float_path(conf, model):
    """A shipped Fish4Knowledge detector on every F4K test image (crowded frames included): the table decode and
    the reused input tensor give the detections of the reference path (letterbox or stretch + to_tensor +
    dequantize every map + dense decode + select + inverse letterbox), bit for bit."""
    import cv2

    from edgekit.runtime import load
    from edgekit.runtime.preprocess import fit_image

    art, images = _f4k(model)
    det = load(art, threads=1)
    r = det.runner
    found = 0
    for path in images:
        img = cv2.imread(str(path))
        got = det.predict_one(img, conf=conf, iou=0.45)
        lb_img, lb = fit_image(img, r.imgsz, r.resize, r.pad_value)
        maps = r.run_tensor(to_tensor(lb_img, r.layout, r.dtype, quant=r.quant))
        b, s, c = select(decode_dense(maps, det.manifest["decode"])[0], conf, 0.45)
        assert np.array_equal(got.boxes, boxes_from_letterbox(b, lb)) and np.array_equal(got.scores, s), path.name
        assert np.array_equal(got.classes, c)
        found += len(got)
    assert det._decoder._plan.int8 is not None and found > len(images)


def test_table_decode_takes_the_constant_shift_opencv_nms(monkeypatch):
    """The table decode's NMS (constant class shift from the tables' bound, float32 sizes) runs and answers for
    ordinary frames, and gives the general nms()'s boxes, bit for bit."""
    import edgekit.runtime.decode as decode_mod

    answers = []
    real = decode_mod.nms_corners_in_opencv
    monkeypatch.setattr(decode_mod, "nms_corners_in_opencv", lambda *a: answers.append(real(*a)) or answers[-1])
    rng = np.random.default_rng(11)
    maps, quant = _maps(rng)
    width = 5 + SPEC["num_classes"]
    for m, anchors in zip(maps, SPEC["anchors"]):  # sizes a real frame has (random bytes make boxes of 1e-3 px)
        wh = m.reshape(len(anchors), width, -1)[:, 2:4]
        wh[...] = np.clip(wh, -40, 40)
    dec, ref = CandidateDecoder(SPEC), CandidateDecoder(SPEC)
    got = dec.detect(maps, 0.05, 0.45, 300, quant)
    assert answers and all(a is not None for a in answers) and len(got[0]) > 1
    monkeypatch.setattr(decode_mod, "nms_corners_in_opencv", lambda *a: None)  # the general nms() instead
    want = ref.detect(maps, 0.05, 0.45, 300, quant)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert np.isfinite(dec._plan.boxes.bound)  # a finite bound: the shift path is open
