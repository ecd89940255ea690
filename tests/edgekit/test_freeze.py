"""``edgekit train --freeze``: the frozen layers come out of training as they went in, the rest learns."""

from __future__ import annotations

import json

import pytest
import torch

from edgekit.cli.main import main
from edgekit.data import sample_data_yaml
from edgekit.models import load_darknet
from edgekit.models.checkpoint import read_checkpoint
from edgekit.models.darknet import save_darknet_weights
from tests.edgekit.test_darknet_train import CFG


def _train(tmp_path, capsys, *args):
    rc = main(["train", "--data", str(sample_data_yaml()), "--imgsz", "64", "--epochs", "1", "--batch", "16",
               "--threads", "1", "--workers", "0", "--out", str(tmp_path / "run"), "--json", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def _changed(before: dict, after: dict, prefix: str) -> list[bool]:
    keys = [k for k in before if k.startswith(prefix) and before[k].is_floating_point()]
    assert keys, prefix
    return [not torch.allclose(before[k].float(), after[k].float(), atol=1e-7, rtol=0) for k in keys]


def test_darknet_first_layers_stay_as_loaded(tmp_path, capsys):
    (tmp_path / "tiny.cfg").write_text(CFG)
    src = load_darknet(tmp_path / "tiny.cfg")
    save_darknet_weights(src, tmp_path / "tiny.weights")
    rc, out, err = _train(tmp_path, capsys, "--model", str(tmp_path / "tiny.cfg"), "--weights",
                          str(tmp_path / "tiny.weights"), "--freeze", "2")
    assert rc == 0, err[-1500:]
    ck = read_checkpoint(json.loads(out)["best"])
    assert ck["train_options"]["freeze"] == 2
    start = src.state_dict()  # what the .weights file holds: where training began
    sd = ck["state_dict"]
    for layer in ("layers.0.", "layers.1."):  # frozen: weights and batch-norm statistics unchanged
        assert not any(_changed(start, sd, layer)), layer
    assert any(_changed(start, sd, "layers.2."))  # trained


def test_registry_backbone_stays_and_head_learns(tmp_path, capsys):
    rc, out, err = _train(tmp_path, capsys, "--model", "yolo-lite")
    assert rc == 0, err[-1500:]
    start = read_checkpoint(json.loads(out)["best"])["state_dict"]
    rc, out, err = _train(tmp_path / "ft", capsys, "--model", "yolo-lite", "--weights", json.loads(out)["best"],
                          "--freeze", "backbone")
    assert rc == 0, err[-1500:]
    sd = read_checkpoint(json.loads(out)["best"])["state_dict"]
    assert not any(_changed(start, sd, "backbone."))
    assert any(_changed(start, sd, "head."))


@pytest.mark.parametrize("model,freeze,expect", [
    ("yolo-lite", "3", "use --freeze backbone"),
    ("yolo-lite", "first", "give a number of Darknet cfg layers"),
    ("cfg", "backbone", "names no backbone"),
    ("cfg", "4", "reaches the cfg's first [yolo]/[region] layer"),
])
def test_bad_freeze_is_one_line(model, freeze, expect, tmp_path, capsys):
    if model == "cfg":
        (tmp_path / "tiny.cfg").write_text(CFG)
        model = str(tmp_path / "tiny.cfg")
    rc, out, err = _train(tmp_path, capsys, "--model", model, "--freeze", freeze)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert rc == 1 and out == "" and "Traceback" not in err, err[-1500:]
    assert len(lines) == 1 and expect in lines[0], err
    assert not (tmp_path / "run" / "weights").exists()  # refused before anything was written
