"""``--input-color BGR``: the channel swap folded into a .tflite's first convolution, honoured by the runtime.

The same checkpoint exported RGB and BGR gives the same INT8 outputs for the same camera frame (the BGR
artifact fed the frame as OpenCV reads it, the RGB one through the usual swap): the fold and the runtime's
reading of ``preprocess.color`` are checked together, bit for bit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")

from edgekit.errors import EdgekitError  # noqa: E402
from tests.export.export_helpers import small_test_split  # noqa: E402


@pytest.fixture(scope="module")
def two_test_images(sample_yaml, tmp_path_factory):
    return small_test_split(sample_yaml, tmp_path_factory.mktemp("two-test"), 2)


@pytest.fixture(scope="module")
def rgb_and_bgr(tiny_detector, two_test_images, tmp_path_factory):
    from edgekit.export import export

    arts = {}
    for color in ("RGB", "BGR"):
        out = tmp_path_factory.mktemp(f"color-{color}")
        rep = export(tiny_detector, ["tflite-int8"], data=two_test_images, calib_images=8, out=out, parity_images=2,
                     io="uint8", input_color=color)
        (row,) = rep.results
        assert row.ok, row.reason
        arts[color] = out / row.file
    return arts


def test_a_bgr_artifact_gives_the_rgb_artifacts_outputs_for_the_same_frame(rgb_and_bgr, sample_yaml):
    import cv2

    from edgekit.runtime.runner import ArtifactRunner, read_manifest

    rgb, bgr = (ArtifactRunner(rgb_and_bgr[c], threads=1) for c in ("RGB", "BGR"))
    assert read_manifest(rgb_and_bgr["BGR"])["preprocess"]["color"] == "BGR" and not bgr.rgb
    assert read_manifest(rgb_and_bgr["RGB"])["preprocess"]["color"] == "RGB" and rgb.rgb
    frames = sorted((sample_yaml.parent / "test" / "images").glob("*.jpg"))[:3]
    assert frames
    differs = False
    for path in frames:
        img = cv2.imread(str(path))
        x_rgb, lb = rgb.prepare(img)
        x_bgr, lb2 = bgr.prepare(img)
        assert lb == lb2 and np.array_equal(x_bgr, x_rgb[..., ::-1])  # the frame's own order, nothing else changed
        a, _ = rgb.run_raw(x_rgb)
        b, _ = bgr.run_raw(x_bgr)
        assert all(np.array_equal(u, v) for u, v in zip(a, b)), path.name
        # and the fold matters: the BGR artifact fed the swapped (RGB) tensor answers otherwise
        c, _ = bgr.run_raw(x_rgb)
        differs |= not all(np.array_equal(u, v) for u, v in zip(a, c))
    assert differs


def test_fold_refuses_a_graph_whose_input_does_not_go_straight_to_a_convolution(tmp_path):
    torch = pytest.importorskip("torch")
    from edgekit.export.input_color import fold_bgr
    from edgekit.export.tflite import torch2tflite

    class Mixed(torch.nn.Module):  # the input feeds a convolution and a mean: no one filter to reverse
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return [self.conv(x) + x.mean()]

    path = tmp_path / "mixed.tflite"
    torch2tflite(Mixed().eval(), (16, 16), path)
    with pytest.raises(EdgekitError, match="reach a convolution directly.*export this model RGB"):
        fold_bgr(path.read_bytes())


def test_bgr_is_refused_for_targets_it_is_not_built_for(tiny_detector, tmp_path):
    from edgekit.export import export

    with pytest.raises(EdgekitError, match="--input-color BGR is built for tflite targets.*not onnx"):
        export(tiny_detector, ["onnx", "tflite"], out=tmp_path, input_color="BGR")
    with pytest.raises(EdgekitError, match="choose RGB"):
        export(tiny_detector, ["tflite"], out=tmp_path, input_color="GBR")
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_a_manifest_with_an_unknown_colour_order_is_refused(rgb_and_bgr, tmp_path):
    from edgekit.runtime.contract import check_manifest
    from edgekit.runtime.runner import read_manifest

    man = read_manifest(rgb_and_bgr["BGR"])
    man["preprocess"]["color"] = "GBR"
    with pytest.raises(EdgekitError, match="'preprocess.color' is 'GBR', not RGB or BGR"):
        check_manifest(json.loads(json.dumps(man)), "m.tflite.json")
