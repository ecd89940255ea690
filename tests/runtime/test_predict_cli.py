"""``edgekit predict``: text, JSON and annotated images from any loadable model; one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def edgekit(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_predict_json_and_saved_images(fast_exports, sample_yaml, tmp_path):
    folder = sample_yaml.parent / "test" / "images"
    r = edgekit("predict", fast_exports["tflite-int8"], folder, "--json", "--threads", "1", "--conf", "0.05",
                "--save", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    images = sorted(folder.glob("*.jpg"))
    assert len(out["results"]) == len(images) and out["model"]["backend"] == "litert"
    assert sum(len(x["result"]["detections"]) for x in out["results"]) > 0
    for rec in out["results"]:
        for d in rec["result"]["detections"]:
            assert d["score"] >= 0.05 and 0 <= d["class"] < out["model"]["classes"] and len(d["box"]) == 4
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in images]


def test_predict_text_output_and_class_filter(fast_exports, sample_image):
    r = edgekit("predict", fast_exports["onnx"], sample_image, "--conf", "0.05", "--classes", "0")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().splitlines()[0]
    assert line.startswith(str(sample_image)) and "detections" in line and " ms)" in line


@pytest.mark.parametrize("args,message", [
    (["missing.tflite", "x.jpg"], "does not exist"),
    (["{onnx}", "no-such-dir"], "does not exist: give image files"),
    (["{tflite}", "{image}", "--delegate", "edgetpu"], "delegate 'edgetpu' cannot be loaded"),
])
def test_predict_errors_are_one_line(fast_exports, sample_image, args, message):
    fill = {"onnx": fast_exports["onnx"], "tflite": fast_exports["tflite-int8"], "image": sample_image}
    r = edgekit("predict", *[a.format(**fill) for a in args])
    assert r.returncode == 1 and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_predict_fallback_warns_and_runs(fast_exports, sample_image):
    r = edgekit("predict", fast_exports["tflite-int8"], sample_image, "--delegate", "edgetpu", "--fallback")
    assert r.returncode == 0, r.stderr
    assert "warning: TFLite delegate 'edgetpu' cannot be loaded" in r.stdout
