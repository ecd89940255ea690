"""``edgekit eval``: output in both forms, and one clean error line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.cli.main import main

REPO = Path(__file__).resolve().parents[2]

GT = {
    "images": [{"id": 1}, {"id": 2}, {"id": 3}],
    "categories": [{"id": 3, "name": "rbc"}, {"id": 7, "name": "wbc"}, {"id": 9, "name": "unused"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [100, 100, 120, 120], "area": 14400, "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0},
    ],
}
PRED = [
    {"image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40], "score": 0.9},
    {"image_id": 1, "category_id": 7, "bbox": [105, 100, 120, 120], "score": 0.8},
    {"image_id": 3, "category_id": 3, "bbox": [0, 0, 30, 30], "score": 0.3},
]


@pytest.fixture()
def files(tmp_path):
    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text(json.dumps(GT))
    pred.write_text(json.dumps(PRED))
    return gt, pred


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgekit", "eval", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_json_output(files, capsys):
    gt, pred = files
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)                   # exactly one JSON object
    assert {"map50_95", "map50", "map75", "mar", "per_class", "per_class_map50", "num_gt"} <= out.keys()
    assert set(out["per_class"]) == {"rbc", "wbc", "unused"} and out["per_class"]["unused"] is None
    assert out["per_class"]["rbc"] == pytest.approx(51 / 101, abs=1e-6)  # half the GT found at precision 1
    assert 0 < out["per_class"]["wbc"] < 1 and "map_small" not in out


def test_json_output_with_areas_and_max_dets(files, capsys):
    gt, pred = files
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--json", "--areas", "--max-dets", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"map_small", "map_medium", "map_large"} <= out.keys() and out["max_dets"] == 1


def test_table_output(files, capsys):
    gt, pred = files
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--areas"]) == 0
    out = capsys.readouterr().out
    assert "AP50:95" in out and "mAP50:95" in out and "small AP" in out
    assert [line.split()[0] for line in out.splitlines()[2:6]] == ["rbc", "wbc", "unused", "all"]


def test_subprocess_json(files):
    gt, pred = files
    proc = run_cli("--gt", gt, "--pred", pred, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["map50_95"] > 0 and "rbc" in out["per_class"]


def _bad_cases(tmp_path: Path, gt: Path, pred: Path):
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps(PRED)[:50])
    not_list = tmp_path / "notlist.json"
    not_list.write_text(json.dumps({"detections": PRED}))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(PRED + [{"image_id": 42, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.1}]))
    return {
        "truncated": (["--gt", gt, "--pred", truncated], "is not valid JSON (line 1, column"),
        "missing": (["--gt", tmp_path / "nope.json", "--pred", pred], "does not exist"),
        "not a list": (["--gt", gt, "--pred", not_list], "not a COCO results list"),
        "unknown image": (["--gt", gt, "--pred", unknown], "image_id 42, which is not among"),
        "swapped": (["--gt", pred, "--pred", gt], "not COCO ground truth"),
    }


@pytest.mark.parametrize("case", ["truncated", "missing", "not a list", "unknown image", "swapped"])
def test_bad_input_is_one_error_line(files, tmp_path, capsys, case):
    gt, pred = files
    args, message = _bad_cases(tmp_path, gt, pred)[case]
    assert main(["eval", *map(str, args)]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:") and message in lines[0]
    assert captured.out == ""


@pytest.mark.parametrize("case", ["truncated", "missing", "not a list", "unknown image"])
def test_bad_input_subprocess_has_no_traceback(files, tmp_path, case):
    gt, pred = files
    args, message = _bad_cases(tmp_path, gt, pred)[case]
    proc = run_cli(*args)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
