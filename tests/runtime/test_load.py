"""``edgekit.runtime.load``: every export target loads, predicts and matches its source, through the public API.

Tests follow the registry: one case per export target (and per extra backend that reads the
file: OpenVINO reads .onnx). The source is the shipped trained detector run by the torch
reference backend through the same ``load``/``predict``; each artifact's mAP@0.5 on the
embedded sample's test split must be within the export gate of the source's.
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
from edgekit.runtime.loader import ALTERNATIVES
from edgekit.runtime.results import Detections
from edgekit.validate_runtime import labelled_split, runtime_map

CASES = [(t, TARGETS[t].backend) for t in TARGETS]
CASES += [(t, alt) for t in TARGETS for alt in ALTERNATIVES.get(TARGETS[t].suffix, []) if alt != TARGETS[t].backend]


@pytest.fixture(scope="module")
def source_map(shipped_detector, sample_yaml):
    records, _, names = labelled_split(sample_yaml)
    ref = load(shipped_detector, threads=1)
    return runtime_map(ref, records, names)


@pytest.mark.parametrize("target,backend", CASES, ids=[f"{t}-{b}" for t, b in CASES])
def test_every_target_matches_its_source(fast_exports, sample_yaml, source_map, target, backend):
    from edgekit.runtime.backends import available_backends

    if target not in fast_exports:
        pytest.skip(f"{target}: converter not installed")
    if not available_backends()[backend]:
        pytest.skip(f"{backend} is not installed")
    model = load(fast_exports[target], backend=backend, threads=1)
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


@pytest.mark.parametrize("target", ["onnx", "tflite-int8", "openvino", "ncnn"])
def test_describe_says_what_really_runs(fast_exports, target):
    if target not in fast_exports:
        pytest.skip(f"{target} not exported here")
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
    with pytest.raises(EdgekitError, match="not an image"):
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
    from edgekit.runtime import onnxruntime_backend, openvino_backend
    from edgekit.runtime.loader import choose_backend

    if not openvino_backend.is_available():
        pytest.skip("openvino is not installed")
    monkeypatch.setattr(onnxruntime_backend, "is_available", lambda: False)
    assert choose_backend(fast_exports["onnx"]) == "openvino"
    assert load(fast_exports["onnx"], threads=1).describe()["backend"] == "openvino"
    monkeypatch.setattr(openvino_backend, "is_available", lambda: False)
    with pytest.raises(EdgekitError, match=r'needs the .onnxruntime. runtime.*pip install "edgekit\[onnx\]"'):
        load(fast_exports["onnx"])
