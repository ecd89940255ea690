"""benchmarks/peer_compare.py on a tiny exported detector: the JSON it writes and the ratios in it.

The fast tier's tiny detector (``fast_exports``: yolo-lite at 64 px, random but realistically
scaled weights) as ONNX, TFLite and an OpenVINO IR, timed with very few iterations: the numbers
mean nothing, the structure, the engines really being different (XNNPACK on and off) and the
outputs agreeing do.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _benchmark(name: str):
    """``benchmarks/<name>.py`` as module ``name`` (the scripts import each other by name, as when run)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _has_cv2_dnn() -> bool:
    if importlib.util.find_spec("cv2") is None:
        return False
    import cv2

    return hasattr(cv2, "dnn") and hasattr(cv2.dnn, "readNetFromONNX")


@pytest.fixture(scope="module")
def tiny_exports(fast_exports, tmp_path_factory) -> Path:
    """A folder with the fp32 ONNX, TFLite and OpenVINO IR of the shared tiny exports (links, with their manifests)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ai_edge_litert")
    from edgekit.export.targets import TARGETS

    out = tmp_path_factory.mktemp("peer") / "export"
    out.mkdir()
    for target in ["onnx", "tflite"] + (["openvino"] if "openvino" in fast_exports else []):
        for f in TARGETS[target].files(fast_exports[target]) + [fast_exports[target].with_name(fast_exports[target].name + ".json")]:
            (out / f.name).symlink_to(f)
    return out


def _ratio_ok(r) -> bool:
    return isinstance(r, dict) and all(isinstance(r[k], float) and r[k] > 0 for k in
                                       ("ratio", "per_round_median", "per_round_min", "per_round_max"))


@pytest.fixture(scope="module")
def peer_result(tiny_exports, tmp_path_factory) -> tuple[dict, list[str]]:
    """``peer_compare.py`` run through its command line on the tiny exports: (result JSON, argv)."""
    peer_runners = _benchmark("peer_runners")
    peer_compare = _benchmark("peer_compare")

    out = tmp_path_factory.mktemp("peer-results")
    argv = [str(tiny_exports), "--rounds", "2", "--iters", "2", "--bench-niter", "5", "--ov-rounds", "2",
            "--out", str(out)]
    if not (any(tiny_exports.glob("*.xml")) and peer_runners.benchmark_app_path()):
        argv.append("--no-openvino")
    assert peer_compare.main(argv) == 0
    assert (out / f"peer-{tiny_exports.name}.md").read_text().startswith("# Peer comparison")
    return json.loads((out / f"peer-{tiny_exports.name}.json").read_text()), argv


def test_peer_compare_records_setup_and_times_every_engine(peer_result):
    res, _ = peer_result
    assert res["command"].startswith("python benchmarks/peer_compare.py") and res["rounds"] == 2
    assert {"onnxruntime", "ai_edge_litert", "cv2", "openvino"} <= set(res["versions"])
    assert res["host"]["cores"] >= 1 and res["note"] and res["threads"] == [1, 2]
    for key, e in res["engines"].items():  # every engine timed in every round
        assert e["n"] == 2 * 2 and e["p50_ms"] > 0, key
    ortd = res["engines"]["onnxruntime-default"]["info"]
    assert ortd["intra_op_num_threads"] == 0 and "default" in ortd["threads_note"]  # no options at all
    for row in res["onnx"]:
        assert row["edgekit_p50_ms"] > 0 and _ratio_ok(row["edgekit_vs_onnxruntime_default"])
    assert res["output_max_abs_diff"]["onnxruntime-default vs edgekit-onnxruntime@1t"] < 1e-4
    head = res["headline"]
    assert head["chosen"]["source"] == "load() defaults" and head["chosen"]["backend"] == "onnxruntime"
    assert head["chosen"]["threads"] in (1, 2)
    assert all(v["p50_ms"] > 0 and v["last_timing_ms"]["infer_ms"] > 0 for v in res["end_to_end"].values())


@pytest.mark.skipif(not _has_cv2_dnn(), reason="cv2.dnn is absent: the OpenCV DNN comparison cannot run")
def test_peer_compare_against_opencv_dnn(peer_result):
    res, _ = peer_result
    assert not res["errors"], res["errors"]  # OpenCV DNN read the model
    assert all(_ratio_ok(row["edgekit_vs_opencv_dnn"]) for row in res["onnx"])
    head = res["headline"]
    assert _ratio_ok(head["speedup_vs_opencv_dnn"]) and isinstance(head["meets_bar"], bool)
    assert res["output_max_abs_diff"]["opencv-dnn@1t vs edgekit-onnxruntime@1t"] < 1e-3  # same computation
    assert res["profile"]["opencv_dnn"]["by_kind"] and res["profile"]["onnxruntime_edgekit_options"]["by_kind"]


def test_peer_compare_tflite_with_and_without_xnnpack(peer_result):
    res, _ = peer_result
    (tfl,) = [r for r in res["tflite"] if r["target"] == "tflite" and r["threads"] == 1]
    # XNNPACK really on in edgekit's backend and really off in the peer
    assert tfl["delegate_nodes"]["xnnpack"] > 0 and tfl["delegate_nodes"]["no_xnnpack"] == 0
    assert _ratio_ok(tfl["xnnpack_speedup"]) and tfl["max_abs_diff"] < 1e-3


def test_peer_compare_openvino_against_benchmark_app(peer_result):
    res, argv = peer_result
    if "--no-openvino" in argv:
        pytest.skip("no OpenVINO IR or no benchmark_app here")
    (ov,) = [r for r in res["openvino"] if r["threads"] == 1]
    assert ov["rounds"] == 2 and not ov["errors"]
    assert ov["edgekit_p50_ms"] > 0 and ov["benchmark_app_median_ms"] > 0 and ov["edgekit_over_benchmark_app"] > 0
    assert 0 < ov["edgekit_request_latency_p50_ms"] <= ov["edgekit_p50_ms"] and ov["edgekit_back_to_back_p50_ms"] > 0
    cfg = ov["benchmark_app_config"]  # benchmark_app compiled what edgekit compiled
    assert cfg["INFERENCE_NUM_THREADS"] == "1" and cfg["PERFORMANCE_HINT"] == "LATENCY"
    assert "float32" in cfg["INFERENCE_PRECISION_HINT"] and ov["edgekit_config"]["precision"] == "f32"
    assert ov["benchmark_app_input"].startswith("images") and " f32 " in ov["benchmark_app_input"]


def test_deploy_json_is_the_chosen_configuration(tiny_exports, tmp_path):
    peer_compare = _benchmark("peer_compare")

    folder = tmp_path / "export"
    folder.mkdir()
    for p in tiny_exports.iterdir():
        if p.suffix in (".onnx", ".tflite", ".json") and p.name != "deploy.json":
            (folder / p.name).symlink_to(p)
    tflite = next(folder.glob("*-tflite.tflite"))
    (folder / "deploy.json").write_text(json.dumps({"artifact": tflite.name, "backend": "litert", "threads": 1}))
    res = peer_compare.compare(folder, threads=(1,), rounds=1, iters=2, openvino=False)
    head = res["headline"]
    assert head["chosen"]["source"] == "deploy.json" and head["chosen"]["artifact"] == tflite.name
    assert head["chosen"]["backend"] == "litert" and res["engines"]["edgekit-chosen"]["p50_ms"] > 0
    assert "edgekit-chosen-predict" in res["end_to_end"]
    if _has_cv2_dnn():
        assert _ratio_ok(head["speedup_vs_opencv_dnn"])


def test_benchmark_app_log_is_parsed():
    peer_runners = _benchmark("peer_runners")

    log = ("[Step 6/11] Configuring input of the model\n[ INFO ] Model inputs:\n"
           "[ INFO ]     images (node: images) : f32 / [N,C,H,W] / [1,3,64,64]\n"
           "[ INFO ]   NUM_STREAMS: 1\n[ INFO ]   INFERENCE_NUM_THREADS: 2\n"
           "[ INFO ]   PERFORMANCE_HINT: LATENCY\n[ INFO ] Latency:\n[ INFO ]    Median:        5.78 ms\n"
           "[ INFO ]    Average:       6.41 ms\n")
    got = peer_runners.parse_benchmark_app(log)
    assert got["median_ms"] == 5.78 and got["config"]["INFERENCE_NUM_THREADS"] == "2"
    assert got["input"].startswith("images (node: images) : f32")
    with pytest.raises(RuntimeError, match="no 'Median'"):
        peer_runners.parse_benchmark_app("[ ERROR ] cannot read model")
    tiny = peer_runners.parse_benchmark_app("[ INFO ]    Median:        243.18 us\n")  # small models report us
    assert tiny["median_ms"] == pytest.approx(0.24318)
