"""``FramePrep`` (what ``ArtifactRunner.prepare`` runs) equals letterbox + to_tensor bit for bit, frame after frame."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgekit.runtime.fastprep import FramePrep
from edgekit.runtime.preprocess import letterbox, to_tensor

CONTRACTS = [("float32", None), ("int8", (1 / 255, -128)), ("int8", (0.003921568859368563, -128)), ("uint8", None),
             ("uint8", (1 / 255, 0)), ("int8", (0.02, 3)), ("float16", None)]


@pytest.mark.parametrize("layout,rgb", list(itertools.product(["NCHW", "NHWC"], [True, False])))
def test_frameprep_equals_letterbox_and_to_tensor(layout, rgb):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, hw + (3,), dtype=np.uint8) for hw in [(202, 360), (202, 360), (576, 768), (64, 64), (50, 100)]]
    for (dtype, quant), size in itertools.product(CONTRACTS, [(64, 64), (48, 64)]):
        prep = FramePrep(size, layout, dtype, quant, rgb=rgb, pad_value=114)
        for img in frames:  # same size twice (buffers reused), then new sizes (buffers rebuilt)
            got, lb = prep(img)
            ref_img, ref_lb = letterbox(img, size, color=114)
            want = to_tensor(ref_img, layout, dtype, rgb, quant=quant)
            assert lb == ref_lb and got.dtype == want.dtype and np.array_equal(got, want), (dtype, quant, size, img.shape)


def test_returned_tensors_are_not_overwritten_by_the_next_frame():
    prep = FramePrep((32, 32), "NHWC", "int8", (1 / 255, -128))
    a, _ = prep(np.zeros((32, 32, 3), np.uint8))
    b, _ = prep(np.full((32, 32, 3), 255, np.uint8))
    assert int(a.max()) == -128 and int(b.min()) == 127


def test_unusual_inputs_take_the_reference_path():
    prep = FramePrep((16, 16), "NCHW", "float32")
    img = np.random.default_rng(2).random((10, 20, 3)).astype(np.float32) * 255  # not uint8
    got, lb = prep(img)
    ref_img, ref_lb = letterbox(img, (16, 16))
    assert np.array_equal(got, to_tensor(ref_img, "NCHW", "float32")) and lb == ref_lb


@pytest.mark.parametrize("dtype,quant", [("int8", (1 / 255, -128)), ("uint8", (1 / 255, 0)), ("uint8", None)])
@pytest.mark.parametrize("pad_value", [0, 114, 255])
def test_tensor_written_in_place_equals_the_reference(pad_value, dtype, quant):
    """The usual INT8 NHWC input (and a plain uint8 one) is written straight into each new tensor (image part, then
    pad bands): top/bottom pads, left/right pads, odd pads, no resize; every pad value; BGR and RGB."""
    rng = np.random.default_rng(pad_value)
    frames = [rng.integers(0, 256, hw + (3,), dtype=np.uint8) for hw in [(202, 360), (360, 202), (63, 64), (64, 64),
                                                                           (31, 97), (64, 64)]]
    for rgb in (True, False):
        prep = FramePrep((64, 64), "NHWC", dtype, quant, rgb=rgb, pad_value=pad_value)
        kept = []
        for img in frames:
            got, lb = prep(img)
            ref_img, ref_lb = letterbox(img, (64, 64), color=pad_value)
            want = to_tensor(ref_img, "NHWC", dtype, rgb, quant=quant)
            assert lb == ref_lb and got.dtype == want.dtype and np.array_equal(got, want), (img.shape, rgb)
            kept.append((got, want))
        assert all(np.array_equal(g, w) for g, w in kept)  # no tensor was written again by a later frame


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
@pytest.mark.parametrize("dtype,quant", [("int8", (1 / 255, -128)), ("uint8", (1 / 255, 0))])
def test_a_bgr_model_is_resized_straight_into_its_tensor(resize, dtype, quant):
    """A model exported with --input-color BGR: no swap, the resize writes the tensor's image rows itself
    (stretch: the whole tensor; letterbox: the rows between top and bottom pads), reused tensor or fresh."""
    from edgekit.runtime.preprocess import fit_image

    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, hw + (3,), dtype=np.uint8) for hw in [(202, 360), (202, 360), (64, 64), (360, 202)]]
    for reuse in (False, True):
        prep = FramePrep((64, 96), "NHWC", dtype, quant, rgb=False, pad_value=114, resize=resize)
        for img in frames:
            got, lb = prep(img, reuse=reuse)
            ref_img, ref_lb = fit_image(img, (64, 96), resize, 114)
            want = to_tensor(ref_img, "NHWC", dtype, False, quant=quant)
            assert lb == ref_lb and got.dtype == want.dtype and np.array_equal(got, want), (img.shape, reuse)
