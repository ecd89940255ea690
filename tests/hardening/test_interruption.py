"""SIGINT, SIGTERM and SIGKILL during export, training, convert and bench (issue 21, class 8).

Each run is a real ``edgekit`` process (tests/hardening/interrupt_child.py) that receives a real
signal at a deterministic point inside the work. Afterwards nothing sits under a final name unless
it is complete and valid; SIGINT/SIGTERM leave no temporary file or staging folder; what a SIGKILL
leaves (it runs no cleanup) is removed by the next run of the command, which then succeeds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import restore_sigint
from tests.hardening.corpus_inputs import NAMES, leftovers, tree_hash, yolo_dataset

CHILD = Path(__file__).with_name("interrupt_child.py")
ROOT = Path(__file__).resolve().parents[2]
SIGNALS = ["SIGINT", "SIGTERM", "SIGKILL"]
# one signal of each slow command stays in `make test`; the rest are marked slow (each run is 10-25 s)
SLOW_BUT = [pytest.param(s, marks=() if s == "SIGTERM" else pytest.mark.slow) for s in SIGNALS]
EXPECT = {"SIGINT": (130, "edgekit: interrupted"), "SIGTERM": (143, "edgekit: terminated"), "SIGKILL": (-9, None)}


def _run(sig: str, hook: str, argv: list[str], cwd: Path, timeout: int = 300):
    res = subprocess.run([sys.executable, str(CHILD), sig, hook, "--", *argv], capture_output=True, text=True,
                         timeout=timeout, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                        "PYTHONPATH": str(ROOT)}, preexec_fn=restore_sigint)
    rc, last = EXPECT[sig]
    assert res.returncode == rc, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    if last:
        assert res.stderr.strip().splitlines()[-1] == last, res.stderr[-2000:]
    return res


def _again(argv: list[str], cwd: Path, timeout: int = 300):
    res = subprocess.run([sys.executable, "-m", "edgekit", *argv], capture_output=True, text=True, timeout=timeout,
                         cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _hidden(folder: Path) -> list[str]:
    return leftovers(folder) + (leftovers(folder / "weights") if (folder / "weights").is_dir() else [])


@pytest.mark.parametrize("sig", SIGNALS)
def test_convert(tmp_path, sig):
    data = yolo_dataset(tmp_path / "ds", n_train=6, n_val=3)
    before = tree_hash(data.parent)
    out = tmp_path / "coco"
    argv = ["data", "convert", str(data), "--to", "coco", "--out", str(out)]
    _run(sig, "edgekit.data.writing:place_image:4", argv, tmp_path)
    assert not out.exists()  # the folder appears only complete
    assert tree_hash(data.parent) == before
    if sig != "SIGKILL":
        assert leftovers(tmp_path) == []
    else:
        assert leftovers(tmp_path), "a SIGKILL cannot clean up: its temporary folder is what the next run must remove"
    _again(argv, tmp_path)
    assert leftovers(tmp_path) == [] and (out / "data.yaml").is_file()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.export.export_helpers import make_checkpoint

    root = tmp_path_factory.mktemp("interrupt")
    data = yolo_dataset(root / "ds", n_train=8, n_val=2)
    return make_checkpoint(root / "yl.pt", "yolo-lite", 64, names=NAMES), data


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_export(tmp_path, tiny, sig):
    from edgekit.runtime import load

    ckpt, data = tiny
    out = tmp_path / "export"
    argv = ["export", str(ckpt), "--target", "onnx", "--target", "onnx-int8", "--calib",
            str(data.parent / "train" / "images"), "--out", str(out)]
    # the signal comes as the second target starts: the first is complete, the second must not appear
    _run(sig, "edgekit.export.exporter:_one_target:2", argv, tmp_path)
    finals = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert finals == ["yolo-lite-onnx.onnx", "yolo-lite-onnx.onnx.json"], finals
    assert load(out / "yolo-lite-onnx.onnx").task == "detect"  # complete and valid
    stale = [p.name for p in out.iterdir() if p.name.startswith(".staging-")]
    assert (stale != []) == (sig == "SIGKILL"), stale
    _again(argv, tmp_path, timeout=600)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    assert (out / "yolo-lite-onnx-int8.onnx").is_file() and (out / "export_report.json").is_file()


@pytest.mark.parametrize("sig", SLOW_BUT)
def test_train(tmp_path, tiny, sig):
    from edgekit.models.checkpoint import read_checkpoint

    _, data = tiny
    run = tmp_path / "run"
    argv = ["train", "--model", "yolo-lite", "--data", str(data), "--imgsz", "64", "--epochs", "2", "--batch", "4",
            "--workers", "0", "--anchors", "default", "--out", str(run)]
    # 2 steps an epoch: the 3rd step is inside epoch 2, after epoch 1's checkpoint was written
    _run(sig, "edgekit.train.engine:optimizer_step:3", argv, tmp_path)
    last = read_checkpoint(run / "weights" / "last.pt", resume=True)  # complete and valid
    assert last["epoch"] == 0 and read_checkpoint(run / "weights" / "best.pt")["epoch"] == 0
    assert _hidden(run) == []
    _again(argv + ["--resume"], tmp_path)
    assert read_checkpoint(run / "weights" / "last.pt")["epoch"] == 1 and _hidden(run) == []


@pytest.mark.parametrize("sig", SLOW_BUT)
def test_train_killed_while_saving(tmp_path, tiny, sig):
    """The signal arrives inside the checkpoint write itself: the old last.pt (or none) stays, never half of one."""
    from edgekit.models.checkpoint import read_checkpoint

    _, data = tiny
    run = tmp_path / "run"
    argv = ["train", "--model", "yolo-lite", "--data", str(data), "--imgsz", "64", "--epochs", "2", "--batch", "4",
            "--workers", "0", "--anchors", "default", "--out", str(run)]
    # every atomic write fsyncs its temporary file once, before the rename: epoch 1 writes results.json,
    # results.csv, best.pt, last.pt; epoch 2 (no better fitness from random weights) results.json, .csv, last.pt:
    # the 7th fsync is epoch 2's last.pt, written to its temporary file but not yet renamed
    _run(sig, "os:fsync:7", argv, tmp_path)
    assert read_checkpoint(run / "weights" / "last.pt", resume=True)["epoch"] == 0
    if sig != "SIGKILL":
        assert _hidden(run) == []
    _again(argv + ["--resume"], tmp_path)
    assert read_checkpoint(run / "weights" / "last.pt")["epoch"] == 1 and _hidden(run) == []


@pytest.fixture(scope="module")
def tiny_onnx(tiny, tmp_path_factory):
    from edgekit.export import export

    out = tmp_path_factory.mktemp("interrupt-onnx")
    rep = export(tiny[0], ["onnx"], out=out)
    assert rep.ok
    return out / rep.results[0].file


@pytest.mark.parametrize("sig", SIGNALS)
def test_bench(tmp_path, tiny_onnx, sig):
    report = tmp_path / "report"
    argv = ["bench", str(tiny_onnx), "--frames", "1000000", "--warmup", "0", "--report", str(report)]
    _run(sig, "timer:3", argv, tmp_path)
    assert not report.exists() or [p for p in report.iterdir()] == []  # a report is written whole, at the end
    _again(["bench", str(tiny_onnx), "--frames", "5", "--warmup", "0", "--report", str(report)], tmp_path)
    assert sorted(p.name for p in report.iterdir()) == ["bench.html", "bench.json", "bench.md"]
