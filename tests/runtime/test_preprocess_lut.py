"""``to_tensor``'s table path gives the float formula's values bit for bit (every dtype, layout, mean/std, quant).

The reference below is the formula ``to_tensor`` used before the 256-entry table: the pixels a
model was calibrated on must stay the pixels it sees, so the fast path may not move one value.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgekit.runtime.preprocess import _apply_lut, _value_table, to_tensor


def reference(image, layout="NCHW", dtype="float32", rgb=True, mean=(0.0,) * 3, std=(255.0,) * 3, quant=None):
    x = image[..., ::-1] if rgb else image
    if dtype == "uint8" and quant is None:
        out = np.ascontiguousarray(x)
    else:
        x = (x.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        if quant is not None:
            scale, zero = quant
            info = np.iinfo(np.dtype(dtype))
            x = np.clip(np.round(x / scale) + zero, info.min, info.max)
        out = x.astype(dtype)
    if layout == "NCHW":
        out = out.transpose(2, 0, 1)
    return np.ascontiguousarray(out[None])


CASES = [("float32", None), ("float16", None), ("uint8", None), ("int8", (1 / 255, -128)), ("uint8", (1 / 255, 0)),
         ("int8", (0.0172, 3))]
NORMS = [((0.0,) * 3, (255.0,) * 3), ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)), ((127.5,) * 3, (127.5,) * 3)]


@pytest.mark.parametrize("layout,rgb", list(itertools.product(["NCHW", "NHWC"], [True, False])))
def test_table_path_equals_the_float_formula(layout, rgb):
    img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    img[0, :3] = [[0, 0, 0], [255, 255, 255], [127, 128, 129]]  # the ends and the rounding middle
    for (dtype, quant), (mean, std) in itertools.product(CASES, NORMS):
        got = to_tensor(img, layout, dtype, rgb, mean, std, quant)
        want = reference(img, layout, dtype, rgb, mean, std, quant)
        assert got.dtype == want.dtype and got.shape == want.shape, (dtype, quant, mean)
        assert np.array_equal(got, want), (layout, rgb, dtype, quant, mean)


def test_numpy_fallback_equals_opencv():
    img = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    for args in [("int8", (0.0,) * 3, (255.0,) * 3, (1 / 255, -128)), ("float32", (1.0, 2.0, 3.0), (4.0, 5.0, 6.0), None)]:
        table = _value_table(*args)
        by_numpy = np.take_along_axis(table, img.reshape(-1, 3).astype(np.intp), axis=0).reshape(img.shape)
        assert np.array_equal(_apply_lut(img, False, table), by_numpy)
        assert np.array_equal(_apply_lut(img, True, table), np.take_along_axis(
            table, img[..., ::-1].reshape(-1, 3).astype(np.intp), axis=0).reshape(img.shape))
