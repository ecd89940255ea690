"""Training: every registered model learns, the CLI writes its run, resume and DDP work, and both
tasks (detection, classification) run through the one engine with the same guarantees."""

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
    from edgekit.train.detect import fit_anchors

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


def test_bf16_autocast_trains_and_keeps_fp32_checkpoints(tmp_path, sample_yaml, capsys):
    """``--bf16``: the step runs under bf16 autocast; weights, EMA and checkpoints stay fp32; resuming
    without it is allowed (a machine option, like --threads)."""
    out = tmp_path / "run"
    assert main(["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--imgsz", "64", "--epochs", "1",
                 "--batch", "8", "--workers", "0", "--bf16", "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    ck = read_checkpoint(out / "weights" / "last.pt")
    assert ck["train_options"]["bf16"] is True
    assert all(t.dtype == torch.float32 for t in ck["state_dict"].values() if t.is_floating_point())
    rows = json.loads((out / "results.json").read_text())
    assert {"loss_box", "loss_obj", "loss_cls"} <= set(rows[0])
    assert all(np.isfinite(v) for k, v in rows[0].items() if k.startswith("loss"))
    assert main(["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--epochs", "2", "--out", str(out),
                 "--resume", "--workers", "0", "--json"]) == 0
    assert [row["epoch"] for row in json.loads((out / "results.json").read_text())] == [1, 2]


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
    from edgekit.train.runs import restore_options

    saved = asdict(TrainOptions("yolo-lite", "d.yaml", epochs=3, augment=AugmentOptions(scale=0.1, fliplr=0.0)))
    opts = restore_options(TrainOptions, saved, tmp_path, epochs=5, progress=False)
    assert opts.augment == AugmentOptions(scale=0.1, fliplr=0.0)
    assert (opts.epochs, opts.resume, opts.out) == (5, True, str(tmp_path))
    # an option an older edgekit saved but this one no longer has does not block the resume
    assert restore_options(TrainOptions, {**saved, "gone": 1}, tmp_path, epochs=1, progress=False).epochs == 3


def test_weights_fine_tune_or_transfer_what_fits(tmp_path, sample_yaml, capsys):
    """``--weights``: the same model resumes its weights and anchors; a model sharing the backbone
    takes the tensors that fit (lr 0 leaves them as loaded); a model sharing nothing is refused."""
    from edgekit.train import TrainOptions, train

    src = Path(__file__).resolve().parents[2] / "edgekit" / "assets" / "weights" / "mobilenetv2_050-yolo-fish4knowledge-320.pt"
    ck = read_checkpoint(src)

    def run(model, out, anchors=None):
        return train(TrainOptions(model, str(sample_yaml), imgsz=64, epochs=1, batch=8, workers=0, lr=0.0,
                                  out=str(tmp_path / out), weights=str(src), max_train_images=8, anchors=anchors))

    key = "backbone.features.3.block.1.conv.weight"  # a depthwise conv inside the backbone
    same = read_checkpoint(run("mobilenetv2_050-yolo", "same")["best"])
    assert same["anchors"] == ck["anchors"] and torch.equal(same["state_dict"][key], ck["state_dict"][key])
    assert "fine-tuning keeps the anchors of" in capsys.readouterr().err  # said, not silent
    refit = read_checkpoint(run("mobilenetv2_050-yolo", "refit", anchors="kmeans")["best"])
    assert refit["anchors"] != ck["anchors"] and torch.equal(refit["state_dict"][key], ck["state_dict"][key])
    assert "fine-tuning with kmeans anchors instead of" in capsys.readouterr().err
    p3 = read_checkpoint(run("mobilenetv2_050-yolo-p3", "p3")["best"])
    assert torch.equal(p3["state_dict"][key], ck["state_dict"][key])
    assert len(p3["anchors"]) == 3 and p3["anchors"] != ck["anchors"]  # its own k-means anchors, 3 strides
    assert "transferred" in capsys.readouterr().err
    with pytest.raises(EdgekitError, match="shares no layer"):
        run("yolo-lite", "none")


# --- the one engine: both tasks get the same run folder, checkpoints, resume and best_fitness guard ---

ENGINE_KEYS = {"model", "model_kwargs", "names", "imgsz", "head_spec", "state_dict", "epoch", "metrics", "data",
               "train_options", "edgekit_version", "ema_updates", "best_fitness", "format"}


@pytest.fixture(scope="module")
def crops(sample_yaml, tmp_path_factory) -> Path:
    from edgekit.data.crops import make_crops

    return make_crops(sample_yaml, tmp_path_factory.mktemp("crops") / "fish")


def task_options(task, sample_yaml, crops, out, **kw):
    """Tiny options of either task (64 px detection, 32 px classification, a few images)."""
    from edgekit.train import ClassifyOptions, TrainOptions

    if task == "detect":
        return TrainOptions("yolo-lite", str(sample_yaml), imgsz=64, batch=8, workers=0, threads=1, progress=False,
                            max_train_images=16, out=str(out), **kw)
    return ClassifyOptions("mobilenetv2-cls", str(crops), imgsz=32, batch=16, workers=0, threads=1, progress=False,
                           max_train_images=32, model_kwargs={"width": 0.35}, out=str(out), **kw)


@pytest.fixture(scope="module", params=["detect", "classify"])
def finished_run(request, sample_yaml, crops, tmp_path_factory):
    """(task, run folder, summary) of a finished 1-epoch run of each task, through edgekit.train.train."""
    from edgekit.train import train

    before = torch.get_num_threads()
    out = tmp_path_factory.mktemp(request.param) / "run"
    summary = train(task_options(request.param, sample_yaml, crops, out, epochs=1))
    torch.set_num_threads(before)
    return request.param, out, summary


def copy_run(run: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, tmp_path / "run"))


def all_tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from all_tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from all_tensors(v)


def test_both_tasks_write_the_same_run_shape(finished_run, sample_yaml):
    task, out, summary = finished_run
    assert set(summary) == {"out", "best", "last", "epochs", "val"} and summary["epochs"] == 1
    rows = json.loads((out / "results.json").read_text())
    assert rows == [summary["val"]] and (out / "results.csv").read_text().splitlines()[0].startswith("epoch,")
    best, last = read_checkpoint(out / "weights" / "best.pt"), read_checkpoint(out / "weights" / "last.pt")
    assert ENGINE_KEYS <= set(best) and ENGINE_KEYS | {"optimizer"} <= set(last) and "optimizer" not in best
    assert best["train_options"]["model"] == best["model"] and best["ema_updates"] > 0
    if task == "detect":  # task extras; the detector checkpoint keeps its historical keys (no "task")
        assert "task" not in best and sum(map(len, best["anchors"])) == 5 and set(best["metrics"]) == {"val"}
    else:
        assert best["task"] == "classify" and best["data"]["val_split"] == "val" and set(best["metrics"]) == {"val"}
    assert 0.0 <= best["best_fitness"] <= 1.0


def test_checkpoint_tensors_are_detached_cpu_copies(finished_run):
    """Loaded without map_location, every tensor of best.pt and last.pt (optimizer state included) is
    on the CPU; the copy helper the engine saves through never aliases live (training) tensors."""
    from edgekit.train.engine import cpu_copy

    _, out, _ = finished_run
    for name in ("best.pt", "last.pt"):
        ck = torch.load(out / "weights" / name, weights_only=True)  # no map_location: devices as saved
        tensors = list(all_tensors(ck))
        assert len(tensors) > 10 and all(t.device.type == "cpu" and not t.requires_grad for t in tensors)
    assert len(list(all_tensors(ck["optimizer"]["state"]))) > 0
    w = torch.nn.Parameter(torch.ones(3))
    copy = cpu_copy({"state": {0: {"exp_avg": w}}, "groups": [(w,)]})
    with torch.no_grad():
        w.add_(1)
    assert copy["state"][0]["exp_avg"].tolist() == [1.0] * 3 and not copy["groups"][0][0].requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: the detector checkpoint kept CUDA tensors")
@pytest.mark.parametrize("task", ["detect", "classify"])
def test_checkpoints_of_a_cuda_run_hold_cpu_tensors(task, sample_yaml, crops, tmp_path):
    from edgekit.train import train

    out = tmp_path / "run"
    train(task_options(task, sample_yaml, crops, out, epochs=1, device="cuda"))
    for name in ("best.pt", "last.pt"):
        ck = torch.load(out / "weights" / name, weights_only=True)
        assert {t.device.type for t in all_tensors(ck)} == {"cpu"}


def test_resuming_a_finished_run_returns_its_final_summary(finished_run, sample_yaml, crops, tmp_path):
    """The detection loop used to return {} here; now both tasks return the summary they finished with."""
    from edgekit.train import train

    task, run, summary = finished_run
    run = copy_run(run, tmp_path)
    again = train(task_options(task, sample_yaml, crops, run, epochs=1, resume=True))
    assert again == {**summary, "out": str(run), "best": str(run / "weights" / "best.pt"),
                     "last": str(run / "weights" / "last.pt")}
    assert again["val"]["epoch"] == 1 and len(json.loads((run / "results.json").read_text())) == 1


def test_resume_guards_a_missing_best_fitness(finished_run, sample_yaml, crops, tmp_path):
    """A last.pt whose best_fitness is None (the classifier loop compared against it and crashed)
    resumes in both tasks: the next epoch is compared against the floor, so best.pt is rewritten."""
    from edgekit.models.checkpoint import save_checkpoint
    from edgekit.train import train

    task, run, _ = finished_run
    run = copy_run(run, tmp_path)
    last = read_checkpoint(run / "weights" / "last.pt")
    save_checkpoint(run / "weights" / "last.pt", {**last, "best_fitness": None})
    summary = train(task_options(task, sample_yaml, crops, run, epochs=2, resume=True))
    assert summary["epochs"] == 2 and [r["epoch"] for r in json.loads((run / "results.json").read_text())] == [1, 2]
    best, last = read_checkpoint(run / "weights" / "best.pt"), read_checkpoint(run / "weights" / "last.pt")
    assert best["epoch"] == 1 and isinstance(last["best_fitness"], float) and last["best_fitness"] >= 0


def test_a_task_with_non_finite_fitness_still_gets_best_pt(sample_yaml, tmp_path):
    """A third task through the same engine: its NaN fitness is guarded (best.pt written, best_fitness finite)."""
    import math

    from edgekit.train import TrainOptions
    from edgekit.train.detect import DetectionTask
    from edgekit.train.engine import run

    class NanFitness(DetectionTask):
        def fitness(self, metrics):
            return math.nan

    opts = TrainOptions("yolo-lite", str(sample_yaml), imgsz=64, epochs=1, batch=8, workers=0, threads=1,
                        progress=False, max_train_images=8, out=str(tmp_path / "run"))
    summary = run(NanFitness(opts))
    best = read_checkpoint(summary["best"])
    assert best["best_fitness"] == -1.0 and best["epoch"] == 0


def test_both_tasks_refuse_resuming_the_other_tasks_run(finished_run, sample_yaml, crops, tmp_path):
    from edgekit.train import train

    task, run, _ = finished_run
    other = "classify" if task == "detect" else "detect"
    with pytest.raises(EdgekitError, match=f"holds a {task} run: resume it with --task {task}"):
        train(task_options(other, sample_yaml, crops, run, epochs=1, resume=True))
