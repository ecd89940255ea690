"""OpenVINO INT8 IRs on an emulated Cortex-A72 (no dot product): they load and match x86.

OpenVINO 2026.4's aarch64 CPU plugin cannot compile NNCF's INT8 MobileNetV2-YOLO with its
low-precision transformations on an ARMv8.0 core ("object is not initialized" from oneDNN); the
backend runs such IRs there with them off (the FakeQuantize ops in fp32). A 64 px random
``mobilenetv2_050-yolo`` reproduces the failure (the yolo-lite of ``fast_exports`` does not:
it has no linear bottleneck feeding a requantized 1x1 convolution), so it is exported here.
``slow``: one NNCF export and one emulated OpenVINO run (about a minute each on a quiet machine).
"""

from __future__ import annotations

import sys

import pytest

from edgekit.arm.verify import verify_arm

pytestmark = [pytest.mark.arm, pytest.mark.slow]


@pytest.fixture(scope="module")
def openvino_int8_mobilenet(tmp_path_factory, sample_yaml):
    from edgekit.arm.setup import setup
    from edgekit.errors import EdgekitError
    from edgekit.export import export
    from tests.export.export_helpers import make_checkpoint

    try:
        setup(None, ("openvino",), log=lambda m: print(f"arm setup: {m}", file=sys.stderr))
    except EdgekitError as exc:
        pytest.fail(f"the emulated aarch64 userland could not be set up: {exc}", pytrace=False)
    out = tmp_path_factory.mktemp("ov-int8-mobilenet")
    ckpt = make_checkpoint(out / "m.pt", "mobilenetv2_050-yolo", 64, names=["a", "b"])
    rep = export(ckpt, ["openvino-int8"], out=out, calib=sample_yaml.parent / "train" / "images", calib_images=16)
    assert rep.results[0].ok, rep.results[0].reason
    return out / rep.results[0].file


def test_openvino_int8_loads_and_matches_on_a72(openvino_int8_mobilenet):
    r = verify_arm(openvino_int8_mobilenet, "cortex-a72", images=2, record=False)
    assert r["runtime"] == "openvino" and r["x86"]["precision"] == "int8"
    assert r["precision"] == "fakequant-fp32", r  # no int8 kernels on this core: said so, not called int8
    assert r["match"] and r["cosine"] >= 0.98, r
