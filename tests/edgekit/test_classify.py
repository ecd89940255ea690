"""Classifiers: box crops, the image-folder reader, mobilenetv2-cls, training, `edgekit val`, reject option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.cli.main import main
from edgekit.data import load_dataset
from edgekit.data.crops import crop_box, make_crops, read_crops_report
from edgekit.data.folders import load_image_folder
from edgekit.errors import EdgekitError
from edgekit.models import create_model, list_models, model_task
from edgekit.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from edgekit.train.classify import ClassifyTrainSet

IMG = 32  # tiny: the machine is shared


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on 2 cores shared with another job, torch's second OpenMP thread
    waits for a busy core at every op barrier (measured here: 7 s instead of 0.02 s a step)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def expected_crops(ds, split: str, min_size: float) -> dict[str, int]:
    """Valid boxes per class name, counted independently of make_crops."""
    counts = dict.fromkeys(ds.names, 0)
    for r in ds.split(split):
        for box, c, ok in zip(r.boxes, r.classes, r.valid_mask()):
            w = min(box[2], r.width) - max(box[0], 0)
            h = min(box[3], r.height) - max(box[1], 0)
            if ok and 0 <= c < len(ds.names) and w >= min_size and h >= min_size:
                counts[ds.names[c]] += 1
    return counts


def files_per_class(root: Path, split: str) -> dict[str, int]:
    return {d.name: len(list(d.glob("*.jpg"))) for d in (root / split).iterdir()}


@pytest.fixture(scope="module")
def sample_crops(sample_yaml, tmp_path_factory) -> Path:
    return make_crops(sample_yaml, tmp_path_factory.mktemp("crops") / "fish")


@pytest.fixture(scope="module")
def trained_run(sample_crops, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cls") / "run"
    rc = main(["train", "--task", "classify", "--model", "mobilenetv2-cls", "--width", "0.35", "--data", str(sample_crops),
               "--imgsz", str(IMG), "--epochs", "2", "--batch", "64", "--workers", "0", "--out", str(out), "--json"])
    assert rc == 0
    return out


def test_crops_of_the_sample_are_the_valid_boxes_per_class(sample_yaml, sample_crops):
    ds = load_dataset(sample_yaml)
    report = read_crops_report(sample_crops)
    assert (sample_crops / "classes.txt").read_text().split() == ds.names
    assert sorted(report["splits"]) == sorted(ds.splits)
    for split in ds.splits:
        want = expected_crops(ds, split, 4)
        assert files_per_class(sample_crops, split) == want
        assert report["splits"][split]["per_class"] == want
        boxes = sum(len(r.classes) for r in ds.split(split))
        assert report["splits"][split]["crops"] + sum(report["splits"][split]["skipped"].values()) == boxes
    # a crop is the padded box of its source image: <stem>_<k>.jpg is box k
    import cv2

    rec = next(r for r in ds.split("val") if len(r.classes) and crop_box(r.boxes[0], r.width, r.height, 0.1, 4))
    x1, y1, x2, y2 = crop_box(rec.boxes[0], rec.width, rec.height, 0.1, 4)
    crop = cv2.imread(str(sample_crops / "val" / ds.names[rec.classes[0]] / f"{rec.path.stem}_0.jpg"))
    assert crop.shape[:2] == (y2 - y1, x2 - x1)
    src = cv2.imread(str(rec.path))[y1:y2, x1:x2].astype(np.float32)
    assert np.abs(crop.astype(np.float32) - src).mean() < 4  # JPEG re-encoding only


def test_crop_box_pads_clips_and_skips_small():
    assert crop_box(np.array([10., 10., 30., 20.]), 100, 100, 0.1, 4) == (8, 9, 32, 21)
    assert crop_box(np.array([-5., 90., 20., 130.]), 100, 100, 0.5, 4) == (0, 85, 30, 100)
    assert crop_box(np.array([10., 10., 13., 40.]), 100, 100, 0.1, 4) is None  # 3 px wide
    assert crop_box(np.array([10., 10., 10., 40.]), 100, 100, 0.1, 0) is None  # degenerate


def test_crops_cli_refuses_existing_out_and_bad_options(sample_yaml, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["data", "crops", str(sample_yaml), "--out", str(out), "--splits", "test", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert list(r["splits"]) == ["test"] and r["splits"]["test"]["crops"] == sum(files_per_class(out, "test").values())
    assert main(["data", "crops", str(sample_yaml), "--out", str(out), "--splits", "test"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["data", "crops", str(sample_yaml), "--out", str(out), "--splits", "test", "--overwrite",
                 "--min-size", "1000"]) == 0
    assert sum(files_per_class(out, "test").values()) == 0 and "too_small" in capsys.readouterr().out
    with pytest.raises(EdgekitError, match="no 'nope' split"):
        make_crops(sample_yaml, tmp_path / "d", splits=["nope"])
    with pytest.raises(EdgekitError, match="--pad"):
        make_crops(sample_yaml, tmp_path / "d", pad=-1)
    assert not (tmp_path / "d").exists()  # nothing half-written


@pytest.mark.shared
def test_crops_of_bccd_voc(bccd_yaml, tmp_path):
    ds = load_dataset(bccd_yaml)
    out = make_crops(bccd_yaml, tmp_path / "bccd", splits=["train", "val"], min_size=4)
    for split in ("train", "val"):
        assert files_per_class(out, split) == expected_crops(ds, split, 4)
    assert sorted(files_per_class(out, "val")) == sorted(["RBC", "WBC", "Platelets"])
    assert load_image_folder(out).names == ["RBC", "WBC", "Platelets"]  # classes.txt order, not sorted


def test_image_folder_reader(tmp_path):
    import cv2

    img = np.zeros((8, 8, 3), np.uint8)

    def put(path: str):
        p = tmp_path / "ds" / path
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), img)

    with pytest.raises(EdgekitError, match="does not exist.*edgekit data crops"):
        load_image_folder(tmp_path / "ds")
    (tmp_path / "ds").mkdir()
    with pytest.raises(EdgekitError, match="no train/ folder"):
        load_image_folder(tmp_path / "ds")
    (tmp_path / "ds" / "train").mkdir()
    with pytest.raises(EdgekitError, match="no class sub-folders"):
        load_image_folder(tmp_path / "ds")
    (tmp_path / "ds" / "train" / "b").mkdir()
    with pytest.raises(EdgekitError, match="holds no images"):
        load_image_folder(tmp_path / "ds")
    put("train/b/1.jpg")
    put("train/a/1.png")
    put("train/a/2.jpg")
    (tmp_path / "ds" / "train" / "a" / "notes.txt").write_text("not an image")
    put("valid/a/3.jpg")
    ds = load_image_folder(tmp_path / "ds")
    assert ds.names == ["a", "b"] and sorted(ds.splits) == ["train", "val"]
    assert [c for _, c in ds.split("train")] == [0, 0, 1] and ds.counts()["val"]["per_class"] == {"a": 1, "b": 0}
    with pytest.raises(EdgekitError, match="no 'test' split"):
        ds.split("test")
    (tmp_path / "ds" / "classes.txt").write_text("b\na\n")
    assert load_image_folder(tmp_path / "ds").names == ["b", "a"]
    (tmp_path / "ds" / "classes.txt").write_text("b\na\nc\n")
    with pytest.raises(EdgekitError, match="names c but"):
        load_image_folder(tmp_path / "ds")
    (tmp_path / "ds" / "classes.txt").unlink()
    put("valid/zebra/1.jpg")
    with pytest.raises(EdgekitError, match="zebra is not one of the classes"):
        load_image_folder(tmp_path / "ds")
    with pytest.raises(EdgekitError, match="is a file.*edgekit data crops"):
        load_image_folder(tmp_path / "ds" / "train" / "a" / "2.jpg")


def test_classifier_model_and_registry():
    from edgekit.cli.models_cmd import model_table
    from edgekit.models.complexity import count_params

    assert "mobilenetv2-cls" in list_models() and list_models(task="classify") == ["mobilenetv2-cls"]
    assert model_task("mobilenetv2-cls") == "classify" and model_task("yolo-lite") == "detect"
    m = create_model("mobilenetv2-cls", num_classes=7, width=0.5).eval()
    assert m.task == "classify" and json.loads(json.dumps(m.head_spec)) == m.head_spec
    assert m.head_spec == {"type": "classify", "num_classes": 7, "imgsz": [64, 64], "output": "logits"}
    with torch.no_grad():
        assert m(torch.zeros(2, 3, 64, 64)).shape == (2, 7) and m(torch.zeros(1, 3, IMG, IMG)).shape == (1, 7)
    sizes = [count_params(create_model("mobilenetv2-cls", num_classes=7, width=w)) for w in (0.35, 0.5, 0.75, 1.0)]
    assert sizes == sorted(sizes)
    # the 1000-class width-1.0 net at 224 is the paper's: 3.4 M parameters
    assert abs(count_params(create_model("mobilenetv2-cls", num_classes=1000)) / 3.5e6 - 1) < 0.03
    with pytest.raises(EdgekitError, match="width must be between 0.35 and 1.0"):
        create_model("mobilenetv2-cls", width=1.4)
    with pytest.raises(EdgekitError, match="takes no anchors"):
        create_model("mobilenetv2-cls", anchors=[[10, 10]])
    row = model_table("mobilenetv2-cls", 7)[0]
    assert row["task"] == row["head"] == "classify" and row["strides"] == [] and row["gflops"] > 0


def test_train_cli_writes_a_classifier_run_and_val_reports_top1_top5(trained_run, sample_crops, capsys):
    rows = json.loads((trained_run / "results.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2] and {"loss", "top1", "top5"} <= set(rows[0])
    ck = read_checkpoint(trained_run / "weights" / "best.pt")
    assert ck["task"] == "classify" and ck["model"] == "mobilenetv2-cls" and ck["imgsz"] == IMG
    assert ck["names"] == ["0", "1", "2", "5", "6", "7", "8"] and ck["head_spec"]["type"] == "classify"
    assert ck["model_kwargs"] == {"width": 0.35, "imgsz": IMG} and len(ck["data"]["train_hash"]) == 16
    assert {"epoch", "metrics", "edgekit_version", "state_dict"} <= set(ck) and "optimizer" not in ck
    assert "optimizer" in read_checkpoint(trained_run / "weights" / "last.pt")
    capsys.readouterr()
    assert main(["val", "--weights", str(trained_run / "weights" / "best.pt"), "--data", str(sample_crops),
                 "--split", "test", "--unsure", "0.5", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    n_test = sum(files_per_class(sample_crops, "test").values())
    assert r["task"] == "classify" and r["images"] == n_test and r["split"] == "test"
    assert 0 <= r["top1"] <= r["top5"] <= 1 and set(r["per_class"]) == set(ck["names"])
    assert np.array(r["confusion"]).shape == (7, 7) and np.array(r["confusion"]).sum() == n_test
    assert np.trace(np.array(r["confusion"])) == round(r["top1"] * n_test)
    assert 0 <= r["unsure"]["rejected"] <= 1 and r["ms_per_image"] > 0
    # a detection dataset is not an image folder: one clear line
    assert main(["val", "--weights", str(trained_run / "weights" / "best.pt"), "--data", str(sample_crops / "crops.json")]) == 1
    assert "edgekit data crops" in capsys.readouterr().err


def test_resume_and_task_mismatch(trained_run, sample_crops, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["train", "--task", "classify", "--model", "mobilenetv2-cls", "--data", str(sample_crops),
                 "--epochs", "3", "--out", str(run), "--resume", "--workers", "0", "--json"]) == 0
    assert [r["epoch"] for r in json.loads((run / "results.json").read_text())] == [1, 2, 3]
    assert read_checkpoint(run / "weights" / "last.pt")["imgsz"] == IMG  # the run's settings, restored
    assert main(["train", "--task", "classify", "--model", "mobilenetv2-cls", "--data", str(sample_crops),
                 "--out", str(run)]) == 1
    assert "already holds a training run" in capsys.readouterr().err
    assert main(["train", "--model", "mobilenetv2-cls", "--data", str(sample_crops)]) == 1
    assert "pass --task classify" in capsys.readouterr().err
    assert main(["train", "--task", "classify", "--model", "mobilenetv2-cls", "--data", str(sample_crops),
                 "--weights", str(run / "weights" / "best.pt"), "--out", str(tmp_path / "w")]) == 1
    assert "--weights initialises detectors only" in capsys.readouterr().err


def test_loss_decreases_on_a_tiny_batch(sample_crops):
    torch.manual_seed(0)
    items = load_image_folder(sample_crops).split("train")
    items = [next(it for it in items if it[1] == c) for c in range(7)] + items[:1]
    ds = ClassifyTrainSet(items, IMG)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    model = create_model("mobilenetv2-cls", num_classes=7, width=0.35, imgsz=IMG, dropout=0.0).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_checkpoint_reload_gives_identical_logits(trained_run, tmp_path):
    model, ck = load_checkpoint(trained_run / "weights" / "best.pt")
    # a model with non-trivial BN statistics, saved with the trainer's metadata and read back
    torch.manual_seed(3)
    fresh = create_model("mobilenetv2-cls", num_classes=7, width=0.35, imgsz=IMG).train()
    with torch.no_grad():
        fresh(torch.rand(8, 3, IMG, IMG))
    fresh.eval()
    save_checkpoint(tmp_path / "x.pt", {**{k: v for k, v in ck.items() if k != "state_dict"},
                                        "state_dict": fresh.state_dict()})
    again, _ = load_checkpoint(tmp_path / "x.pt")
    x = torch.rand(4, 3, IMG, IMG)
    with torch.no_grad():
        assert torch.equal(fresh(x), again(x))
        assert torch.equal(model(x), load_checkpoint(trained_run / "weights" / "best.pt")[0](x))


def test_runtime_classification_postprocess_and_metrics():
    from edgekit.runtime.classify import postprocess_classification, topk
    from edgekit.validate_classify import classification_metrics

    ids, probs = topk(np.array([[0.0, 2.0, 1.0]]), k=5)  # k capped at C
    assert ids.tolist() == [[1, 2, 0]] and np.isclose(probs.sum(), 1)
    r = postprocess_classification(np.array([5.0, 0.0, 0.0]), k=1, unsure=0.5, names=["a", "b", "c"])
    assert r["label"] == 0 and r["name"] == "a"
    assert postprocess_classification(np.zeros(3), unsure=0.5, names=["a", "b", "c"])["name"] == "unsure"
    ids = np.array([[0, 1], [1, 0], [1, 0], [0, 1]])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.55, 0.45], [0.6, 0.4]])
    m = classification_metrics(ids, probs, np.array([0, 1, 0, 1]), ["a", "b"], unsure=0.7)
    assert m["top1"] == 0.5 and m["top5"] == 1.0 and m["confusion"] == [[1, 1], [1, 1]]
    assert m["per_class"] == {"a": 0.5, "b": 0.5}
    assert m["unsure"] == {"threshold": 0.7, "rejected": 0.5, "top1_kept": 1.0}
