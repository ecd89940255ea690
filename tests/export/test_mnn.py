"""MNN exports: fp32 through MNNConvert, full INT8 through mnnquant, both verified in MNN's runtime.

The round trip of both targets (export -> gate -> load -> predict) is the registry-driven
``test_every_target.py`` on the session's ``fast_exports``; here: what is particular to MNN.
The INT8 file must be full INT8 (int8 weights *and* activations in every convolution), must be
calibrated on the reader's own letterboxed pixels, and the tools' failures must be one clear line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.export.targets import TARGETS
from tests.export.export_helpers import TINY_CALIB

pytest.importorskip("MNN")


def test_targets_are_registered_with_their_backend():
    assert TARGETS["mnn"].precision == "fp32" and TARGETS["mnn-int8"].precision == "int8"
    for name in ("mnn", "mnn-int8"):
        t = TARGETS[name]
        assert t.backend == "mnn" and t.suffix == ".mnn" and t.companions == () and t.from_onnx and t.extra == "export"


def test_int8_artifact_is_full_int8_and_calibrated_on_the_reader(fast_exports):
    from edgekit.runtime.runner import read_manifest

    fp32, int8 = fast_exports["mnn"], fast_exports["mnn-int8"]
    man = read_manifest(int8)
    summary = man["conversion"]["int8"]
    assert summary["convolutions"] > 0
    assert summary["int8_weights"] == summary["int8_activations"] == summary["convolutions"]
    assert man["precision"] == "int8" and man["calibration"]["images"] == TINY_CALIB
    assert "EMA" in man["conversion"]["quantization"]["activations"]
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size  # int8 weights: about a quarter
    assert read_manifest(fp32)["conversion"]["converter"].startswith("MNNConvert")
    assert json.loads(Path(str(int8) + ".json").read_text())["target"] == "mnn-int8"  # the sidecar carries it
    assert sorted(p.name for p in int8.parent.glob(int8.stem + "*")) == [int8.name, int8.name + ".json"]  # no mnnquant dump


def test_calibration_images_are_the_readers_pixels(sample_yaml, tmp_path):
    import cv2

    from edgekit.export.calibration import CalibrationReader
    from edgekit.export.mnn import write_calibration_images

    reader = CalibrationReader.from_source(sample_yaml, imgsz=(64, 96), images=3)
    assert write_calibration_images(reader, tmp_path) == (3, 64, 96)
    for k, png in enumerate(sorted(tmp_path.glob("*.png"))):
        rgb = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None] / 255.0
        assert np.abs(rgb - reader.tensor(k)).max() < 1e-6  # what MNN computes with normal = 1/255


def test_converter_failures_are_one_line_and_leave_nothing(tmp_path):
    from edgekit.export.mnn import onnx2mnn, onnx2mnn_int8

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx file")
    out = tmp_path / "m.mnn"
    with pytest.raises(EdgekitError) as err:
        onnx2mnn(bad, out)
    assert "\n" not in str(err.value) and "MNN" in str(err.value)
    assert not out.exists()
    with pytest.raises(EdgekitError, match=r"\.mnn file"):
        onnx2mnn(bad, tmp_path / "m.bin")
    with pytest.raises(EdgekitError, match="calibration images"):
        onnx2mnn_int8(bad, out, None)
