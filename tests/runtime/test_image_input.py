"""Images given to ``predict`` as arrays: other bit depths are scaled, empty ones are one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.runtime.model import as_bgr, read_image


def test_uint16_is_scaled_not_clipped(sample_image):
    img8 = read_image(sample_image)
    img16 = img8.astype(np.uint16) * 257  # what a 16-bit PNG of the same picture holds
    assert np.array_equal(as_bgr(img16), img8)  # clipping would have made it all 255


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 8, 3), (8, 0), (0,)])
def test_an_empty_array_is_an_edgekit_error(shape):
    with pytest.raises(EdgekitError, match="an empty image"):
        as_bgr(np.zeros(shape, np.uint8))


def test_float_unit_range_and_gray_and_bgra():
    assert as_bgr(np.ones((2, 2, 3), np.float32))[0, 0].tolist() == [255, 255, 255]
    assert as_bgr(np.full((2, 2), 7, np.uint8)).shape == (2, 2, 3)
    assert as_bgr(np.zeros((2, 2, 4), np.uint8)).shape == (2, 2, 3)


@pytest.mark.parametrize("options,message", [({"conf": 2.0}, "conf=2.0 is out of range"),
                                             ({"conf": float("nan")}, "conf=nan is out of range"),
                                             ({"iou": -1}, "iou=-1 is out of range"),
                                             ({"max_det": 0}, "max_det=0 is out of range")])
def test_python_api_thresholds_are_checked(fast_exports, sample_image, options, message):
    """`predict(conf=2)` used to return silently wrong results (issue 21, class 6, for the Python API)."""
    from edgekit.runtime import load

    det = load(fast_exports["onnx"], threads=1)
    with pytest.raises(EdgekitError, match=message):
        det.predict(str(sample_image), **options)
