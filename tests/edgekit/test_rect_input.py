"""Rectangular inputs (``--imgsz WIDTHxHEIGHT``): train, resume, validate, export and run at 96x64.

Wide frames (a 16:9 camera) waste a square input's compute on pads or on stretching; these tests
follow one rectangular run through every stage that reads its size, with the real trainer,
exporter (ONNX, parity gate) and runtime.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from edgekit.cli.main import main
from edgekit.cli.ranges import image_shape
from edgekit.data import load_dataset
from edgekit.models.checkpoint import read_checkpoint

ROOT_ARGS = ["--epochs", "1", "--batch", "8", "--workers", "0", "--json"]


def test_imgsz_parses_a_square_or_width_x_height():
    assert image_shape("320") == 320 and image_shape("384x224") == (224, 384) and image_shape("64X64") == 64
    for bad in ("384x200", "x224", "384x224x3", "wide"):
        with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
            image_shape(bad)


def test_anchors_fit_each_side_of_a_rectangle(sample_yaml):
    """k-means anchors of a stretch see width and height scaled apart; a letterbox scales both by the fitting side."""
    from edgekit.train.detect import fit_anchors

    recs = load_dataset(sample_yaml).split("train")
    square, wide = (np.array(fit_anchors(recs, s, 3, resize="stretch")) for s in (64, (64, 128)))
    assert np.allclose(wide[:, 1], square[:, 1], rtol=0.15) and np.all(wide[:, 0] > 1.6 * square[:, 0])
    # a letterbox scales both sides by the side that fits: 360x202 frames into 128x64 by 64/202, into 64x64 by 64/360
    letter, letter_square = (np.array(fit_anchors(recs, s, 3, resize="letterbox")) for s in ((64, 128), 64))
    assert {(r.width, r.height) for r in recs} == {(360, 202)}
    assert np.allclose(letter / letter_square, (64 / 202) / (64 / 360), rtol=0.05)


@pytest.fixture(scope="module")
def rect_run(tmp_path_factory, sample_yaml):
    out = tmp_path_factory.mktemp("rect") / "run"
    assert main(["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--imgsz", "96x64", "--out", str(out),
                 *ROOT_ARGS]) == 0
    return out


def test_a_rectangular_run_keeps_its_size_through_resume_and_val(rect_run, sample_yaml, capsys):
    best = rect_run / "weights" / "best.pt"
    ck = read_checkpoint(best)
    assert ck["imgsz"] == [64, 96] and ck["head_spec"]["imgsz"] == [64, 96]
    capsys.readouterr()
    assert main(["val", "--weights", str(best), "--data", str(sample_yaml), "--split", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 40
    # resume agrees with its own size, refuses another
    assert main(["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--imgsz", "96x96", "--out", str(rect_run),
                 "--resume", "--epochs", "2", "--workers", "0"]) == 1
    assert "--imgsz 96" in capsys.readouterr().err
    assert main(["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--imgsz", "96x64", "--out", str(rect_run),
                 "--resume", "--epochs", "2", "--workers", "0", "--json"]) == 0
    assert [r["epoch"] for r in json.loads((rect_run / "results.json").read_text())] == [1, 2]


def test_a_rectangular_checkpoint_exports_and_runs_at_its_size(rect_run, sample_yaml, tmp_path, capsys):
    from edgekit.runtime import load

    capsys.readouterr()
    assert main(["export", str(rect_run / "weights" / "best.pt"), "--target", "onnx", "--data", str(sample_yaml),
                 "--out", str(tmp_path), "--json"]) == 0
    target = json.loads(capsys.readouterr().out)["targets"][0]
    assert target["status"] == "ok" and target["parity"]["passed"]
    det = load(target["path"])
    assert det.describe()["input"]["shape"] == [1, 3, 64, 96]
    img = np.full((90, 160, 3), 127, np.uint8)
    d = det.predict(img, conf=0.0001)  # an untrained model: any boxes, but inside the 160x90 image
    assert len(d) and d.boxes[:, [0, 2]].max() <= 160 and d.boxes[:, [1, 3]].max() <= 90


def test_classifiers_and_pruning_refuse_a_rectangle_in_one_line(rect_run, sample_yaml, tmp_path, capsys):
    assert main(["train", "--task", "classify", "--model", "mobilenetv2-cls", "--data", str(tmp_path), "--imgsz",
                 "96x64"]) == 1
    err = capsys.readouterr().err
    assert "classifiers take a square input" in err and "Traceback" not in err
    assert main(["prune", "--weights", str(rect_run / "weights" / "best.pt"), "--data", str(sample_yaml), "--ratio",
                 "0.2", "--out", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "rectangular input 96x64" in err and "Traceback" not in err
    assert not (tmp_path / "p").exists()
