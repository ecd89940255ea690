"""ncnn INT8 made in Python (ncnn2table + ncnn2int8): the files ncnn's own int8 kernels run.

The export -> gate -> load round trip is ``test_every_target.py`` on ``fast_exports``; here the
pieces: the .bin walker rewrites an fp32 model byte for byte when the table is empty, every
convolution of the INT8 artifact is stored in int8 with its scales, the table is ncnn's text
format, and an fp16 .bin is refused in one line.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.export.ncnn_int8 import INT8_TAG, QUANTIZED, apply_table, make_table, read_table, read_weights
from edgekit.runtime.ncnn_backend import read_param

pytest.importorskip("ncnn")


def test_empty_table_rewrites_the_fp32_model_byte_for_byte(fast_exports, tmp_path):
    param = fast_exports["ncnn"]
    assert apply_table(param, "", tmp_path / "same.param") == 0
    assert (tmp_path / "same.bin").read_bytes() == param.with_suffix(".bin").read_bytes()
    assert (tmp_path / "same.param").read_text() == param.read_text()


def test_int8_artifact_stores_every_convolution_in_int8(fast_exports):
    from edgekit.runtime.runner import read_manifest

    param = fast_exports["ncnn-int8"]
    layers = read_param(param.read_text())
    quant = [layer for layer in layers if layer["type"] in QUANTIZED]
    assert quant and all(layer["params"].get("8") in ("1", "2") for layer in quant)
    man = read_manifest(param)
    assert man["conversion"]["quantized_layers"] == len(quant) and man["precision"] == "int8"
    data = param.with_suffix(".bin").read_bytes()
    assert struct.unpack_from("<I", data, 0)[0] == INT8_TAG  # the first convolution's weights
    assert len(data) < 0.5 * fast_exports["ncnn"].with_suffix(".bin").stat().st_size


def test_table_is_ncnns_text_format(fast_exports, sample_yaml):
    from edgekit.export.calibration import CalibrationReader

    param = fast_exports["ncnn"]
    reader = CalibrationReader.from_source(sample_yaml, imgsz=64, images=4)
    quant = [layer for layer in read_param(param.read_text()) if layer["type"] in QUANTIZED]
    for method in ("absmax", "aciq", "kl"):
        weights, blobs = read_table(make_table(param, reader, method=method))
        assert set(weights) == set(blobs) == {layer["name"] for layer in quant}
        assert all(np.isfinite(s).all() and (s > 0).all() for s in weights.values())
        assert all(np.isfinite(s) and s > 0 for s in blobs.values())
    with pytest.raises(EdgekitError, match="method"):
        make_table(param, reader, method="minmax")


def test_fp16_weights_are_refused(fast_exports):
    param = fast_exports["ncnn-fp16"]
    with pytest.raises(EdgekitError, match="not fp32") as err:
        read_weights(read_param(param.read_text()), param.with_suffix(".bin").read_bytes())
    assert "\n" not in str(err.value)
