"""The mAP gate on a trained detector (the Fish4Knowledge weights shipped in the package).

A sound INT8 calibration keeps mAP@0.5 within the gate (accuracy at real size: ``slow`` tier);
a deliberately broken one (black frames) must trip it, fail the export and leave no artifact
under its final name, and ``edgekit verify`` must refuse the wrong source: these two are about
the gate and verify themselves, need a trained model to have something to lose, and stay in
``make test``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

WEIGHTS = Path(__file__).resolve().parents[2] / "edgekit" / "assets" / "weights" / "mobilenetv2_050-yolo-fish4knowledge-320.pt"
pytestmark = pytest.mark.skipif(not WEIGHTS.exists(), reason="trained weights not committed yet")


@pytest.mark.slow
def test_int8_within_gate_with_real_calibration(sample_yaml, tmp_path):
    from edgekit.export import export

    rep = export(WEIGHTS, ["onnx-int8"], data=sample_yaml, out=tmp_path, calib_images=32)
    r = rep.results[0]
    assert r.map["source_map50"] > 0.05, "the shipped detector should find fish on the sample"
    assert r.ok, r.reason
    assert r.map["delta_map50"] <= 0.02
    assert r.parity["output_clip"] == 9.2  # detector logits: INT8 ranges clipped, parity compared within
    assert (tmp_path / r.file).exists()
    # the report in the schema other tools read (issue: export results schema)
    d = rep.to_dict()
    assert d["model"] == "mobilenetv2_050-yolo" and d["source"]["map50"] == r.map["source_map50"]
    (row,) = d["targets"]
    assert {"target", "path", "size_mb", "status", "parity", "map50", "map50_95", "map50_delta", "latency_ms",
            "convert_s"} <= set(row)
    assert row["status"] == "ok" and Path(row["path"]).exists()
    assert row["map50_delta"] == pytest.approx(r.map["map50"] - r.map["source_map50"], abs=1e-6)
    lo, hi = row["map50_delta_ci95"]  # the paired bootstrap of that delta over the same images
    assert lo <= row["map50_delta"] <= hi and lo < hi
    assert r.map["delta_map50_ci95"] == [-hi, -lo]


def test_broken_calibration_trips_the_gate(sample_yaml, tmp_path, capsys):
    import cv2

    from edgekit.cli.main import main

    black = tmp_path / "black"
    black.mkdir()
    for k in range(8):
        cv2.imwrite(str(black / f"{k}.png"), np.zeros((202, 360, 3), np.uint8))
    out = tmp_path / "out"
    code = main(["export", str(WEIGHTS), "--target", "onnx-int8", "--data", str(sample_yaml), "--calib", str(black),
                 "--out", str(out)])
    assert code == 1
    captured = capsys.readouterr()
    assert "mAP50 dropped" in captured.out and "onnx-int8 (rejected)" in captured.err
    assert "to fix: calibrate on more or other real images" in captured.out  # the remedy, not "loosen the gate"
    assert not list(out.glob("*.onnx")), "a failed artifact must not stay under its final name"
    import json

    (row,) = json.loads((out / "export_report.json").read_text())["targets"]
    assert row["status"] == "rejected" and row["path"] is None and row["map50_delta"] < -0.02


def test_verify_cli_rechecks_an_artifact_and_refuses_the_wrong_source(sample_yaml, tmp_path, capsys):
    """``edgekit verify``: parity + mAP with its bootstrap interval against the right source; FAIL against another."""
    from edgekit.cli.main import main
    from edgekit.export import export

    rep = export(WEIGHTS, ["onnx"], data=sample_yaml, out=tmp_path)
    art = tmp_path / rep.results[0].file
    assert main(["verify", str(art), "--ref", str(WEIGHTS), "--data", str(sample_yaml)]) == 0
    out = capsys.readouterr().out
    assert "parity on 8 images: ok" in out and "[95% " in out and out.rstrip().endswith("ok")
    other = WEIGHTS.with_name("mobilenetv2_050-yolo-p3-fish4knowledge-320.pt")  # same classes, other network
    assert main(["verify", str(art), "--ref", str(other), "--data", str(sample_yaml)]) == 1
    err = capsys.readouterr().err
    assert "strides [16, 32]" in err and "strides [8, 16, 32]" in err and "give the model it came from as --ref" in err
    assert "Traceback" not in err
