"""The stretch resize (Darknet's default, OpenCV DNN's ``blobFromImage(crop=False)``) through the runtime:
no padding, x and y scaled apart, boxes mapped back with separate factors, and a manifest that says
``"resize": "stretch"`` honoured by the artifact runner."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtime.fastprep import FramePrep
from edgekit.runtime.preprocess import (boxes_from_letterbox, boxes_to_letterbox, fit_image, preprocess, resize_params,
                                        to_tensor)
from edgekit.runtime.runner import ArtifactRunner

cv2 = pytest.importorskip("cv2")


def frame(h: int = 203, w: int = 361, seed: int = 0) -> np.ndarray:
    """A non-square BGR frame with structure (a resize of noise alone would hide an axis swap less well)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[: h // 3, : w // 4] = (0, 0, 255)  # a red block top-left: a flipped or swapped axis moves it
    return img


def test_stretch_is_opencv_dnns_blob_without_padding():
    img = frame()
    x, lb = preprocess(img, (96, 128), resize="stretch")
    # OpenCV DNN's (and Darknet's) preprocessing of a Darknet net: plain resize to width x height, RGB, /255
    ref = cv2.dnn.blobFromImage(img, 1 / 255.0, (128, 96), swapRB=True, crop=False)
    assert x.shape == ref.shape == (1, 3, 96, 128)
    np.testing.assert_allclose(x, ref, atol=1e-6)
    assert (lb.pad_x, lb.pad_y) == (0.0, 0.0) and (lb.dst_w, lb.dst_h) == (128, 96)
    assert lb.scales == (128 / 361, 96 / 203)
    # the letterbox of the same frame pads (the mode really changes the pixels)
    xl, lbl = preprocess(img, (96, 128))
    assert lbl.pad_y > 0 and not np.allclose(xl, ref, atol=1e-3)


@pytest.mark.parametrize("layout, dtype, quant", [("NCHW", "float32", None), ("NHWC", "int8", (1 / 255, -128)),
                                                  ("NHWC", "uint8", None), ("NCHW", "int8", (0.02, 3))])
def test_frame_prep_stretch_equals_the_reference_path(layout, dtype, quant):
    prep = FramePrep((96, 128), layout, dtype, quant=quant, resize="stretch")
    for img in (frame(), frame(seed=1), frame(96, 128)):  # a second frame reuses the buffers; same size: no resize
        x, lb = prep(img)
        ref_img, ref_lb = fit_image(img, (96, 128), "stretch")
        np.testing.assert_array_equal(x, to_tensor(ref_img, layout, dtype, quant=quant))
        assert lb == ref_lb and lb.pad_x == lb.pad_y == 0.0


def test_stretch_boxes_map_back_with_separate_x_and_y_factors():
    h, w = 203, 361
    lb = resize_params((h, w), 128, "stretch")
    net_boxes = np.array([[32.0, 16.0, 96.0, 112.0], [0.0, 0.0, 128.0, 128.0]], np.float32)
    # what an OpenCV DNN user writes: relative coordinates times the frame's width and height
    want = net_boxes / 128 * np.array([w, h, w, h], np.float32)
    np.testing.assert_allclose(boxes_from_letterbox(net_boxes, lb), want, rtol=1e-6)
    np.testing.assert_allclose(boxes_to_letterbox(want, lb), net_boxes, rtol=1e-5, atol=1e-4)
    # a letterbox would map the same boxes elsewhere: one scale and a vertical pad
    assert not np.allclose(boxes_from_letterbox(net_boxes, resize_params((h, w), 128)), want, atol=1.0)


def test_unknown_resize_mode_is_refused():
    with pytest.raises(ValueError, match="letterbox, stretch"):
        fit_image(frame(), 64, "crop")
    with pytest.raises(ValueError, match="letterbox, stretch"):
        FramePrep((64, 64), resize="crop")


def echo_onnx(path, shape=(1, 3, 96, 128)):
    """A real one-node ONNX model: its input twice along channels (6 = one anchor x (5 + 1 class), a map the
    manifest's decoding accepts), so what the runner fed the model is what comes out."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [shape[0], 2 * shape[1], *shape[2:]])
    graph = helper.make_graph([helper.make_node("Concat", ["images", "images"], ["out"], axis=1)], "echo", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def _manifest(resize: str | None) -> dict:
    pre = {"imgsz": [96, 128], "pad_value": 114, "color": "RGB", "scale": 255.0, "mean": [0.0, 0.0, 0.0]}
    if resize:
        pre["resize"] = resize
    spec = {"type": "yolo", "num_classes": 1, "imgsz": [96, 128], "strides": [32], "anchors": [[[16.0, 16.0]]],
            "anchor_units": "pixels", "scale_x_y": [1.0], "new_coords": 0}
    return {"format": "edgekit-manifest-1", "task": "detect", "model": "m", "target": "onnx", "backend": "onnxruntime",
            "files": ["m.onnx"], "input": {"name": "images", "shape": [1, 3, 96, 128], "layout": "NCHW",
                                          "dtype": "float32"},
            "outputs": [{"name": "out", "shape": [1, 6, 96, 128], "layout": "NCHW", "dtype": "float32"}],
            "preprocess": pre, "decode": spec, "names": ["a"]}


@pytest.mark.parametrize("resize", ["stretch", "letterbox", None])
def test_runner_feeds_the_manifests_resize(tmp_path, resize):
    img = frame()
    runner = ArtifactRunner(echo_onnx(tmp_path / "m.onnx"), _manifest(resize))
    (out,), lb = runner.infer(img)
    fed = out[:, :3]
    want, want_lb = preprocess(img, (96, 128), resize=resize or "letterbox")  # no key: older manifests letterboxed
    np.testing.assert_array_equal(fed, want)
    assert lb == want_lb and runner.fit(img)[1] == want_lb
    if resize == "stretch":
        np.testing.assert_allclose(fed, cv2.dnn.blobFromImage(img, 1 / 255.0, (128, 96), swapRB=True, crop=False),
                                   atol=1e-6)


def test_manifest_with_an_unknown_resize_is_one_clear_line(tmp_path):
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match="'preprocess.resize' is 'crop', not one of letterbox, stretch"):
        ArtifactRunner(echo_onnx(tmp_path / "m.onnx"), _manifest("crop"))
