"""Runtime test fixtures: artifacts exported once per session, in two tiers.

``fast_exports`` (``make test``; defined in tests/conftest.py, shared with the export tests): a
tiny detector, yolo-lite at 64 px with random but realistically scaled weights
(``tests.export.export_helpers.make_checkpoint``), exported to every installed target. ``export`` still checks each artifact's parity against the torch model; there
is no mAP gate (random weights have no accuracy to keep). Its outputs are real tensors that decode
into boxes, which is all the loading, predicting, CLI, error and leanness tests need, and the nine
conversions of a 7-layer net take seconds where the shipped 320 px detector's take minutes.

``real_exports`` (``slow`` tier): the shipped Fish4Knowledge detector (a real trained model) at
its own 320 px (at 160 px this 320-trained model scores ~0.02 mAP50, too little to compare) with
the default 100 calibration images (with 32, openvino-int8 failed the 0.02 mAP gate on the 40
test images: -0.032), each through the mAP gate on the sample: for the tests about accuracy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "edgekit" / "assets" / "weights" / "mobilenetv2_050-yolo-fish4knowledge-320.pt"


@pytest.fixture(scope="session")
def shipped_detector() -> Path:
    return SHIPPED


@pytest.fixture(scope="session")
def real_exports(tmp_path_factory, sample_yaml) -> dict:
    """``{target: artifact path}`` of the shipped detector at 320 px, each through the mAP gate (slow tier only)."""
    from tests.export.export_helpers import export_all

    return export_all(SHIPPED, tmp_path_factory.mktemp("runtime-exports-320"), data=sample_yaml)


@pytest.fixture(scope="session")
def sample_image(sample_yaml) -> Path:
    return sorted((sample_yaml.parent / "test" / "images").glob("*.jpg"))[0]


@pytest.fixture(scope="session")
def tiny_classifier_onnx(tmp_path_factory) -> Path:
    """A 2-class mobilenetv2-cls (random, realistically scaled weights) exported to ONNX."""
    from edgekit.export import export
    from tests.export.export_helpers import make_checkpoint

    out = tmp_path_factory.mktemp("classifier")
    ckpt = make_checkpoint(out / "cls.pt", "mobilenetv2-cls", 64, num_classes=2)
    rep = export(ckpt, ["onnx"], out=out)
    assert rep.ok, rep.results[0].reason
    return out / rep.results[0].file
