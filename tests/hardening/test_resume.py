"""``edgekit train --resume``: options that contradict the checkpoint are refused (one line naming them),
changed data is refused by its content hash, and an interrupted run continues exactly like an
uninterrupted one (the random state is in ``last.pt``)."""

from __future__ import annotations

import pytest
import torch

from edgekit.cli.main import main
from edgekit.errors import EdgekitError
from edgekit.train import TrainOptions
from edgekit.train.detect import DetectionTask
from edgekit.train.engine import run

TINY = dict(imgsz=64, batch=8, max_train_images=16, progress=False, workers=0, anchors="default")


class StopAfter(DetectionTask):
    """A real interruption between epochs: Ctrl-C right after epoch ``k``'s checkpoint was written."""

    stop_after = 1

    def epoch_line(self, row):
        if row["epoch"] == self.stop_after:
            raise KeyboardInterrupt
        return super().epoch_line(row)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_interrupted_run_resumes_like_the_uninterrupted_one(tmp_path, sample_yaml):
    straight = run(DetectionTask(TrainOptions("yolo-lite", str(sample_yaml), epochs=2, out=str(tmp_path / "a"), **TINY)))
    opts = TrainOptions("yolo-lite", str(sample_yaml), epochs=2, out=str(tmp_path / "b"), **{**TINY, "progress": True})
    with pytest.raises(KeyboardInterrupt):
        run(StopAfter(opts))
    assert torch.load(tmp_path / "b/weights/last.pt", weights_only=True)["epoch"] == 0
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed = run(DetectionTask(TrainOptions("yolo-lite", str(sample_yaml), epochs=2, out=str(tmp_path / "b"),
                                             resume=True, **TINY)))
    assert resumed["epochs"] == straight["epochs"] == 2
    a, b = _weights(straight["last"]), _weights(resumed["last"])
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed run drifted from the uninterrupted one"


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory, sample_yaml):
    out = tmp_path_factory.mktemp("resume") / "run"
    run(DetectionTask(TrainOptions("yolo-lite", str(sample_yaml), epochs=1, out=str(out), **TINY)))
    return out


@pytest.mark.parametrize("flag,value,named", [
    ("--model", "tiny-yolov2", "--model tiny-yolov2 (the run has yolo-lite)"),
    ("--imgsz", "128", "--imgsz 128 (the run has 64)"),
    ("--lr", "0.01", "--lr 0.01 (the run has 0.002)"),
    ("--seed", "3", "--seed 3 (the run has 0)"),
])
def test_resume_refuses_contradicting_options(one_epoch_run, sample_yaml, capsys, flag, value, named):
    before = (one_epoch_run / "weights/last.pt").read_bytes()
    argv = ["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--out", str(one_epoch_run), "--resume",
            "--epochs", "2", "--imgsz", "64", "--batch", "8", "--json"]
    argv += [flag, value]
    if flag in ("--model", "--imgsz"):  # replace the value given above
        i = argv.index(flag)
        argv[i + 1] = value
        del argv[-2:]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and "contradict" in err[0] and "Traceback" not in err[0], err
    assert (one_epoch_run / "weights/last.pt").read_bytes() == before


def test_resume_refuses_other_data(one_epoch_run, sample_copy, capsys):
    # the same classes, one label changed: only the content hash can tell
    lbl = sorted((sample_copy.parent / "train" / "labels").glob("*.txt"))[0]
    lbl.write_text(lbl.read_text().replace("0.", "0.0", 1) + "0 0.5 0.5 0.2 0.2\n")
    argv = ["train", "--model", "yolo-lite", "--data", str(sample_copy), "--out", str(one_epoch_run), "--resume",
            "--epochs", "2", "--imgsz", "64", "--batch", "8"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not the data the run was trained on" in err[0], err


def test_resume_takes_the_checkpoint_options_left_at_default(one_epoch_run):
    from edgekit.train.runs import resume_conflicts

    saved = torch.load(one_epoch_run / "weights/last.pt", weights_only=True)["train_options"]
    # --imgsz/--batch left at the command's defaults, machine options changed: no conflict
    assert resume_conflicts(TrainOptions("yolo-lite", saved["data"], workers=2, device="cpu", threads=1), saved) == []
    # the Python API's options are compared the same way
    with pytest.raises(EdgekitError, match="max-train-images 8 \\(the run has 16\\)"):
        from edgekit.train.runs import check_resume

        check_resume(TrainOptions("yolo-lite", saved["data"], **{**TINY, "max_train_images": 8}), saved, one_epoch_run)
