"""The sparse decode (objectness first) keeps exactly the detections of the dense decode, for every head kind."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime.decode import decode_batch, decode_candidates, decode_dense, decode_yolo_outputs

SPECS = {
    "yolo": {"type": "yolo", "num_classes": 3, "strides": [16, 32], "anchors": [[[10, 14], [23, 27]], [[37, 58], [81, 82]]],
             "anchor_units": "pixels", "scale_x_y": [1.05, 1.1], "new_coords": 0},
    "yolo-new-coords": {"type": "yolo", "num_classes": 3, "strides": [16, 32],
                        "anchors": [[[10, 14], [23, 27]], [[37, 58], [81, 82]]], "anchor_units": "pixels",
                        "scale_x_y": [2.0, 2.0], "new_coords": 1},
    "region": {"type": "region", "num_classes": 3, "strides": [32], "anchors": [[[1.1, 2.2], [3.3, 4.4]]],
               "anchor_units": "grid", "scale_x_y": [1.0], "new_coords": 0},
}


def _maps(spec, rng, imgsz=128):
    out = []
    for stride, anchors in zip(spec["strides"], spec["anchors"]):
        g = imgsz // stride
        m = rng.normal(0, 2, (1, len(anchors), 5 + spec["num_classes"], g, g)).astype(np.float32)
        m[:, :, 4] -= 3  # most cells are empty, as in a real map
        m = m.reshape(1, -1, g, g)
        if spec.get("new_coords"):
            m = 1 / (1 + np.exp(-m))  # new_coords maps come out of a sigmoid already
        out.append(m)
    return out


@pytest.mark.parametrize("kind", list(SPECS))
@pytest.mark.parametrize("conf", [0.001, 0.25, 0.6])
def test_sparse_equals_dense(kind, conf):
    spec, rng = SPECS[kind], np.random.default_rng(7)
    found = 0
    for _ in range(5):
        maps = _maps(spec, rng)
        sparse = decode_yolo_outputs(maps, spec, conf=conf, iou=0.45)
        dense = decode_batch(maps, spec, conf=conf, iou=0.45)[0]
        assert len(sparse[0]) == len(dense[0])
        found += len(dense[0])
        np.testing.assert_allclose(sparse[0], dense[0], rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(sparse[1], dense[1], rtol=1e-6)
        assert np.array_equal(sparse[2], dense[2])
    assert found > 0


def test_candidates_are_the_dense_rows_that_may_pass():
    spec, rng = SPECS["yolo"], np.random.default_rng(3)
    maps = _maps(spec, rng)
    dense = decode_dense(maps, spec)[0]
    cand = decode_candidates(maps, spec, conf=0.3)
    passing = dense[dense[:, 4] > 0.3]
    assert len(passing) <= len(cand) < len(dense) / 3
    np.testing.assert_allclose(cand[cand[:, 4] > 0.3], passing, rtol=1e-6, atol=1e-4)
