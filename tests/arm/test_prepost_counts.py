"""benchmarks/arm_prepost_counts.py on the tiny tflite-int8 artifact: the video loop's split counted on a Cortex-A53.

The board install (numpy, OpenCV, LiteRT) runs ``prepare``, ``infer`` and ``predict_one`` under the counting
plugin; the script's split is only meaningful if each step's markers bracket that step's code, which the
orderings below check (the interpreter dominates even a 64 px net; decoding and NMS cost instructions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.arm

ROOT = Path(__file__).resolve().parents[2]


def test_the_video_loops_pre_infer_post_split_is_counted_on_an_emulated_a53(arm_cache, tiny_onnx_tflite, sample_yaml,
                                                                              tmp_path):
    out = tmp_path / "split.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "arm_prepost_counts.py"),
                        str(tiny_onnx_tflite["tflite-int8"]), str(sample_yaml.parent / "valid" / "images"),
                        "--name", "tiny", "--frames", "3", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["frames"] == 3
    assert doc["guest"]["backend"] == "litert" and doc["guest"]["opencv"]  # the board install's own OpenCV ran the pre
    core = doc["cores"]["cortex-a53"]
    counts, split = core["counts"], core["split"]
    assert counts["pre"]["total"] < counts["infer"]["total"] < counts["predict"]["total"]
    assert split["interpreter"] > split["pre"] > 0 and split["post"] > 0
    assert counts["infer"]["dot"] == 0, "a Cortex-A53 has no dot product: an SDOT/UDOT count means the wrong -cpu"
    assert 0 < split["pre_post_share"] < 1
    assert json.loads(r.stdout) == {"cortex-a53": split}  # stdout: the result only
