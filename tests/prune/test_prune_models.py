"""Pruning every registered detector keeps it runnable, trainable, exportable and loadable with weights_only."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from edgekit.cli.main import main
from edgekit.models import count_macs, create_model, list_models
from edgekit.models.checkpoint import load_checkpoint
from edgekit.models.detector import check_outputs
from edgekit.prune import prune
from tests.prune.conftest import prune_options

DETECTORS = list_models(task="detect")
# one per topology in the fast tier: residual + depthwise, route/concat, BN-free
FAST = {"mobilenetv2_050-yolo-p3", "tiny-yolov3", "yolo-lite"}


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_pruned(r, out):
    pt = out / "pruned.pt"
    ck = torch.load(pt, map_location="cpu", weights_only=True)  # plain tensors and JSON-able data
    assert ck["pruned"] and ck["prune"]["ratio"] > 0
    model, _ = load_checkpoint(pt)
    check_outputs(model(torch.rand(1, 3, 64, 64)), model.head_spec)
    assert count_macs(model, 64) == r["after"]["macs"] < r["before"]["macs"]
    assert [s["step"] for s in r["steps"]] == list(range(len(r["steps"])))
    assert r["after"]["map50"] is not None and (out / "prune_report.html").exists()
    return ck


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n in FAST else [pytest.mark.slow]) for n in DETECTORS])
def test_prune_finetune_reload(name, tiny_checkpoint, sample_yaml, tmp_path):
    src = tiny_checkpoint(name)
    digest = _digest(src)
    r = prune(prune_options(src, sample_yaml, tmp_path / "out"))
    ck = _check_pruned(r, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "step1" / "finetune" / "results.json").read_text())[0]["epoch"] == 1
    assert ck["model"] == name and _digest(src) == digest  # the input is never modified


@pytest.mark.slow
@pytest.mark.parametrize("importance", ["l1", "taylor", "bn-scale"])
def test_importances(importance, tiny_checkpoint, sample_yaml, tmp_path):
    r = prune(prune_options(tiny_checkpoint("tiny-yolov2"), sample_yaml, tmp_path, importance=importance))
    assert r["after"]["macs"] < r["before"]["macs"]


def test_macs_target_and_round_to(tiny_checkpoint, sample_yaml, tmp_path):
    src = tiny_checkpoint("mobilenetv2_050-yolo-p3")
    model, _ = load_checkpoint(src)
    budget = int(count_macs(model, 64) * 0.6)
    r = prune(prune_options(src, sample_yaml, tmp_path, ratio=None, target_macs=budget, steps=2, finetune_epochs=0,
                            round_to=16, importance="taylor"))
    assert r["after"]["macs"] <= budget and len(r["steps"]) == 3
    pruned, _ = load_checkpoint(tmp_path / "pruned.pt")
    registry = {n: m.out_channels for n, m in create_model("mobilenetv2_050-yolo-p3", num_classes=7).named_modules()
                if isinstance(m, torch.nn.Conv2d)}
    convs = {n: m for n, m in pruned.named_modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels != registry[n]}
    assert len(convs) > 10 and not any(n.startswith("head.") for n in convs)  # heads keep their outputs
    # every pruned width is a multiple of --round-to (16), except the two maps the P3 neck concatenates into
    # one depthwise conv (lat3 + upsampled out4): Torch-Pruning rounds that coupled group as a whole
    pair = ("neck.lat3.conv", "neck.out4.1.conv")
    assert {n for n, m in convs.items() if m.out_channels % 16} <= set(pair)
    assert sum(convs[n].out_channels for n in pair) % 16 == 0


def test_pruned_checkpoint_trains_validates_and_resumes(tiny_checkpoint, sample_yaml, tmp_path, capsys):
    r = prune(prune_options(tiny_checkpoint("mobilenetv2_050-yolo-p3"), sample_yaml, tmp_path / "p", finetune_epochs=0))
    pt = tmp_path / "p" / "pruned.pt"
    run = tmp_path / "train"
    assert main(["train", "--model", "mobilenetv2_050-yolo-p3", "--weights", str(pt), "--data", str(sample_yaml),
                 "--imgsz", "64", "--epochs", "1", "--batch", "8", "--workers", "0", "--out", str(run), "--json"]) == 0
    capsys.readouterr()
    best = run / "weights" / "best.pt"
    ck = torch.load(best, map_location="cpu", weights_only=True)
    assert ck["pruned"] == torch.load(pt, weights_only=True)["pruned"]  # still the pruned architecture
    assert count_macs(load_checkpoint(best)[0], 64) == r["after"]["macs"]
    assert main(["train", "--model", "mobilenetv2_050-yolo-p3", "--data", str(sample_yaml), "--epochs", "2",
                 "--out", str(run), "--resume", "--workers", "0", "--json"]) == 0
    capsys.readouterr()
    assert torch.load(run / "weights" / "last.pt", weights_only=True)["pruned"] == ck["pruned"]
    assert main(["val", "--weights", str(best), "--data", str(sample_yaml), "--json"]) == 0
    assert "map50" in json.loads(capsys.readouterr().out)


def test_interrupted_run_resumes_from_its_steps(tiny_checkpoint, sample_yaml, tmp_path):
    src = tiny_checkpoint("yolo-lite")
    first = prune(prune_options(src, sample_yaml, tmp_path, steps=2, finetune_epochs=0))
    (tmp_path / "step2" / "done.json").unlink()  # as if killed after step 1
    again = prune(prune_options(src, sample_yaml, tmp_path, steps=2, finetune_epochs=0))
    assert [s["macs"] for s in again["steps"]] == [s["macs"] for s in first["steps"]]


def test_pruned_model_exports_to_every_installed_target(tiny_checkpoint, sample_yaml, tmp_path):
    from tests.export.export_helpers import TINY_CALIB, export_all

    prune(prune_options(tiny_checkpoint("yolo-lite"), sample_yaml, tmp_path / "p", finetune_epochs=0))
    arts = export_all(tmp_path / "p" / "pruned.pt", tmp_path / "exp", calib=sample_yaml.parent / "train" / "images",
                      calib_images=TINY_CALIB)
    assert arts and all(p.exists() for p in arts.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", DETECTORS)
def test_every_pruned_detector_exports_everywhere(name, tiny_checkpoint, sample_yaml, tmp_path):
    from tests.export.export_helpers import TINY_CALIB, export_all

    prune(prune_options(tiny_checkpoint(name), sample_yaml, tmp_path / "p", finetune_epochs=0))
    export_all(tmp_path / "p" / "pruned.pt", tmp_path / "exp", calib=sample_yaml.parent / "train" / "images",
               calib_images=TINY_CALIB)


@pytest.mark.slow
def test_measured_report_has_the_results_schema(tiny_checkpoint, sample_yaml, tmp_path):
    r = prune(prune_options(tiny_checkpoint("yolo-lite"), sample_yaml, tmp_path, measure=True, bench_frames=10,
                            finetune_epochs=0))
    for key in ("before", "after"):
        assert {"params", "macs", "map50", "latency_ms"} <= set(r[key])
        assert set(r[key]["latency_ms"]) == {"onnx", "tflite-int8"} and all(r[key]["latency_ms"].values())
        # timed whatever their mAP (the gate opened), each with its default-gate verdict recorded
        gates = r[key]["artifacts_gate"]
        assert set(gates) == {"onnx", "tflite-int8"} and all(isinstance(g["passes_default_gate"], bool) for g in gates.values())
    assert all({"macs", "map50"} <= set(s) for s in r["steps"]) and len(r["map50_delta_ci95"]) == 2


@pytest.mark.slow
def test_target_latency_benches_the_onnx_export(tiny_checkpoint, sample_yaml, tmp_path):
    # a latency already met: the first estimate (MACs in proportion, at most 95 %) is pruned, benched, and the run stops
    r = prune(prune_options(tiny_checkpoint("yolo-lite"), sample_yaml, tmp_path, ratio=None, target_latency_ms=1e6,
                            finetune_epochs=0, bench_frames=5))
    assert r["mode"] == "target_latency" and len(r["steps"]) == 2
    assert r["steps"][-1]["latency_ms_onnx"] > 0 and r["after"]["macs"] <= 0.95 * r["before"]["macs"]
    assert (tmp_path / "latency" / "step0").is_dir() and (tmp_path / "latency" / "step1").is_dir()
