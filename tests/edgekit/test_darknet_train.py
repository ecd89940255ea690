"""A Darknet .cfg trains like a registered family: heads fitted to the data, cfg kept in the checkpoint,
Darknet .weights (whole or a `darknet partial` backbone) as the start."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgekit.data import sample_data_yaml
from edgekit.errors import EdgekitError
from edgekit.models import create_model, load_darknet
from edgekit.models.checkpoint import read_checkpoint
from edgekit.models.darknet import save_darknet_weights
from edgekit.models.darknet_model import adapt_cfg, darknet_weights_state

# a small cfg in Darknet's own notation: 3 stride-2 convs, 80 COCO classes as downloaded (edgekit refits them)
CFG = """[net]
width=416
height=416
channels=3
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky
[convolutional]
size=1
stride=1
pad=1
filters=255
activation=linear
[yolo]
mask = 0,1,2
anchors = 10,14,  23,27,  37,58
classes=80
num=3
"""


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_cfg_is_fitted_to_the_data():
    secs = adapt_cfg(CFG, 2, anchors=[[5, 6], [1, 2], [3, 4]], imgsz=64)
    head = next(s for s in secs if s.kind == "yolo")
    conv = secs[secs.index(head) - 1]
    assert (secs[0].get_int("width"), head.get_int("classes"), conv.get_int("filters")) == (64, 2, 3 * 7)
    assert head.get_str("anchors") == "1,2, 3,4, 5,6" and head.get_ints("mask") == [0, 1, 2]
    m = create_model("darknet", num_classes=2, cfg=CFG, imgsz=64)
    assert m.head_spec["num_classes"] == 2 and m.head_spec["imgsz"] == [64, 64]
    with pytest.raises(EdgekitError, match="anchors per head"):
        adapt_cfg(CFG, 2, anchors=[[[1, 2], [3, 4]]])


def test_partial_and_whole_darknet_weights(tmp_path):
    (tmp_path / "m.cfg").write_text(CFG)
    src = load_darknet(tmp_path / "m.cfg")
    save_darknet_weights(src, tmp_path / "m.conv.2", cutoff=2)
    sd, rep = darknet_weights_state(CFG, tmp_path / "m.conv.2")
    assert (rep["layers"], rep["of"]) == (2, 4)
    assert set(k.split(".")[1] for k in sd) == {"0", "1"}  # only the layers the file holds
    torch.testing.assert_close(sd["layers.1.conv.weight"], src.layers[1].conv.weight)
    save_darknet_weights(src, tmp_path / "m.weights")
    assert darknet_weights_state(CFG, tmp_path / "m.weights")[1]["layers"] == 4
    raw = (tmp_path / "m.conv.2").read_bytes()
    (tmp_path / "odd.conv.2").write_bytes(raw[:-8])  # not on a layer boundary
    with pytest.raises(EdgekitError, match="not the first conv layers"):
        darknet_weights_state(CFG, tmp_path / "odd.conv.2")


def test_train_a_cfg_from_a_partial_backbone_then_val_and_export(tmp_path):
    (tmp_path / "tiny.cfg").write_text(CFG)
    load = load_darknet(tmp_path / "tiny.cfg")
    save_darknet_weights(load, tmp_path / "tiny.conv.3", cutoff=3)
    data = str(sample_data_yaml())
    r = cli("train", "--model", "tiny.cfg", "--data", data, "--imgsz", "64", "--epochs", "1", "--batch", "32",
            "--weights", "tiny.conv.3", "--threads", "1", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert summary["out"] == "runs/train/tiny"  # named after the cfg
    assert "Darknet weights for 3 of the cfg's 4 conv layers" in r.stderr
    best = tmp_path / summary["best"]
    ck = read_checkpoint(best)  # weights_only=True; the architecture is the stored cfg text
    assert ck["model"] == "darknet" and ck["model_kwargs"]["cfg"] == CFG and len(ck["names"]) == 7
    v = cli("val", "--weights", str(best), "--data", data, "--json")
    assert v.returncode == 0, v.stderr[-1500:]
    assert 0 <= json.loads(v.stdout)["map50"] <= 1
    e = cli("export", str(best), "--target", "onnx", "--out", str(tmp_path / "exp"))
    assert e.returncode == 0, e.stderr[-1500:]
    assert (tmp_path / "exp" / "tiny-onnx.onnx").is_file()


def test_darknet_weights_need_their_cfg(tmp_path):
    (tmp_path / "x.weights").write_bytes(np.zeros(8, "<i4").tobytes())
    r = cli("train", "--model", "yolo-lite", "--data", str(sample_data_yaml()), "--weights", str(tmp_path / "x.weights"))
    assert r.returncode == 1 and "give the .cfg they belong to" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--model", str(tmp_path / "missing.cfg"), "--data", str(sample_data_yaml()))
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr


def _task(cfg_text: str, name: str, weights=None):
    from edgekit.train.detect import DetectionTask, TrainOptions

    opts = TrainOptions("darknet", str(sample_data_yaml()), imgsz=64, weights=weights, progress=False,
                        model_kwargs={"cfg": cfg_text, "cfg_name": name})
    task = DetectionTask(opts)
    task.load_data()
    return task


def test_weights_of_another_cfg_lend_their_layers_instead_of_replacing_the_cfg(tmp_path, capsys):
    """`--model wider.cfg --weights ck-of-tiny.cfg` trains wider.cfg (a second head added), with tiny.cfg's
    tensors where they fit; the same cfg written differently (a comment, spacing) still fine-tunes."""
    from edgekit.models.checkpoint import save_checkpoint
    from edgekit.train.engine import make_checkpoint
    from edgekit.train.optim import ModelEMA

    src_task = _task(CFG, "tiny.cfg")
    src = src_task.build_model(None)
    save_checkpoint(tmp_path / "tiny.pt", make_checkpoint(src_task, src, ModelEMA(src), 1, {"map50": 0.0, "map50_95": 0.0}))
    # a stride-16 head from layer 1's 16 channels, after the cfg's own head
    wider = CFG + "[route]\nlayers = 1\n[convolutional]\nsize=1\nstride=1\npad=1\nfilters=255\nactivation=linear\n" \
                  "[yolo]\nmask = 0,1,2\nanchors = 10,14,  23,27,  37,58\nclasses=80\nnum=3\n"
    capsys.readouterr()
    task = _task(wider, "wider.cfg", weights=str(tmp_path / "tiny.pt"))
    model = task.build_model(None)
    err = capsys.readouterr().err
    assert "a model of another cfg (tiny.cfg)" in err and "transferred" in err
    assert model.head_spec["strides"] == [8, 4] and task.model_kwargs["cfg"] == wider
    own, lent = model.state_dict(), src.state_dict()
    shared = [k for k in lent if k in own and own[k].shape == lent[k].shape]
    assert len(shared) == len(lent) and all(torch.equal(own[k], lent[k]) for k in shared)
    # the same layers, written another way: the same model, fine-tuned with the checkpoint's anchors
    task = _task("# my copy\n" + CFG.replace("filters=8", "filters = 8"), "copy.cfg",
                 weights=str(tmp_path / "tiny.pt"))
    task.build_model(None)
    err = capsys.readouterr().err
    assert "another cfg" not in err and "fine-tuning keeps the anchors" in err
