"""Runtime test fixtures: the shipped Fish4Knowledge detector exported once per session.

The shipped weights (edgekit/assets/weights) are a real trained model, so detections and
mAP through ``edgekit.runtime.load`` mean something. It is exported at its own 320 px (at
160 px this 320-trained model scores ~0.02 mAP50, too little to compare) with the default 100
calibration images (with 32, openvino-int8 failed the 0.02 mAP gate on the 40 test images:
-0.032); every target whose converter is installed, in a few minutes, once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "edgekit" / "assets" / "weights" / "mobilenetv2_050-yolo-fish4knowledge-320.pt"
IMGSZ = None  # the checkpoint's own 320 px: a 320-trained model scores ~0 mAP at 160


@pytest.fixture(scope="session")
def shipped_detector() -> Path:
    return SHIPPED


@pytest.fixture(scope="session")
def fast_exports(tmp_path_factory, sample_yaml) -> dict:
    """``{target: artifact path}`` of the shipped detector at 160 px, each verified by export (mAP gate on the sample)."""
    from edgekit.export import export
    from edgekit.export.targets import TARGETS

    out = tmp_path_factory.mktemp("runtime-exports")
    targets = [t for t in TARGETS if TARGETS[t].available()]
    rep = export(SHIPPED, targets, data=sample_yaml, imgsz=IMGSZ, out=out)
    failed = {r.target: r.reason for r in rep.results if not r.ok}
    assert not failed, failed
    return {r.target: out / r.file for r in rep.results}


@pytest.fixture(scope="session")
def sample_image(sample_yaml) -> Path:
    return sorted((sample_yaml.parent / "test" / "images").glob("*.jpg"))[0]


@pytest.fixture(scope="session")
def tiny_classifier_onnx(tmp_path_factory) -> Path:
    """A 2-class mobilenetv2-cls (random, realistically scaled weights) exported to ONNX."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "export"))
    from export_helpers import make_checkpoint  # the export tests' checkpoint factory

    from edgekit.export import export

    out = tmp_path_factory.mktemp("classifier")
    ckpt = make_checkpoint(out / "cls.pt", "mobilenetv2-cls", 64, num_classes=2)
    rep = export(ckpt, ["onnx"], out=out)
    assert rep.ok, rep.results[0].reason
    return out / rep.results[0].file
