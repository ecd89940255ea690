"""A Darknet model's resize (stretch unless ``letterbox=1``) reaches the export manifest, the calibration
images and the artifact's predictions; on a real image, edgekit's boxes are OpenCV DNN's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.models import load_darknet
from edgekit.models.darknet import save_darknet_weights
from edgekit.runtime.preprocess import fit_image, preprocess, to_tensor
from tests.edgekit.test_darknet_resize import cfg
from tests.export.export_helpers import realistic_init_

cv2 = pytest.importorskip("cv2")
SHARED = (Path(__file__).parents[2] / ".." / "shared").resolve()
FASTEST = SHARED / "models" / "yolo-fastest-1.1"
DOG = SHARED / "images" / "dog.jpg"


def darknet_files(tmp_path: Path, net: str = "") -> Path:
    """A tiny cfg with random (realistic) weights written as Darknet .weights beside it."""
    path = tmp_path / "tiny.cfg"
    path.write_text(cfg(net))
    torch.manual_seed(0)
    save_darknet_weights(realistic_init_(load_darknet(path)), path.with_suffix(".weights"))
    return path


@pytest.mark.parametrize("net, mode", [("", "stretch"), ("letterbox=1", "letterbox")])
def test_reference_manifest_carries_the_cfgs_resize(tmp_path, net, mode):
    from edgekit.export.torch_backend import TorchBackend

    assert TorchBackend(darknet_files(tmp_path, net)).manifest()["preprocess"]["resize"] == mode


def test_onnx_export_of_a_stretch_cfg_predicts_as_the_torch_model_does(tmp_path):
    pytest.importorskip("onnxruntime")
    from edgekit.export import export
    from edgekit.runtime import load

    path = darknet_files(tmp_path)
    rep = export(path, ["onnx"], out=tmp_path / "out")
    assert rep.ok, rep.results[0].reason
    artifact = tmp_path / "out" / rep.results[0].file
    man = json.loads(Path(str(artifact) + ".json").read_text())
    assert man["preprocess"]["resize"] == "stretch"
    assert rep.results[0].parity["passed"] and rep.results[0].parity["max_abs"] < 1e-4
    det = load(artifact)
    assert det.runner.resize == "stretch" and det.describe()["input"]["resize"] == "stretch"
    img = np.random.default_rng(0).integers(0, 256, (90, 200, 3), dtype=np.uint8)  # wide: a letterbox would pad
    got = det.predict(img, conf=0.0, iou=0.6, max_det=30)
    model = load_darknet(path, path.with_suffix(".weights"))
    x, lb = preprocess(img, 64, resize="stretch")
    with torch.no_grad():
        outs = [o.numpy() for o in model(torch.from_numpy(x))]
    from edgekit.runtime.postprocess import postprocess_detections

    want = postprocess_detections(outs, model.head_spec, lb, 0.0, 0.6, 30)
    assert len(got) == len(want["boxes"]) > 0
    np.testing.assert_allclose(got.boxes, want["boxes"], atol=1e-2)


def test_calibration_images_are_resized_as_the_model(tmp_path):
    from edgekit.data import sample_data_yaml
    from edgekit.export.calibration import CalibrationReader
    from edgekit.runtime.model import read_image

    r = CalibrationReader.from_source(sample_data_yaml(), imgsz=64, images=2, resize="stretch")
    assert r.info()["preprocess"] == "stretch (same as inference)"
    for k, p in enumerate(r.paths):
        np.testing.assert_array_equal(r.tensor(k), to_tensor(fit_image(read_image(p), 64, "stretch")[0]))


@pytest.mark.shared
@pytest.mark.skipif(not (FASTEST / "yolo-fastest-1.1.weights").is_file() or not DOG.is_file(),
                    reason=f"needs ../shared with models/yolo-fastest-1.1 and images/dog.jpg ({SHARED} absent)")
def test_yolo_fastest_boxes_on_a_real_image_are_opencv_dnns(tmp_path):
    """The real COCO model, no letterbox in its cfg, on a 768x576 photo: edgekit's ``predict`` (torch reference and
    the exported ONNX artifact) gives the boxes OpenCV DNN gives, in original-image pixels."""
    from edgekit.runtime import load
    from edgekit.runtime.boxes import nms

    cfg_path, w_path = FASTEST / "yolo-fastest-1.1.cfg", FASTEST / "yolo-fastest-1.1.weights"
    image = cv2.imread(str(DOG))
    H, W = image.shape[:2]
    assert (H, W) == (576, 768)
    net = cv2.dnn.readNetFromDarknet(str(cfg_path), str(w_path))
    net.setInput(cv2.dnn.blobFromImage(image, 1 / 255.0, (320, 320), swapRB=True, crop=False))
    rows = np.concatenate(net.forward(net.getUnconnectedOutLayersNames()), 0)  # cx, cy, w, h relative; obj; scores
    scores, ids = rows[:, 5:].max(1), rows[:, 5:].argmax(1)
    rel = np.concatenate([rows[:, :2] - rows[:, 2:4] / 2, rows[:, :2] + rows[:, 2:4] / 2], 1)
    keep = scores > 0.25
    order = nms(rel[keep] * 320, scores[keep], ids[keep], 0.45)  # NMS where edgekit runs it: input pixels
    # how every OpenCV DNN sample maps a Darknet box to the frame: relative x times width, relative y times height
    ref_boxes = rel[keep][order] * np.array([W, H, W, H], np.float32)
    ref_ids = ids[keep][order]
    assert len(ref_ids) >= 3

    torch_det = load(cfg_path)  # the torch reference through the runtime (ArtifactRunner + FramePrep)
    assert torch_det.manifest["preprocess"]["resize"] == "stretch"
    got = torch_det.predict(image, conf=0.25, iou=0.45)
    assert got.classes.tolist() == ref_ids.tolist()
    np.testing.assert_allclose(got.boxes, np.minimum(np.maximum(ref_boxes, 0), [W, H, W, H]), atol=0.5)
    # the letterbox would have put them elsewhere (what edgekit did before the cfg's mode was honoured)
    from edgekit.runtime.preprocess import boxes_from_letterbox, resize_params

    lb_boxes = boxes_from_letterbox(rel[keep][order] * 320, resize_params((H, W), 320))
    assert np.abs(lb_boxes - got.boxes).max() > 20

    pytest.importorskip("onnxruntime")
    from edgekit.export import export

    rep = export(cfg_path, ["onnx"], weights=w_path, out=tmp_path)
    assert rep.ok, rep.results[0].reason
    onnx_det = load(tmp_path / rep.results[0].file)
    assert onnx_det.manifest["preprocess"]["resize"] == "stretch"
    got = onnx_det.predict(image, conf=0.25, iou=0.45)
    assert got.classes.tolist() == ref_ids.tolist()
    np.testing.assert_allclose(got.boxes, np.minimum(np.maximum(ref_boxes, 0), [W, H, W, H]), atol=0.5)
