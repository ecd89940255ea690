"""The one letterbox: geometry, round trip of boxes, tensor layouts and quantized inputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime.preprocess import (boxes_from_letterbox, boxes_to_letterbox, letterbox, letterbox_params,
                                        preprocess, to_tensor)


@pytest.mark.parametrize("hw", [(202, 360), (480, 640), (640, 480), (100, 100), (37, 301), (1080, 1920)])
@pytest.mark.parametrize("size", [64, 128, 320, (256, 320)])
def test_letterbox_box_round_trip_within_half_pixel(hw, size):
    rng = np.random.default_rng(hw[0] * 7 + hw[1])
    img = rng.integers(0, 255, (*hw, 3), dtype=np.uint8)
    out, lb = letterbox(img, size)
    exp = (size, size) if isinstance(size, int) else size
    assert out.shape[:2] == exp
    xy = rng.uniform(0, 1, (40, 2)) * [hw[1], hw[0]]
    boxes = np.concatenate([xy, np.minimum(xy + 20, [hw[1], hw[0]])], 1)
    back = boxes_from_letterbox(boxes_to_letterbox(boxes, lb), lb)
    assert np.abs(back - boxes).max() <= 0.5
    # the content sits inside the padding: padding is the fill colour
    if lb.pad_y >= 1:
        assert (out[0] == 114).all()
    if lb.pad_x >= 1:
        assert (out[:, 0] == 114).all()


def test_letterbox_maps_pixels_where_the_boxes_say():
    img = np.zeros((200, 400, 3), np.uint8)
    img[50:150, 100:300] = 255  # a white box
    out, lb = letterbox(img, 200)
    x1, y1, x2, y2 = boxes_to_letterbox(np.array([[100, 50, 300, 150]]), lb)[0]
    inside = out[int(y1) + 2:int(y2) - 2, int(x1) + 2:int(x2) - 2]
    assert inside.min() == 255
    assert out[int(y1) - 3, int(x1) - 3].max() < 255


def test_auto_pads_to_stride_multiple():
    lb = letterbox_params((202, 360), 320, stride=32, auto=True)
    assert (lb.dst_w, lb.dst_h) == (320, 192)
    lb = letterbox_params((100, 100), 320, scaleup=False)
    assert lb.scale == 1.0 and lb.pad_x == 110


def test_to_tensor_layouts_and_dtypes():
    img = np.zeros((4, 6, 3), np.uint8)
    img[..., 0] = 10  # blue in BGR
    x = to_tensor(img, "NCHW", "float32", rgb=True)
    assert x.shape == (1, 3, 4, 6) and np.allclose(x[0, 2], 10 / 255) and np.allclose(x[0, 0], 0)
    assert to_tensor(img, "NHWC", "uint8").shape == (1, 4, 6, 3)
    q = to_tensor(np.full((2, 2, 3), 128, np.uint8), "NHWC", "int8", quant=(1 / 255, -128))
    assert q.dtype == np.int8 and int(q[0, 0, 0, 0]) == 0
    u = to_tensor(np.full((2, 2, 3), 255, np.uint8), "NCHW", "uint8", quant=(1 / 255, 0))
    assert int(u.max()) == 255
    with pytest.raises(ValueError):
        to_tensor(np.zeros((4, 4)), "NCHW")
    with pytest.raises(ValueError):
        to_tensor(img, "CHW")


def test_preprocess_is_letterbox_plus_tensor():
    img = np.random.default_rng(0).integers(0, 255, (202, 360, 3), dtype=np.uint8)
    x, lb = preprocess(img, 128)
    ref, _ = letterbox(img, 128)
    np.testing.assert_allclose(x, to_tensor(ref))
    assert lb.dst_w == 128
