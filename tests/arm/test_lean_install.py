"""The board install, proven on an aarch64 Python: no host packages, and `predict` works through edgekit.runtime."""

from __future__ import annotations

import json

import pytest

from edgekit.arm.run import run_guest
from edgekit.arm.wheels import installed_size

pytestmark = pytest.mark.arm

PROBE = """
import importlib.util, json, platform, sys
from edgekit.boards.cpu import cpu_info
from edgekit.runtime import load
det = load(sys.argv[1], threads=1)
out = det.predict(sys.argv[2])
host = [m for m in ("torch", "tensorflow", "onnx", "nncf", "litert_torch", "ai_edge_quantizer")
        if importlib.util.find_spec(m) is not None]
print(json.dumps({"machine": platform.machine(), "host": host, "loaded": sorted(m for m in ("torch", "onnx", "tensorflow")
                  if m in sys.modules), "detections": json.loads(out.to_json()), "backend": det.describe()["backend"],
                  "features": cpu_info()["features"]}))
"""


@pytest.mark.parametrize("target,extra", [("onnx", "onnx"), ("tflite-int8", "tflite")])
def test_lean_aarch64_install_predicts(arm_cache, fast_exports, sample_yaml, target, extra):
    image = next((sample_yaml.parent / "test" / "images").iterdir())
    r = run_guest(arm_cache, "cortex-a72", extra, ["-c", PROBE, str(fast_exports[target]), str(image)])
    got = json.loads(r.stdout)
    assert got["machine"] == "aarch64"
    assert "neon" in got["features"] and "dotprod" not in got["features"]  # edgekit.boards sees a Cortex-A72
    assert got["host"] == [] and got["loaded"] == []
    assert got["backend"] == {"onnx": "onnxruntime", "tflite": "litert"}[extra]
    assert len(got["detections"]["image_shape"]) >= 2 and isinstance(got["detections"]["detections"], list)
    size = installed_size(arm_cache / "site" / extra)
    assert 20e6 < size < 400e6, size  # numpy + OpenCV + one interpreter; torch alone would be > 700 MB
