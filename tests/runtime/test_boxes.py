"""Box conversions, IoU and NMS against straightforward references on random cases."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime.boxes import (box_area, box_iou, cxcywh_to_xyxy, nms, xywh_to_xyxy, xyxy_to_cxcywh,
                                   xyxy_to_xywh)


def random_boxes(rng, n, size=100.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 3, (n, 2))
    return np.concatenate([xy, xy + wh], 1)


def iou_ref(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def nms_ref(boxes, scores, classes, thr):
    """The textbook greedy NMS: loop over every pair."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep, dead = [], set()
    for i in order:
        if i in dead:
            continue
        keep.append(i)
        for j in order:
            if j not in dead and j != i and classes[j] == classes[i] and iou_ref(boxes[i], boxes[j]) > thr:
                dead.add(j)
    return keep


def test_conversions_round_trip():
    rng = np.random.default_rng(0)
    b = random_boxes(rng, 50)
    np.testing.assert_allclose(xywh_to_xyxy(xyxy_to_xywh(b)), b)
    np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(b)), b)
    np.testing.assert_allclose(box_area(b), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))


def test_iou_matches_reference():
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 30), random_boxes(rng, 20)
    ref = np.array([[iou_ref(x, y) for y in b] for x in a])
    np.testing.assert_allclose(box_iou(a, b), ref, atol=1e-12)
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 20)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_pairwise_reference(seed, thr):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    boxes = random_boxes(rng, n, size=60.0)  # crowded, so suppression happens
    scores = rng.uniform(0, 1, n).round(2)  # ties on purpose
    classes = rng.integers(0, 3, n)
    got = nms(boxes, scores, classes, iou_threshold=thr, max_det=10_000)
    assert got.tolist() == nms_ref(boxes, scores, classes, thr)


def test_nms_class_agnostic_and_limits():
    b = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    s = np.array([0.9, 0.8, 0.7])
    assert nms(b, s, np.array([0, 1, 0])).tolist() == [0, 1, 2]
    assert nms(b, s, None).tolist() == [0, 2]
    assert nms(b, s, None, max_det=1).tolist() == [0]
    assert nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []
    with pytest.raises(ValueError):
        nms(b, s[:2])


def test_nms_negative_coordinates_stay_class_separated():
    b = np.array([[-50, -50, -40, -40], [-50, -50, -40, -40]], float)
    assert nms(b, np.array([0.9, 0.8]), np.array([0, 1])).tolist() == [0, 1]
