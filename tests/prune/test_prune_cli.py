"""``edgekit prune`` from the command line: results on stdout, bad input as one line and exit 1."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from edgekit.cli.main import main
from edgekit.models import load_darknet
from edgekit.models.darknet import reference_cfg


def _one_line_error(capsys, rc):
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 1 and out == "" and "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


def test_cli_json_is_one_document(tiny_checkpoint, sample_yaml, tmp_path, capsys):
    rc = main(["prune", "--weights", str(tiny_checkpoint("yolo-lite")), "--data", str(sample_yaml), "--ratio", "0.5",
               "--steps", "1", "--finetune-epochs", "0", "--no-measure", "--out", str(tmp_path), "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["after"]["macs"] < r["before"]["macs"] and r["weights"] == str(tmp_path / "pruned.pt")


def test_bf16_reaches_the_fine_tuning(tiny_checkpoint, sample_yaml, tmp_path, capsys):
    """``--bf16`` fine-tunes under bf16 autocast: the fine-tuned checkpoint's own options say so."""
    from edgekit.models.checkpoint import read_checkpoint

    rc = main(["prune", "--weights", str(tiny_checkpoint("yolo-lite")), "--data", str(sample_yaml), "--ratio", "0.3",
               "--steps", "1", "--finetune-epochs", "1", "--no-measure", "--bf16", "--out", str(tmp_path), "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert read_checkpoint(r["weights"])["train_options"]["bf16"] is True


def test_target_latency_on_a_board_steers_by_the_estimate(tiny_checkpoint, sample_yaml, tmp_path, capsys):
    """``--target-latency MS --board rpi4``: pruned until the estimator's figure for a Pi 4, recorded as estimated."""
    from edgekit.estimate import estimate, load_graph

    src = tiny_checkpoint("yolo-lite")
    lat0 = estimate(load_graph(str(src)), ["rpi4"])[0]["latency_ms"]
    target = round(lat0 * 0.6, 3)
    rc = main(["prune", "--weights", str(src), "--data", str(sample_yaml), "--target-latency", str(target),
               "--board", "rpi4", "--steps", "1", "--finetune-epochs", "0", "--no-measure", "--out", str(tmp_path),
               "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["asked"]["board"] == "rpi4" and r["asked"]["target_latency_ms"] == target
    after = estimate(load_graph(str(tmp_path / "pruned.pt")), ["rpi4"])[0]["latency_ms"]
    assert after < 0.9 * lat0  # the estimate, not this host's bench, went down
    assert r["steps"][-1]["latency_ms_estimated"] == pytest.approx(after, abs=0.01)


@pytest.mark.parametrize("args, expect", [
    (["--ratio", "1.5"], "--ratio"),
    (["--ratio", "0.3", "--target-macs", "100"], "not allowed with"),
    ([], "one of the arguments"),
    (["--ratio", "0.3", "--importance", "bn-scale"], "no batch norm"),
    (["--ratio", "0.3", "--ignore", "no.such.layer*"], "matches no layer"),
    (["--target-macs", "1e12"], "not below"),
    (["--ratio", "0.3", "--steps", "0"], "--steps"),
    (["--ratio", "0.3", "--board", "rpi4"], "--board names where --target-latency"),
    (["--target-latency", "1", "--board", "no-such-board"], "unknown board 'no-such-board'"),
])
def test_bad_options_are_one_line(args, expect, tiny_checkpoint, sample_yaml, tmp_path, capsys):
    src = tiny_checkpoint("yolo-lite")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "out"
    rc = main(["prune", "--weights", str(src), "--data", str(sample_yaml), "--no-measure", "--out", str(out), *args])
    assert expect in _one_line_error(capsys, rc)
    assert not out.exists() and hashlib.sha256(src.read_bytes()).hexdigest() == digest  # nothing written, input intact


def test_bad_files_are_one_line(tiny_checkpoint, sample_yaml, tmp_path, capsys):
    src = str(tiny_checkpoint("yolo-lite"))
    common = ["--ratio", "0.3", "--no-measure", "--out", str(tmp_path / "o")]
    assert "does not exist" in _one_line_error(
        capsys, main(["prune", "--weights", str(tmp_path / "nope.pt"), "--data", str(sample_yaml), *common]))
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert ".cfg" in _one_line_error(
        capsys, main(["prune", "--weights", str(tmp_path / "m.onnx"), "--data", str(sample_yaml), *common]))
    other = tmp_path / "other.yaml"  # the same images under other class names
    other.write_text(sample_yaml.read_text().replace("names: ['0', '1', '2', '5', '6', '7', '8']",
                                                    "names: ['a', 'b', 'c', 'd', 'e', 'f', 'g']")
                     .replace("path: .", f"path: {sample_yaml.parent}"))
    assert "trained on" in _one_line_error(capsys, main(["prune", "--weights", src, "--data", str(other), *common]))


def test_darknet_cfg_is_pruned_and_written_back(sample_yaml, tmp_path, capsys):
    cfg = reference_cfg("yolov3-tiny.cfg")
    rc = main(["prune", "--weights", str(cfg), "--data", str(sample_yaml), "--ratio", "0.4", "--steps", "2",
               "--imgsz", "64", "--out", str(tmp_path), "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["after"]["macs"] < r["before"]["macs"] and len(r["steps"]) == 3
    pruned = load_darknet(tmp_path / "pruned.cfg", tmp_path / "pruned.weights").eval()
    outs = pruned(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [255, 255]  # the heads keep A * (5 + C) channels
    assert "taylor" in _one_line_error(capsys, main(["prune", "--weights", str(cfg), "--data", str(sample_yaml),
                                                     "--ratio", "0.4", "--importance", "taylor",
                                                     "--out", str(tmp_path / "t")]))
