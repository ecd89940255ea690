"""benchmarks/int8_speedup.py on the fast tier's tiny exports: the row it writes, and the profiles below the goal.

The artifacts are ``fast_exports`` (yolo-lite at 64 px, random but realistically scaled weights),
reused through ``--keep``; timed with 2 rounds of 2 inferences, so the numbers mean nothing, the
structure (every backend's pair timed, a speedup per backend, the profile of a model below the
goal naming the INT8 kernels that ran) does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def speedup_row(fast_exports, tiny_detector, sample_yaml, tmp_path_factory) -> dict:
    for mod in ("onnxruntime", "ai_edge_litert", "openvino"):
        pytest.importorskip(mod)
    if not {"onnx-int8", "tflite-int8", "openvino-int8"} <= set(fast_exports):
        pytest.skip("an INT8 target of the three is not installed here")
    keep = tmp_path_factory.mktemp("speedup-keep")
    (keep / "yolo-lite").symlink_to(fast_exports["onnx"].parent)  # the name int8_speedup gives the checkpoint
    out = keep / "int8-speedup-t1.json"
    argv = ["--calib", str(sample_yaml.parent / "train" / "images"), "--model", str(tiny_detector), "--keep", str(keep),
            "--rounds", "2", "--iters", "2", "--goal", "1000", "--profile", "--profile-runs", "2", "--out", str(out)]
    # run as users run it, in its own process: with three runtimes' profilers and interpreters loaded into the
    # test process, CI's pytest died of a segfault as the next module (test_lean_runtime) started
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "int8_speedup.py"), *argv], capture_output=True,
                         text=True, timeout=900, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(out.read_text())
    (row,) = doc["models"]
    return doc | {"row": row}


def test_every_backend_pair_is_timed_with_a_speedup(speedup_row):
    row = speedup_row["row"]
    assert row["model"] == "yolo-lite" and row["export"]["seconds"] == "reused" and row["imgsz"] == [64, 64]
    assert set(row["backends"]) == {"onnxruntime", "litert", "openvino"}
    for be, r in row["backends"].items():
        assert r["fp32_ms"] > 0 and r["int8_ms"] > 0 and r["int8_p90_ms"] >= r["int8_ms"], be
        assert r["speedup"] == pytest.approx(r["fp32_ms"] / r["int8_ms"], rel=0.02), be
    best = max(row["backends"].values(), key=lambda r: r["speedup"])
    assert row["best_speedup"] == best["speedup"] and row["reaches_goal"] is False  # the goal was 1000x
    assert speedup_row["summary"]["yolo-lite"]["best_speedup"] == row["best_speedup"]
    assert speedup_row["threads"] == 1 and speedup_row["host"]["cores"] >= 1


def test_a_model_below_the_goal_gets_its_profiles(speedup_row):
    prof = speedup_row["row"]["profile"]
    assert "QLinearConv" in prof["onnx-int8"]["by_type_ms"] and "QLinearConv" not in prof["onnx"]["by_type_ms"]
    assert any(k.endswith("_I8") or "I8" in k for k in prof["openvino-int8"]["by_kernel_ms"])  # int8 kernels ran
    census = prof["tflite-int8"]
    assert any(k.startswith("CONV_2D:int8") for k in census["ops_by_input_dtype"])
    assert census["xnnpack_partitions"] >= 1
