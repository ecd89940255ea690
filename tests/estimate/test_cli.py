"""``edgekit estimate``: JSON schema, every board profile, artifacts, Darknet cfg, bad input, --fit."""

from __future__ import annotations

import json

import pytest

from edgekit.boards.profiles import list_profiles, profile_from_dict
from edgekit.cli.main import main
from edgekit.errors import EdgekitError
from edgekit.estimate import KEYS
from edgekit.models.darknet import reference_cfg


def run_json(capsys, *argv):
    assert main([*map(str, argv), "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_one_board_prints_one_object_with_exactly_the_schema_keys(capsys):
    row = run_json(capsys, "estimate", "yolo-lite", "--imgsz", "224", "--board", "rpi4")
    assert tuple(row) == KEYS
    assert row["board"] == "rpi4" and row["runtime"] == "ncnn" and row["precision"] == "fp32" and row["threads"] == 4
    assert row["low_ms"] < row["latency_ms"] < row["high_ms"] and row["fps"] == pytest.approx(1000 / row["latency_ms"], rel=1e-3)
    assert "0.24 GMACs" in row["method"] and "published timings" in row["calibrated_on"]


def test_every_board_with_a_cpu_model_gets_an_estimate_and_accelerators_say_no(capsys):
    rows = run_json(capsys, "estimate", "yolo-lite", "--imgsz", "224")
    assert all(tuple(r) == KEYS for r in rows)
    cpu = {r["board"]: r for r in rows if r["threads"] is not None}
    for p in list_profiles():
        if p.cores and all(c.count and c.clock_ghz for c in p.cores):
            assert cpu[p.name]["latency_ms"] > 0, p.name
    tpu = [r for r in rows if r["board"] == "coral-usb"]
    assert len(tpu) == 1 and tpu[0]["latency_ms"] is None and tpu[0]["method"].startswith("no estimate")
    host = [r for r in rows if r["board"] == "x86-64"]
    assert host[0]["latency_ms"] is None and "no core count" in host[0]["method"]
    # faster boards are estimated faster
    assert cpu["rpi5"]["latency_ms"] < cpu["rpi4"]["latency_ms"] < cpu["rpi3bplus"]["latency_ms"] < cpu["rpizero2w"]["latency_ms"]


def test_threads_precision_and_runtime_move_the_estimate(capsys):
    def lat(*extra):
        return run_json(capsys, "estimate", "yolo-lite", "--imgsz", "224", "--board", "rpi4", *extra)["latency_ms"]

    assert lat("--threads", "1") > lat("--threads", "4")
    assert lat("--precision", "int8") < lat()
    row = run_json(capsys, "estimate", "yolo-lite", "--imgsz", "224", "--board", "rpi4", "--runtime", "onnxruntime")
    assert "not in the calibration set" in row["method"]


def test_darknet_cfg_at_its_own_input_size(capsys):
    row = run_json(capsys, "estimate", reference_cfg("yolov2-tiny-voc.cfg"), "--board", "rpi5")
    assert "3.49 GMACs" in row["method"] and "fp16 arithmetic" in row["method"]


def test_artifacts_bring_their_runtime_and_precision(capsys, tiny_onnx_tflite):
    row = run_json(capsys, "estimate", tiny_onnx_tflite["onnx"], "--board", "rpi4")
    assert row["runtime"] == "onnxruntime" and row["precision"] == "fp32"
    row = run_json(capsys, "estimate", tiny_onnx_tflite["tflite-int8"], "--board", "rpi4")
    assert row["runtime"] == "litert" and row["precision"] == "int8"


@pytest.mark.parametrize("argv, message", [
    (["estimate", "missing.onnx"], "does not exist"),
    (["estimate", "yolo-lite", "--board", "pi99"], "unknown board 'pi99'"),
    (["estimate", "yolo-lite", "--runtime", "tensorflow"], "unknown runtime 'tensorflow'"),
    (["estimate", "no-such-model"], "neither a file nor a registry model"),
    (["estimate"], "give a MODEL"),
])
def test_bad_input_is_one_line(capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2 and message in err[-1] and "Traceback" not in "".join(err)


def test_pipeline_field_is_checked():
    data = {"name": "x", "title": "x", "kind": "board", "soc": "s", "arch": "aarch64", "isa": [], "runtimes": ["ncnn"],
            "recommended_targets": ["ncnn"], "match": {}, "sources": [{"what": "w", "url": "https://x"}],
            "cores": [{"type": "cortex-a53", "count": 4, "clock_ghz": 1.0, "pipeline": "sideways"}]}
    with pytest.raises(EdgekitError, match="cores\\[0\\].pipeline' is 'sideways'"):
        profile_from_dict(data, "x.yaml", "x")


def test_fit_from_a_real_bench_json_calibrates_the_board(capsys, tiny_onnx_tflite, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CONFIG_DIR", str(tmp_path / "config"))
    onnx = tiny_onnx_tflite["onnx"]
    bench = run_json(capsys, "bench", onnx, "--threads", "1", "--frames", "20", "--warmup", "2")
    bench_file = tmp_path / "bench.json"
    bench_file.write_text(json.dumps(bench))
    before = run_json(capsys, "estimate", onnx, "--board", "rpi4", "--threads", "1")
    # this host is not a Pi 4: --board says which board the measurements stand for (the JSON says x86-64)
    assert main(["estimate", "--fit", str(bench_file)]) == 1
    assert "x86-64 has no CPU core count" in capsys.readouterr().err
    cal = run_json(capsys, "estimate", "--fit", bench_file, "--board", "rpi4")
    assert bench_file.read_text() == json.dumps(bench)  # the input is never modified
    stored = tmp_path / "config" / "estimates" / "rpi4.json"
    assert cal["path"] == str(stored) and json.loads(stored.read_text())["board"] == "rpi4"
    point = cal["points"][0]
    measured = bench["results"][0]["infer_ms"]
    assert point["measured_ms"] == measured and point["predicted_ms"] == pytest.approx(before["latency_ms"], rel=0.01)
    after = run_json(capsys, "estimate", onnx, "--board", "rpi4", "--threads", "1")
    assert "your measurements on rpi4" in after["calibrated_on"]
    assert after["latency_ms"] == pytest.approx(before["latency_ms"] * cal["scale"]["onnxruntime"], rel=0.01)
    # one measurement moves the estimate most of the way to it (shrunk toward the model: n / (n + 0.25))
    assert abs(after["latency_ms"] - measured) < abs(before["latency_ms"] - measured)
    assert after["low_ms"] < after["latency_ms"] < after["high_ms"]
    other = run_json(capsys, "estimate", onnx, "--board", "rpi5", "--threads", "1")
    assert "published timings" in other["calibrated_on"]  # only rpi4 was calibrated


def test_fit_on_a_merged_remote_report_takes_the_named_boards_rows(capsys, tiny_onnx_tflite, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CONFIG_DIR", str(tmp_path / "config"))
    bench = run_json(capsys, "bench", tiny_onnx_tflite["onnx"], "--threads", "1", "--frames", "10", "--warmup", "1")
    local = bench["results"][0]
    # what `edgekit bench --host` merges: a row that came back from a board, labelled with it
    remote = {**local, "infer_ms": 3 * local["infer_ms"], "remote": {"host": "pi@b", "board": "rpi5", "board_title": "x"}}
    merged = tmp_path / "merged.json"
    merged.write_text(json.dumps({**bench, "results": [local, remote]}))
    assert main(["estimate", "--fit", str(merged)]) == 1
    assert "rows from several boards" in capsys.readouterr().err
    cal = run_json(capsys, "estimate", "--fit", merged, "--board", "rpi5")
    assert cal["board"] == "rpi5" and [p["measured_ms"] for p in cal["points"]] == [remote["infer_ms"]]
