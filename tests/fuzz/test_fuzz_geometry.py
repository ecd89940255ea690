"""Property tests (hypothesis) of the letterbox and its inverse, and of NMS."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgekit.runtime.boxes import box_iou, nms
from edgekit.runtime.preprocess import boxes_from_letterbox, boxes_to_letterbox, letterbox, letterbox_params
from tests.fuzz.conftest import count

SIZES = st.one_of(st.integers(1, 64).map(lambda k: 32 * k), st.tuples(st.integers(1, 4096), st.integers(1, 4096)))


@given(h=st.integers(1, 8000), w=st.integers(1, 8000), size=SIZES, auto=st.booleans(), scaleup=st.booleans(),
       data=st.data())
def test_letterbox_inverse(h, w, size, auto, scaleup, data):
    count("letterbox")
    lb = letterbox_params((h, w), size, auto=auto, scaleup=scaleup)
    new_w, new_h = int(round(w * lb.scale)), int(round(h * lb.scale))
    assert lb.pad_x >= 0 and lb.pad_y >= 0 and lb.pad_x + new_w <= lb.dst_w and lb.pad_y + new_h <= lb.dst_h
    x1 = data.draw(st.floats(0, w)); x2 = data.draw(st.floats(x1, w))
    y1 = data.draw(st.floats(0, h)); y2 = data.draw(st.floats(y1, h))
    box = np.array([[x1, y1, x2, y2]], np.float64)
    there = boxes_to_letterbox(box, lb)
    assert (there[:, [0, 2]] >= lb.pad_x - 1e-3).all() and (there[:, [0, 2]] <= lb.pad_x + w * lb.scale + 1e-2).all()
    back = boxes_from_letterbox(there, lb)
    # float32 on the way: a few ulps of the larger side, in source pixels
    tol = 4 * np.finfo(np.float32).eps * max(w, h, lb.dst_w / lb.scale, lb.dst_h / lb.scale) + 1e-4
    assert np.allclose(back, box, atol=tol, rtol=0), (back, box, tol)
    assert (back[:, [0, 2]] >= 0).all() and (back[:, [0, 2]] <= w).all() and (back[:, [1, 3]] <= h).all()


@given(h=st.integers(1, 300), w=st.integers(1, 300), size=SIZES.filter(lambda s: isinstance(s, int) and s <= 640))
def test_letterbox_image_shape(h, w, size):
    count("letterbox-image")
    img, lb = letterbox(np.zeros((h, w, 3), np.uint8), size)
    assert img.shape == (lb.dst_h, lb.dst_w, 3) == (size, size, 3)


BOXES = st.integers(0, 40).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, (n, 2), elements=st.floats(-50, 500)),
    hnp.arrays(np.float64, (n, 2), elements=st.floats(0, 200)),
    hnp.arrays(np.float64, (n,), elements=st.floats(0, 1)),
    hnp.arrays(np.int64, (n,), elements=st.integers(0, 3))))


def _reference(boxes, scores, classes, thr):
    """Greedy NMS the slow way: every pair, per class."""
    keep = []
    for i in np.argsort(-scores, kind="stable"):
        if all(classes[k] != classes[i] or box_iou(boxes[k:k + 1], boxes[i:i + 1])[0, 0] <= thr for k in keep):
            keep.append(i)
    return keep


@given(data=BOXES, thr=st.floats(0.05, 0.95), max_det=st.integers(1, 50), agnostic=st.booleans())
def test_nms(data, thr, max_det, agnostic):
    count("nms")
    xy, wh, scores, classes = data
    boxes = np.concatenate([xy, xy + wh], axis=1)
    cls = np.zeros_like(classes) if agnostic else classes
    kept = nms(boxes, scores, None if agnostic else classes, iou_threshold=thr, max_det=max_det)
    assert len(kept) <= max_det and len(set(kept.tolist())) == len(kept)
    assert (np.diff(scores[kept]) <= 0).all()  # by descending score
    iou = box_iou(boxes[kept], boxes[kept]) if len(kept) else np.zeros((0, 0))
    same = cls[kept][:, None] == cls[kept][None, :]
    np.fill_diagonal(iou, 0)
    assert (iou[same] <= thr + 1e-6).all()  # no two kept boxes of a class overlap above the threshold
    ref = _reference(boxes, scores, cls, thr)
    # the same boxes as the pairwise reference, except where an IoU sits within rounding of the threshold
    all_iou = box_iou(boxes, boxes)
    assume(not np.any(np.abs(all_iou - thr) < 1e-9))
    assert kept.tolist() == ref[:max_det]
