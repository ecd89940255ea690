"""`edgekit data check` and `edgekit data convert`: real datasets, round trips, atomicity."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekit.cli.main import main
from edgekit.data import convert_dataset, load_dataset
from edgekit.data.check import check_dataset
from edgekit.errors import EdgekitError


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True)


def test_check_sample_json(sample_yaml):
    r = run_cli("data", "check", sample_yaml, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["usable"] and out["splits"]["train"]["images"] == 120
    assert sum(out["splits"]["val"]["per_class"].values()) == out["splits"]["val"]["boxes"]


def test_check_bccd_reports_degenerate_boxes(bccd_yaml):
    report = check_dataset(bccd_yaml)
    assert report.usable and report.issue_counts() == {"degenerate_box": 2}
    text = report.to_text()
    assert "degenerate_box: 2" in text


def test_check_fish4knowledge(shared_dir):
    r = run_cli("data", "check", shared_dir / "data" / "fish4knowledge" / "data.yaml", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {s: v["images"] for s, v in out["splits"].items()} == {"train": 1315, "val": 376, "test": 188}
    # the number that decides the input size: fish are a dozen pixels wide
    assert out["box_size_px"]["train"]["median"] == [14.0, 11.0]


def test_check_truncated_image_found_only_by_decoding(sample_copy):
    img = sorted((sample_copy.parent / "test" / "images").glob("*.jpg"))[0]
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 3])  # header intact, pixels cut
    assert "unreadable_image" not in check_dataset(sample_copy, decode=False).issue_counts()
    report = check_dataset(sample_copy)
    assert report.issue_counts().get("unreadable_image") == 1 and report.usable


def test_check_unusable_dataset_exits_1(sample_copy):
    for p in (sample_copy.parent / "test" / "images").glob("*.jpg"):
        p.write_bytes(b"garbage")
    r = run_cli("data", "check", sample_copy)
    assert r.returncode == 1
    assert "split 'test' has no readable image" in r.stderr and "Traceback" not in r.stderr


def test_missing_data_yaml_is_one_line(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgekit: error:") and "does not exist" in err[0]


def same_labels(a, b):
    assert a.names == b.names and set(a.splits) == set(b.splits)
    for split in a.splits:
        ra = sorted(a.split(split), key=lambda r: r.path.name)
        rb = sorted(b.split(split), key=lambda r: r.path.name)
        assert [r.path.name for r in ra] == [r.path.name for r in rb]
        for x, y in zip(ra, rb):
            assert (x.width, x.height) == (y.width, y.height)
            np.testing.assert_array_equal(x.classes, y.classes)
            np.testing.assert_allclose(x.boxes, y.boxes, atol=2e-3 * max(x.width, x.height))


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_convert_round_trip_sample(tmp_path, sample_yaml, fmt):
    out = convert_dataset(sample_yaml, fmt, tmp_path / fmt, link=True)
    converted = load_dataset(out)
    assert converted.format == fmt
    same_labels(load_dataset(sample_yaml), converted)
    back = load_dataset(convert_dataset(out, "yolo", tmp_path / f"{fmt}-back"))
    same_labels(load_dataset(sample_yaml), back)


def test_convert_bccd_voc_to_coco_keeps_counts(tmp_path, bccd_yaml):
    out = convert_dataset(bccd_yaml, "coco", tmp_path / "bccd-coco", link=True)
    src, dst = load_dataset(bccd_yaml), load_dataset(out)
    assert src.counts() == dst.counts()
    assert sum(i.kind == "degenerate_box" for i in dst.issues) == 2


def test_convert_refuses_existing_output_and_leaves_nothing_on_failure(tmp_path, sample_yaml, monkeypatch):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(EdgekitError, match="already exists"):
        convert_dataset(sample_yaml, "coco", tmp_path / "busy")
    import edgekit.data.coco as coco

    def explode(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(coco, "coco_document", explode)
    with pytest.raises(RuntimeError):
        convert_dataset(sample_yaml, "coco", tmp_path / "half")
    assert not (tmp_path / "half").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]


def test_convert_cli(tmp_path, sample_yaml):
    r = run_cli("data", "convert", sample_yaml, "--to", "voc", "--out", tmp_path / "v", "--link")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "v" / "ImageSets" / "Main" / "train.txt").read_text().count("\n") == 120
