"""Training: every registered model learns, the CLI writes its run, resume and DDP work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.cli.main import main
from edgekit.data import load_dataset
from edgekit.errors import EdgekitError
from edgekit.models import create_model, list_models
from edgekit.models.checkpoint import load_checkpoint, read_checkpoint
from edgekit.train.loader import DetectionTrainSet, collate
from edgekit.train.loss import YoloLoss


def tiny_batch(sample_yaml, imgsz, n=4):
    recs = [r for r in load_dataset(sample_yaml).split("train") if len(r.classes)][:n]
    return collate([DetectionTrainSet(recs, imgsz)[i] for i in range(n)])


@pytest.mark.parametrize("name", list_models(task="detect"))  # classifiers: tests/edgekit/test_classify.py
def test_every_model_learns_a_tiny_batch(name, sample_yaml):
    torch.manual_seed(0)
    from edgekit.train.trainer import fit_anchors

    imgsz = 96
    recs = load_dataset(sample_yaml).split("train")
    n = sum(len(g) for g in create_model(name, num_classes=7, imgsz=imgsz).head_spec["anchors"])
    model = create_model(name, num_classes=7, imgsz=imgsz, anchors=fit_anchors(recs, imgsz, n))
    if model.head_spec["type"] == "yolo":
        model.head_spec["scale_x_y"] = [2.0] * len(model.head_spec["strides"])
    loss_fn = YoloLoss(model.head_spec)
    x, t = tiny_batch(sample_yaml, imgsz)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    losses = []
    for _ in range(15):
        loss, parts = loss_fn(model(x), t)
        assert torch.isfinite(loss) and parts["box"] > 0
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0], losses


def test_loss_decodes_like_the_runtime():
    """The box the loss trains is the box runtime.decode reads out of the same raw map."""
    from edgekit.runtime.decode import decode_dense

    for name in ("yolo-lite", "tiny-yolov3"):
        model = create_model(name, num_classes=3, imgsz=64)
        if model.head_spec["type"] == "yolo":
            model.head_spec["scale_x_y"] = [2.0] * len(model.head_spec["strides"])
        loss_fn = YoloLoss(model.head_spec)
        torch.manual_seed(1)
        outs = [torch.randn(1, o.shape[1], o.shape[2], o.shape[3]) for o in model(torch.zeros(1, 3, 64, 64))]
        dense = decode_dense([o.numpy() for o in outs], model.head_spec)  # rows: cx, cy, w, h (pixels) ...
        k, s = 0, model.head_spec["strides"][0]
        na = len(model.head_spec["anchors"][0])
        _, _, h, w = outs[0].shape
        p = outs[0].view(1, na, 8, h, w).permute(0, 1, 3, 4, 2)
        gj, gi, a = 1, 0, na - 1
        row = loss_fn.decode_cells(p[0, a, gj, gi][None], k, torch.tensor([float(gi)]), torch.tensor([float(gj)]),
                                   loss_fn.anchors[k][a][None]) * s
        ref = dense[0][(gj * w + gi) * na + a, :4]
        np.testing.assert_allclose(row[0].numpy(), ref, rtol=1e-4, atol=1e-3)


def test_train_cli_writes_run_and_val_reads_it(tmp_path, sample_yaml, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--imgsz", "64", "--epochs", "1",
               "--batch", "16", "--workers", "0", "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert (out / "weights" / "best.pt").exists() and (out / "weights" / "last.pt").exists()
    rows = json.loads((out / "results.json").read_text())
    assert rows[0]["epoch"] == 1 and "map50" in rows[0] and (out / "results.csv").exists()
    ck = read_checkpoint(out / "weights" / "best.pt")
    assert ck["names"] == load_dataset(sample_yaml).names and ck["imgsz"] == 64 and len(ck["data"]["train_hash"]) == 16
    assert "optimizer" not in ck and "optimizer" in read_checkpoint(out / "weights" / "last.pt")
    assert summary["best"].endswith("best.pt")
    assert main(["val", "--weights", str(out / "weights" / "best.pt"), "--data", str(sample_yaml), "--split", "test", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"map50", "map50_95", "per_class", "images", "ms_per_image"} <= set(r) and r["images"] == 40
    # resume: a second epoch appended to the same run
    assert main(["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--epochs", "2", "--out", str(out),
                 "--resume", "--workers", "0", "--json"]) == 0
    assert [row["epoch"] for row in json.loads((out / "results.json").read_text())] == [1, 2]
    # an existing run is never overwritten by accident
    assert main(["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--out", str(out)]) == 1
    assert "already holds a training run" in capsys.readouterr().err


def test_checkpoints_are_loaded_safely(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.pt"
    torch.save({"format": "edgekit-checkpoint-1", "x": Evil()}, bad)
    with pytest.raises(EdgekitError, match="not a loadable checkpoint"):
        load_checkpoint(bad)
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(EdgekitError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(EdgekitError, match="not an edgekit checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_ddp_two_cpu_processes(tmp_path, sample_yaml):
    """torchrun with 2 processes (gloo) trains one tiny epoch and rank 0 writes the run."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "edgekit", "train", "--model", "yolo-lite", "--data", str(sample_yaml), "--imgsz", "64",
           "--epochs", "1", "--batch", "8", "--workers", "0", "--out", str(out), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "weights" / "best.pt").exists()
    assert len(json.loads((out / "results.json").read_text())) == 1


def test_resume_restores_the_saved_options_augmentation_included(tmp_path):
    from dataclasses import asdict

    from edgekit.train import TrainOptions
    from edgekit.train.augment import AugmentOptions
    from edgekit.train.trainer import restore_options

    saved = asdict(TrainOptions("yolo-lite", "d.yaml", epochs=3, augment=AugmentOptions(scale=0.1, fliplr=0.0)))
    opts = restore_options(TrainOptions, saved, tmp_path, epochs=5, progress=False)
    assert opts.augment == AugmentOptions(scale=0.1, fliplr=0.0)
    assert (opts.epochs, opts.resume, opts.out) == (5, True, str(tmp_path))


def test_weights_fine_tune_or_transfer_what_fits(tmp_path, sample_yaml, capsys):
    """``--weights``: the same model resumes its weights and anchors; a model sharing the backbone
    takes the tensors that fit (lr 0 leaves them as loaded); a model sharing nothing is refused."""
    from edgekit.train import TrainOptions, train

    src = Path(__file__).resolve().parents[2] / "edgekit" / "assets" / "weights" / "mobilenetv2_050-yolo-fish4knowledge-320.pt"
    ck = read_checkpoint(src)

    def run(model, out):
        return train(TrainOptions(model, str(sample_yaml), imgsz=64, epochs=1, batch=8, workers=0, lr=0.0,
                                  out=str(tmp_path / out), weights=str(src), max_train_images=8))

    key = "backbone.features.3.block.1.conv.weight"  # a depthwise conv inside the backbone
    same = read_checkpoint(run("mobilenetv2_050-yolo", "same")["best"])
    assert same["anchors"] == ck["anchors"] and torch.equal(same["state_dict"][key], ck["state_dict"][key])
    p3 = read_checkpoint(run("mobilenetv2_050-yolo-p3", "p3")["best"])
    assert torch.equal(p3["state_dict"][key], ck["state_dict"][key])
    assert len(p3["anchors"]) == 3 and p3["anchors"] != ck["anchors"]  # its own k-means anchors, 3 strides
    assert "transferred" in capsys.readouterr().out
    with pytest.raises(EdgekitError, match="shares no layer"):
        run("yolo-lite", "none")
