"""Models without an edgekit manifest: the TFLite SSD, a YAML-described ONNX, raw mode, and the errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.runtime import load
from edgekit.runtime.results import Detections

FACE_YAML = "edgekit/assets/model_yaml/ultra-light-face-rfb320.yaml"


@pytest.fixture(scope="module")
def ssd(shared_dir):
    return shared_dir / "models" / "ssd_mobilenet_v1_coco_quant" / "detect.tflite"


@pytest.fixture(scope="module")
def face(shared_dir):
    return shared_dir / "models" / "ultra-light-face-rfb320" / "version-RFB-320.onnx"


@pytest.mark.shared
def test_ssd_finds_dog_bicycle_and_car(ssd, shared_dir):
    det = load(ssd, threads=1)
    d = det.predict(shared_dir / "images" / "dog.jpg")  # default conf 0.5
    assert isinstance(d, Detections) and d.image_shape == (576, 768)
    found = {name: box for name, box in zip(d.labels, d.boxes)}
    assert {"dog", "bicycle", "car"} <= set(found), d.labels
    h, w = d.image_shape
    cx = lambda b: (b[0] + b[2]) / 2 / w  # noqa: E731
    cy = lambda b: (b[1] + b[3]) / 2 / h  # noqa: E731
    assert cx(found["dog"]) < 0.4 and cy(found["dog"]) > 0.5          # the dog sits lower left
    assert cx(found["car"]) > 0.6 and cy(found["car"]) < 0.4          # the car is parked top right
    assert 0.3 < cx(found["bicycle"]) < 0.7                           # the bicycle in the middle
    info = det.describe()
    assert info["kind"] == "tflite-ssd" and info["backend"] == "litert" and info["input"]["dtype"] == "uint8"


@pytest.mark.shared
def test_face_onnx_runs_from_its_yaml_and_decodes_like_the_raw_outputs(face, shared_dir):
    image = shared_dir / "images" / "horses.jpg"
    model = load(face, spec=FACE_YAML, threads=1)
    assert model.task == "detect" and model.names == ["face"] and model.describe()["kind"] == "model-yaml"
    d = model.predict(image, conf=0.0, iou=1.0)   # no threshold, no suppression: every anchor's box
    rawm = load(face, raw=True, threads=1)
    assert {k: v.shape for k, v in rawm.predict(image).items()} == {"scores": (1, 4420, 2), "boxes": (1, 4420, 4)}
    from edgekit.runtime.model import read_image

    raw = rawm.run([model._tensor(read_image(image))[0]])  # the YAML's (x - 127) / 128 input, raw outputs
    assert set(raw) == {"scores", "boxes"} and raw["scores"].shape == (1, 4420, 2) and raw["boxes"].shape == (1, 4420, 4)
    # the best YAML detection is the raw output's best face anchor, scaled to the image (stretch resize)
    k = int(raw["scores"][0, :, 1].argmax())
    h, w = d.image_shape
    expect = np.clip(raw["boxes"][0, k] * [w, h, w, h], 0, [w, h, w, h])
    assert np.allclose(d.boxes[0], expect, atol=1e-3) and d.scores[0] == pytest.approx(raw["scores"][0, k, 1], abs=1e-6)
    assert set(d.classes.tolist()) == {0}  # background column dropped: the only class is "face"
    # none of the shared photos shows a frontal face: at the reference demo's 0.7 nothing is found
    assert len(model.predict(image, conf=0.7)) == 0


def test_yaml_errors_name_the_key(tmp_path):
    from edgekit.runtime.model_yaml import read_spec

    good = {"task": "detect", "input": {"size": [240, 320]}, "output": {"boxes": "b", "scores": "s"}}
    cases = [({**good, "task": "segment"}, "'task' is 'segment'"),
             ({k: v for k, v in good.items() if k != "input"}, "'input' is missing"),
             ({**good, "input": {"size": [240]}}, "'input.size'"),
             ({**good, "input": {"size": [240, 320], "layout": "CHW"}}, "'layout' is 'CHW'"),
             ({**good, "input": {"size": [240, 320], "mean": [1, 2]}}, "'input.mean'"),
             ({**good, "outputs": {}}, "'outputs' is not a known key"),
             ({**good, "output": {"boxes": "b"}}, "'output.scores' is missing")]
    import yaml

    for data, message in cases:
        p = tmp_path / "m.yaml"
        p.write_text(yaml.safe_dump(data))
        with pytest.raises(EdgekitError, match=message.replace("[", r"\[")):
            read_spec(p)
    (tmp_path / "bad.yaml").write_text("task: [unclosed")
    with pytest.raises(EdgekitError, match="not valid YAML"):
        read_spec(tmp_path / "bad.yaml")
    assert read_spec(FACE_YAML)["input"]["size"] == [240, 320]


def test_tflite_without_manifest_that_is_not_an_ssd_is_a_clear_error(fast_exports, tmp_path):
    bare = tmp_path / "bare.tflite"
    data = fast_exports["tflite"].read_bytes()
    bare.write_bytes(data)
    from edgekit.export.tflite import embed_metadata  # overwrite the embedded manifest with a non-edgekit one

    embed_metadata(bare, {"not": "edgekit"})
    with pytest.raises(EdgekitError, match="manifest format"):
        load(bare)
    plain = tmp_path / "plain.onnx"
    import onnx

    m = onnx.load(str(fast_exports["onnx"]))
    del m.metadata_props[:]
    onnx.save(m, str(plain))
    with pytest.raises(EdgekitError, match="no edgekit manifest and is not a TFLite SSD.*--spec.*--raw"):
        load(plain)
    out = load(plain, raw=True, threads=1).predict(np.zeros((100, 120, 3), np.uint8))
    assert [v.shape for v in out.values()] == [tuple(o["shape"]) for o in json.loads(
        fast_exports["onnx"].with_name(fast_exports["onnx"].name + ".json").read_text())["outputs"]]


@pytest.mark.shared
def test_foreign_models_import_no_host_package(ssd, face, shared_dir):
    code = ("import sys\n"
            "class B:\n"
            "    def find_spec(self, n, p=None, t=None):\n"
            "        if n.split('.')[0] in ('torch', 'tensorflow', 'onnx', 'nncf'): raise ImportError(n)\n"
            "sys.meta_path.insert(0, B())\n"
            "from edgekit.runtime import load\n"
            f"print(load({str(ssd)!r}).predict({str(shared_dir / 'images' / 'dog.jpg')!r}).labels)\n"
            f"load({str(face)!r}, spec={FACE_YAML!r}).predict({str(shared_dir / 'images' / 'person.jpg')!r})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'onnx', 'nncf')))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "dog" in r.stdout and r.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.shared
def test_predict_cli_runs_the_ssd_and_the_yaml(ssd, face, shared_dir):
    r = subprocess.run([sys.executable, "-m", "edgekit", "predict", str(ssd), str(shared_dir / "images" / "dog.jpg"),
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    names = {d["name"] for d in json.loads(r.stdout)["results"][0]["result"]["detections"]}
    assert {"dog", "bicycle", "car"} <= names
    r = subprocess.run([sys.executable, "-m", "edgekit", "predict", str(face), str(shared_dir / "images" / "person.jpg"),
                        "--spec", FACE_YAML], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "no detections" in r.stdout, r.stderr
