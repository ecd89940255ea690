"""Verification never uses calibration images (issue 17): the two sets are disjoint by content.

An in-sample check flatters the quantizer, so images of the verification split are removed
from the calibration pool (compared by their bytes, whatever their names), and a calibration
folder without labelled data gives up a held-out part for the parity check. Few calibration
images get a warning, and a rejection names what would help.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgekit.export.calibration import CalibrationReader, content_digest


def _mixed_folder(sample_yaml: Path, dest: Path, n_test: int, n_train: int) -> tuple[list[Path], list[Path]]:
    """A calibration folder holding renamed copies of test images among train images."""
    from edgekit.data import load_dataset

    ds = load_dataset(sample_yaml)
    test = [r.path for r in ds.split("test")][:n_test]
    train = [r.path for r in ds.split("train")][:n_train]
    dest.mkdir()
    for k, p in enumerate(test + train):
        shutil.copy(p, dest / f"img_{k:03d}{p.suffix}")  # new names: only the content can tell them apart
    return test, train


def test_calibration_pool_excludes_verification_images_by_content(sample_yaml, tmp_path):
    test, train = _mixed_folder(sample_yaml, tmp_path / "calib", n_test=6, n_train=10)
    reader = CalibrationReader.from_source(tmp_path / "calib", imgsz=64, images=100, exclude=test)
    assert reader.excluded == 6 and len(reader) == 10
    calibrated = {content_digest(p) for p in reader.paths}
    assert calibrated.isdisjoint(content_digest(p) for p in test)
    assert calibrated == {content_digest(p) for p in train}
    assert reader.info()["excluded_verification_images"] == 6


def test_a_pool_of_only_verification_images_is_refused(sample_yaml, tmp_path):
    from edgekit.errors import EdgekitError

    test, _ = _mixed_folder(sample_yaml, tmp_path / "calib", n_test=4, n_train=0)
    with pytest.raises(EdgekitError, match="no calibration images left: all 4 of its images are verification images"):
        CalibrationReader.from_source(tmp_path / "calib", imgsz=64, exclude=test)


def test_export_with_data_never_calibrates_on_the_verification_split(tiny_detector, sample_yaml, tmp_path):
    from edgekit.data import load_dataset
    from edgekit.export import export

    n_test = len(load_dataset(sample_yaml).split("test"))
    _mixed_folder(sample_yaml, tmp_path / "calib", n_test=n_test, n_train=12)
    logs: list[str] = []
    rep = export(tiny_detector, ["onnx-int8"], data=sample_yaml, calib=tmp_path / "calib", out=tmp_path / "out",
                 max_map_drop=1.0, log=logs.append)
    cal = rep.to_dict()["calibration"]
    assert cal["excluded_verification_images"] == n_test and cal["images"] == 12
    (row,) = rep.results
    assert row.parity["images_from"].startswith("the verification split")
    assert any(f"{n_test} verification images left out" in line for line in logs)
    assert any(line.startswith("warning: calibrating on only 12 images") for line in logs)


def test_a_calibration_folder_alone_holds_out_its_parity_images(tiny_detector, tmp_path):
    from edgekit.data.sample import sample_data_yaml
    from edgekit.export import export

    _, train = _mixed_folder(sample_data_yaml(), tmp_path / "calib", n_test=0, n_train=3)  # three photos
    logs: list[str] = []
    rep = export(tiny_detector, ["onnx-int8"], calib=tmp_path / "calib", out=tmp_path / "out", log=logs.append)
    cal = rep.to_dict()["calibration"]
    assert cal["held_out_for_verification"] == 1 and cal["images"] == 2  # a quarter, at least one, held out
    (row,) = rep.results
    assert row.parity["images"] == 1 and "held out from calibration" in row.parity["images_from"]
    assert any(line.startswith("warning: calibrating on only 2 images") for line in logs)


def test_rejection_names_the_remedy_for_what_failed():
    from edgekit.export.exporter import remedy
    from edgekit.export.targets import TARGETS

    int8 = remedy(TARGETS["tflite-int8"], parity_failed=True, gate_failed=True)
    assert "calibrate on more or other real images" in int8 and "tflite" in int8
    assert "--max-map-drop" not in int8  # parity is not governed by the mAP gate
    assert "raise --max-map-drop only if" in remedy(TARGETS["tflite-int8"], parity_failed=False, gate_failed=True)
    assert "converter or runtime bug" in remedy(TARGETS["onnx"], parity_failed=True, gate_failed=False)
    assert "tflite" in remedy(TARGETS["tflite-fp16"], parity_failed=True, gate_failed=False)


CLASSIFIER = Path(__file__).resolve().parents[2] / "edgekit" / "assets" / "weights" / "mobilenetv2-cls-fish4knowledge-64.pt"


@pytest.fixture(scope="module")
def sample_crops(tmp_path_factory, sample_yaml) -> Path:
    """The embedded sample cut into species crops: the distribution the shipped classifier was trained on."""
    from edgekit.data.crops import make_crops

    out = tmp_path_factory.mktemp("crops") / "crops"
    make_crops(sample_yaml, out)
    return out


def test_classifier_export_gates_on_top1_of_its_crops(sample_crops, tmp_path):
    from edgekit.export import export

    rep = export(CLASSIFIER, ["onnx", "onnx-int8"], data=sample_crops, out=tmp_path / "out")
    cal = rep.to_dict()["calibration"]
    assert cal["source"] == str(sample_crops) and cal["split"] is None  # the crops' train split, not whole frames
    fp32, int8 = rep.results
    assert fp32.top1["source_top1"] > 0.6, "the shipped classifier knows these species"
    assert fp32.top1["delta_top1"] == 0 and fp32.ok
    assert int8.top1["max_top1_drop"] == 0.01 and int8.top1["images"] == fp32.top1["images"]
    lo, hi = int8.top1["delta_top1_ci95"]
    assert lo <= int8.top1["delta_top1"] <= hi
    row = rep.to_dict()["targets"][1]
    assert row["top1"] == int8.top1["top1"] and row["map50"] is None
    assert "top-1" in rep.to_markdown()


def test_classifier_with_a_detection_yaml_is_refused_with_the_crops_command(sample_yaml, tmp_path, capsys):
    from edgekit.cli.main import main

    code = main(["export", str(CLASSIFIER), "--target", "onnx", "--data", str(sample_yaml), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "edgekit data crops" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
