"""``edgekit.runtime.load``: every export target loads, predicts and matches its source, through the public API.

Tests follow the registries: one case per export target and per backend that reads its file
(its own, and OpenVINO for .onnx). ``make test`` runs every case on the tiny fast-tier artifacts:
each loads in that backend and its detections match the torch reference of the same checkpoint,
run through the same ``load``/``predict``. The slow tier checks accuracy at real size: the shipped
trained detector at 320 px, each artifact's mAP@0.5 on the embedded sample's test split within the
export gate of the source's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.export.targets import TARGETS
from edgekit.export.verify import DEFAULT_MAX_MAP_DROP
from edgekit.runtime import load
from edgekit.runtime.detector import Classifier, Detector
from edgekit.runtime.backends import readers
from edgekit.runtime.results import Detections
from edgekit.validate_runtime import labelled_split, runtime_map

CASES = [(t, TARGETS[t].backend) for t in TARGETS]
CASES += [(t, alt.name) for t in TARGETS for alt in readers(TARGETS[t].suffix, builtin_only=True)
          if alt.name != TARGETS[t].backend]


@pytest.fixture(scope="module")
def source_map(shipped_detector, sample_yaml):
    records, _, names = labelled_split(sample_yaml)
    ref = load(shipped_detector, threads=1)
    return runtime_map(ref, records, names)


def _open(exports: dict, target: str, backend: str):
    from edgekit.runtime.backends import available_backends

    if target not in exports:
        pytest.skip(f"{target}: converter not installed")
    if not available_backends()[backend]:
        pytest.skip(f"{backend} is not installed")
    return load(exports[target], backend=backend, threads=1)


@pytest.mark.parametrize("target,backend", CASES, ids=[f"{t}-{b}" for t, b in CASES])
def test_every_target_runs_in_every_reader_like_its_source(fast_exports, tiny_detector, sample_image, target, backend):
    model = _open(fast_exports, target, backend)
    info = model.describe()
    assert isinstance(model, Detector) and info["backend"] == backend and info["target"] == target
    ref = load(tiny_detector, threads=1).predict(str(sample_image), conf=0.05)
    got = model.predict(str(sample_image), conf=0.05)
    assert len(ref) > 0 and len(got) > 0 and got.image_shape == ref.image_shape
    # the source's best detection is among the artifact's best three (random weights make near-ties):
    # same class, same box (IoU), about the same score
    tol = 0.02 if TARGETS[target].quantized else 0.002
    b = ref.boxes[0]

    def iou(a):
        inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
        return inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)

    assert any(got.classes[k] == ref.classes[0] and abs(float(got.scores[k]) - float(ref.scores[0])) < tol
               and iou(got.boxes[k]) > 0.95 for k in range(min(3, len(got)))), (got.boxes[:3], got.scores[:3], b, ref.scores[0])


@pytest.mark.slow
@pytest.mark.parametrize("target,backend", CASES, ids=[f"{t}-{b}" for t, b in CASES])
def test_every_target_matches_its_source(real_exports, sample_yaml, source_map, target, backend):
    model = _open(real_exports, target, backend)
    assert isinstance(model, Detector) and model.describe()["backend"] == backend
    records, _, names = labelled_split(sample_yaml)
    got = runtime_map(model, records, names)
    drop = source_map["map50"] - got["map50"]
    assert drop <= DEFAULT_MAX_MAP_DROP[TARGETS[target].precision] + 1e-9, (got, source_map)
    assert source_map["map50"] > 0.05  # a real model: the comparison is not 0 vs 0


def test_predict_returns_detections_in_original_pixels(fast_exports, sample_image):
    import cv2

    img = cv2.imread(str(sample_image))
    det = load(fast_exports["onnx"], threads=1)
    d = det.predict(img, conf=0.05)
    assert isinstance(d, Detections) and len(d) > 0 and d.image_shape == img.shape[:2]
    h, w = img.shape[:2]
    assert (d.boxes[:, [0, 2]] <= w + 1e-3).all() and (d.boxes[:, [1, 3]] <= h + 1e-3).all() and (d.boxes >= 0).all()
    assert np.all(np.diff(d.scores) <= 1e-6)  # best first
    assert set(d.labels) <= set(det.names)
    assert json.loads(d.to_json())["detections"][0]["name"] in det.names
    assert set(det.last_timing) == {"pre_ms", "infer_ms", "post_ms"}
    # the same image as a path, and in a batch (list and NxHxWx3): one result per image, the same detections
    assert np.allclose(det.predict(str(sample_image), conf=0.05).boxes, d.boxes)
    batch = det.predict([img, img[:, ::-1]], conf=0.05)
    assert len(batch) == 2 and np.allclose(batch[0].boxes, d.boxes)
    assert len(det.predict(np.stack([img, img]), conf=0.05)) == 2
    # the class filter keeps only the asked classes
    k = int(d.classes[0])
    assert set(det.predict(img, conf=0.05, classes=[k]).classes.tolist()) == {k}


@pytest.mark.parametrize("target", list(TARGETS))
def test_describe_says_what_really_runs(fast_exports, target):
    from edgekit.runtime.backends import available_backends

    if target not in fast_exports:
        pytest.skip(f"{target} not exported here")
    if not available_backends()[TARGETS[target].backend]:  # rknn: board only (tests/export/test_rknn.py)
        pytest.skip(f"{TARGETS[target].backend} is not installed")
    info = load(fast_exports[target], threads=1).describe()
    assert info["backend"] == TARGETS[target].backend and info["version"]
    assert info["threads"] == 1 and info["target"] == target and info["task"] == "detect"
    assert info["input"]["layout"] in ("NCHW", "NHWC") and info["input"]["dtype"] in ("float32", "int8", "uint8")
    assert info["warnings"] == []
    if target == "tflite-int8":
        assert info["input"]["dtype"] == "int8" and info["input"]["quant"] and info["delegate"].startswith("none")


@pytest.mark.parametrize("delegate", ["edgetpu", "vx", "/nonexistent/libmy_delegate.so"])
def test_missing_delegate_is_a_clear_error_and_fallback_runs_on_cpu(fast_exports, sample_image, delegate):
    art = fast_exports["tflite-int8"]
    with pytest.raises(EdgekitError, match=r"delegate .* cannot be loaded .*--fallback"):
        load(art, delegate=delegate)
    with pytest.warns(RuntimeWarning, match="running on the CPU instead"):
        det = load(art, delegate=delegate, fallback=True, threads=1)
    info = det.describe()
    assert info["delegate"].startswith("none") and len(info["warnings"]) == 1 and delegate in info["warnings"][0]
    assert isinstance(det.predict(str(sample_image)), Detections)


def test_missing_device_or_provider_is_a_clear_error(fast_exports):
    with pytest.raises(EdgekitError, match="no execution provider 'ACL'.*--fallback"):
        load(fast_exports["onnx"], delegate="ACL")
    with pytest.warns(RuntimeWarning):
        assert load(fast_exports["onnx"], delegate="ACL", fallback=True).describe()["warnings"]
    if "openvino" in fast_exports:
        with pytest.raises(EdgekitError, match="NPU"):
            load(fast_exports["openvino"], device="NPU")
        assert load(fast_exports["openvino"], device="NPU", fallback=True).describe()["device"] == "CPU"


def test_checkpoint_runs_through_the_torch_reference_only(shipped_detector):
    with pytest.raises(EdgekitError, match="only the torch backend runs"):
        load(shipped_detector, backend="onnxruntime")
    ref = load(shipped_detector, threads=1)
    assert isinstance(ref, Detector) and ref.describe()["backend"] == "torch"


def test_bad_paths_give_one_line_errors(tmp_path, fast_exports):
    with pytest.raises(EdgekitError, match="does not exist"):
        load(tmp_path / "missing.tflite")
    bad = tmp_path / "m.onnx"
    bad.write_bytes(fast_exports["onnx"].read_bytes())
    (tmp_path / "m.onnx.json").write_text("{not json")
    with pytest.raises(EdgekitError, match="not valid JSON"):
        load(bad)
    with pytest.raises(EdgekitError, match="unknown backend"):
        load(fast_exports["onnx"], backend="tensorrt")
    det = load(fast_exports["onnx"])
    with pytest.raises(EdgekitError, match="does not exist"):
        det.predict(tmp_path / "nope.jpg")
    (tmp_path / "x.jpg").write_text("not an image")
    with pytest.raises(EdgekitError, match="not a readable image"):
        det.predict(tmp_path / "x.jpg")


def test_classifier_reports_top_k_and_unsure(tiny_classifier_onnx, sample_image):
    clf = load(tiny_classifier_onnx, threads=1)
    assert isinstance(clf, Classifier)
    c = clf.predict(str(sample_image), k=2)
    assert len(c.classes) == 2 and c.scores[0] >= c.scores[1] and c.label == int(c.classes[0])
    assert clf.predict(str(sample_image), unsure=1.01).unsure  # nothing is that sure
    assert clf.predict(str(sample_image), unsure=[1.01, 1.01]).name == "unsure"  # per-class thresholds


def test_backend_choice_falls_to_another_installed_reader(monkeypatch, fast_exports):
    """No onnxruntime on the board: an .onnx still loads in OpenVINO (which reads ONNX), verified the same."""
    from edgekit.runtime.backends import get_backend
    from edgekit.runtime.loader import choose_backend

    onnxruntime_backend, openvino_backend = get_backend("onnxruntime"), get_backend("openvino")
    if not openvino_backend.is_available():
        pytest.skip("openvino is not installed")
    monkeypatch.setattr(onnxruntime_backend, "is_available", classmethod(lambda cls: False))
    assert choose_backend(fast_exports["onnx"]) == "openvino"
    assert load(fast_exports["onnx"], threads=1).describe()["backend"] == "openvino"
    monkeypatch.setattr(openvino_backend, "is_available", classmethod(lambda cls: False))
    with pytest.raises(EdgekitError, match=r'needs the .onnxruntime. runtime.*pip install "edgekit\[onnx\]"'):
        load(fast_exports["onnx"])
