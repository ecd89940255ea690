"""runtime.decode: hand-made head maps whose boxes are known."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from edgekit.runtime.decode import anchors_in_pixels, decode_batch, decode_dense, decode_output, decode_yolo_outputs

LOW = -20.0  # logit of "nothing here"


def spec(kind="yolo", nc=2, anchors=((10, 20), (30, 40)), stride=8, **kw):
    s = {"type": kind, "num_classes": nc, "imgsz": [32, 32], "strides": [stride],
         "anchors": [[list(a) for a in anchors]], "anchor_units": "grid" if kind == "region" else "pixels",
         "scale_x_y": [1.0], "new_coords": 0}
    s.update(kw)
    return s


def empty_map(n_anchors=2, nc=2, h=4, w=4, batch=1):
    out = np.zeros((batch, n_anchors, 5 + nc, h, w), np.float32)
    out[:, :, 4] = LOW
    return out


def logit(p):
    return math.log(p / (1 - p))


def test_yolo_known_cell_gives_known_box():
    m = empty_map()
    # anchor 1 at row 1, column 2 of a 4x4 grid (stride 8)
    m[0, 1, :, 1, 2] = [logit(0.25), logit(0.75), math.log(2.0), math.log(0.5), logit(0.9), logit(0.2), logit(0.8)]
    boxes, scores, ids = decode_yolo_outputs([m.reshape(1, -1, 4, 4)], spec(), conf=0.5)
    cx, cy, w, h = (2 + 0.25) * 8, (1 + 0.75) * 8, 2 * 30, 0.5 * 40
    np.testing.assert_allclose(boxes, [[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]], rtol=1e-5)
    np.testing.assert_allclose(scores, [0.9 * 0.8], rtol=1e-5)
    assert ids.tolist() == [1] and boxes.dtype == np.float32 and ids.dtype == np.int64


def test_rows_are_ordered_row_column_anchor():
    m = empty_map()
    m[0, 1, 4, 1, 2] = 0.0
    rows = decode_dense([m.reshape(1, -1, 4, 4)], spec())[0]
    assert rows.shape == (4 * 4 * 2, 7)
    assert np.argmax(rows[:, 4]) == (1 * 4 + 2) * 2 + 1  # OpenCV's (y * W + x) * A + a


def test_region_softmax_and_grid_anchors():
    s = spec("region", nc=3, anchors=((1.5, 2.0),), stride=32)
    m = np.zeros((1, 1, 8, 2, 2), np.float32)
    m[0, 0, 5:, 0, 1] = [0.0, math.log(2.0), math.log(5.0)]  # softmax -> 1/8, 2/8, 5/8
    rows = decode_dense([m.reshape(1, 8, 2, 2)], s)[0]
    r = rows[1]  # row 0, column 1
    np.testing.assert_allclose(r[:5], [(1 + 0.5) * 32, 0.5 * 32, 1.5 * 32, 2.0 * 32, 0.5], rtol=1e-6)
    np.testing.assert_allclose(r[5:], [1 / 8, 2 / 8, 5 / 8], rtol=1e-5)
    # at another input size region anchors scale with the grid, as in Darknet
    rows_wide = decode_dense([m.reshape(1, 8, 2, 2)], s, imgsz=(64, 128))[0]
    np.testing.assert_allclose(rows_wide[1, :4], [1.5 * 64, 0.5 * 32, 1.5 * 64, 2.0 * 32], rtol=1e-6)
    assert anchors_in_pixels(s)[0].tolist() == [[48.0, 64.0]]


def test_yolo_anchors_do_not_scale_with_input():
    m = np.zeros((1, 7, 1, 1), np.float32)
    a = decode_dense([m], spec(anchors=((10, 20),), stride=32))[0, 0]
    b = decode_dense([m], spec(anchors=((10, 20),), stride=32), imgsz=64)[0, 0]
    assert a[:4].tolist() == [16, 16, 10, 20] and b[:4].tolist() == [32, 32, 10, 20]


def test_scale_x_y_and_new_coords():
    m = np.zeros((1, 7, 1, 1), np.float32)
    m[0, 0] = 10.0  # sigmoid ~ 1
    r = decode_dense([m], spec(anchors=((10, 20),), stride=32, scale_x_y=[2.0]))[0, 0]
    assert r[0] == pytest.approx((1.0 * 2 - 0.5) * 32, rel=1e-4)  # YOLOv4: the centre can reach past the cell
    n = np.zeros((1, 7, 1, 1), np.float32)
    n[0, :5, 0, 0] = [0.5, 0.25, 0.5, 1.0, 0.7]  # already through a sigmoid
    r = decode_dense([n], spec(anchors=((10, 20),), stride=32, new_coords=1))[0, 0]
    np.testing.assert_allclose(r[:5], [16, 8, 4 * 0.25 * 10, 4 * 1.0 * 20, 0.7], rtol=1e-6)


def test_threshold_nms_multilabel_and_batch():
    m = empty_map(batch=2)
    for y, x in [(1, 1), (1, 2)]:  # two heavily overlapping boxes, same class
        m[0, 1, :, y, x] = [0, 0, math.log(4.0), math.log(4.0), logit(0.9), LOW, logit(0.9)]
    m[0, 1, 4, 1, 2] = logit(0.8)
    m[0, 0, :, 3, 3] = [0, 0, 0, 0, logit(0.9), logit(0.7), logit(0.6)]  # two classes above 0.5
    outs = [m.reshape(2, -1, 4, 4)]
    (boxes, scores, ids), (b2, s2, i2) = decode_batch(outs, spec(), conf=0.5)
    assert len(b2) == 0 and b2.shape == (0, 4)  # second image is empty
    assert ids.tolist() == [1, 0] and scores[0] == pytest.approx(0.81, rel=1e-5)  # the 0.72 box was suppressed
    one = [o[:1] for o in outs]
    for a, b in zip(decode_yolo_outputs(one, spec(), conf=0.5), (boxes, scores, ids)):
        np.testing.assert_array_equal(a, b)
    assert len(decode_yolo_outputs(one, spec(), conf=0.5, iou=None)[0]) == 3
    multi = decode_yolo_outputs(one, spec(), conf=0.5, multi_label=True)
    assert sorted(multi[2].tolist()) == [0, 1, 1]
    assert len(decode_yolo_outputs(one, spec(), conf=0.5, max_det=1)[0]) == 1
    with pytest.raises(ValueError, match="decode_batch"):
        decode_yolo_outputs(outs, spec())


def test_multiple_outputs_and_errors():
    s = spec(anchors=((10, 10),), stride=16)
    s["strides"], s["anchors"], s["scale_x_y"] = [16, 32], [[[10, 10]], [[50, 50]]], [1.0, 1.0]
    outs = [np.zeros((1, 7, 4, 4)), np.zeros((1, 7, 2, 2))]
    rows = decode_dense(outs, s)[0]
    assert rows.shape == (16 + 4, 7) and rows[16, 2] == 50  # second output's anchor
    with pytest.raises(ValueError, match="does not hold"):
        decode_output(np.zeros((1, 8, 4, 4)), s, 0, (64, 64))
    with pytest.raises(ValueError, match="1 outputs"):
        decode_dense(outs[:1], s)


def test_decode_imports_numpy_only():
    code = "import sys, edgekit.runtime.decode; print(sorted(m for m in ('torch', 'cv2', 'onnx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
