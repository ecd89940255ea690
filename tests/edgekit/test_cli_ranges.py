"""Every numeric option has a range, checked before any work starts: one line, exit 1, nothing written.

The examples of issue 21's class 6 (``--imgsz 0`` trained at 320, ``--imgsz 33`` left a
traceback and an empty folder, ``--epochs 0`` exited 0 having done nothing, ``--batch 0``
became 16, ``--iou -1`` / ``--conf 2`` / ``--conf nan`` / ``--max-det 0`` returned wrong
results) and their siblings in every command.
"""

from __future__ import annotations

import pytest

from edgekit.cli.main import main

# (command line before the bad option, bad option, value, what the line must say)
TRAIN = ["train", "--model", "yolo-lite", "--data", "DATA"]
PREDICT = ["predict", "m.onnx", "x.jpg"]
DETECT = ["detect", "--model", "m.onnx", "--source", "v.mp4"]
EXPORT = ["export", "m.pt", "--target", "onnx"]
CASES = [
    (TRAIN, "--imgsz", "0", "'0' is not an input size: give 320 or WIDTHxHEIGHT with each side a multiple of 32"),
    (TRAIN, "--imgsz", "33", "'33' is not an input size: give 320 or WIDTHxHEIGHT"),
    (TRAIN, "--epochs", "0", "'0' is not a whole number of 1 or more"),
    (TRAIN, "--batch", "0", "'0' is not a whole number of 1 or more"),
    (TRAIN, "--workers", "-1", "'-1' is not a whole number of 0 or more"),
    (TRAIN, "--lr", "0", "'0' is not a number above 0 and at most 1"),
    (TRAIN, "--lr", "inf", "'inf' is not a number above 0"),
    (TRAIN, "--width", "-0.5", "'-0.5' is not a number above 0"),
    (TRAIN, "--threads", "0", "'0' is not a whole number of 1 or more"),
    (TRAIN, "--epochs", "ten", "'ten' is not a whole number"),
    (PREDICT, "--conf", "2", "'2' is not a number from 0 to 1"),
    (PREDICT, "--conf", "nan", "'nan' is not a number from 0 to 1"),
    (PREDICT, "--iou", "-1", "'-1' is not a number above 0 and at most 1"),
    (PREDICT, "--max-det", "0", "'0' is not a whole number of 1 or more"),
    (PREDICT, "--k", "0", "'0' is not a whole number of 1 or more"),
    (PREDICT, "--classes", "-3", "'-3' is not a whole number of 0 or more"),
    (DETECT, "--stride", "0", "'0' is not a whole number of 1 or more"),
    (DETECT, "--max-fps", "0", "'0' is not a number above 0"),
    (DETECT, "--duration", "-5", "'-5' is not a number above 0"),
    (DETECT, "--conf", "1.5", "'1.5' is not a number from 0 to 1"),
    (EXPORT, "--imgsz", "100", "'100' is not an input size"),
    (EXPORT, "--calib-images", "0", "'0' is not a whole number of 1 or more"),
    (EXPORT, "--max-map-drop", "-0.1", "'-0.1' is not a number from 0 to 1"),
    (["val", "--weights", "w.pt", "--data", "d.yaml"], "--batch", "0", "'0' is not a whole number of 1 or more"),
    (["val", "--weights", "w.pt", "--data", "d.yaml"], "--unsure", "1.2", "'1.2' is not a number from 0 to 1"),
    (["bench", "m.onnx"], "--frames", "0", "'0' is not a whole number of 1 or more"),
    (["bench", "m.onnx"], "--warmup", "-1", "'-1' is not a whole number of 0 or more"),
    (["calibrate-reject", "m.onnx", "--data", "d"], "--max-error", "0", "'0' is not a number above 0 and at most 1"),
    (["models"], "--classes", "0", "'0' is not a whole number of 1 or more"),
    (["data", "crops", "d.yaml", "--out", "OUT"], "--pad", "-1", "'-1' is not a number 0 or more"),
]


@pytest.mark.parametrize("head,option,value,message", CASES, ids=[f"{c[0][0]}{c[1]}={c[2]}" for c in CASES])
def test_an_out_of_range_option_is_one_line_before_any_work(head, option, value, message, tmp_path, capsys,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)  # a command that started work would leave runs/ or OUT here
    argv = [tmp_path.joinpath("d.yaml").as_posix() if a == "DATA" else a for a in head] + [option, value]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert lines[0].startswith("edgekit: error: ") and f"argument {option}: {message}" in lines[0]
    assert "--help" in lines[0] and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_unknown_flag_is_one_line_too(capsys):
    assert main(["predict", "m.onnx", "x.jpg", "--confidence", "0.3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unrecognized arguments: --confidence 0.3" in err[0]


def test_the_installed_command_exits_1_with_one_line(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edgekit", "train", "--data", "d.yaml", "--epochs", "0"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 1 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "argument --epochs: '0' is not a whole number of 1 or more" in r.stderr
