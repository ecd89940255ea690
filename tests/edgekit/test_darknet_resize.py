"""A Darknet cfg's own resize (stretch unless ``[net] letterbox=1``) is the model's, and training, k-means
anchors, validation and checkpoints all use it; edgekit's families stay letterboxed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from edgekit.data import load_dataset, sample_data_yaml
from edgekit.errors import EdgekitError
from edgekit.models import create_model
from edgekit.models.checkpoint import model_from_checkpoint, read_checkpoint
from edgekit.models.darknet import build_darknet
from edgekit.models.darknet_cfg import parse_cfg_text
from edgekit.runtime.postprocess import postprocess_detections
from edgekit.runtime.preprocess import preprocess, resize_params
from edgekit.train.detect import fit_anchors
from edgekit.train.loader import DetectionTrainSet

# two stride-2 convs and a yolo head: 64 px in, 16 x 16 grid
CFG = """[net]
width=64
height=64
channels=3
{net}
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky
[convolutional]
size=1
stride=1
pad=1
filters=18
activation=linear
[yolo]
mask = 0,1,2
anchors = 10,14,  23,27,  37,58
classes=1
num=3
"""


def cfg(net: str = "") -> str:
    return CFG.format(net=net)


@pytest.mark.parametrize("net, mode", [("", "stretch"), ("letterbox=0", "stretch"), ("letterbox=1", "letterbox")])
def test_the_cfg_decides_the_resize(net, mode):
    assert build_darknet(parse_cfg_text(cfg(net))).resize == mode
    # the registry's darknet family (what `edgekit train --model x.cfg` builds) keeps it, refitted or not
    assert create_model("darknet", num_classes=3, cfg=cfg(net), imgsz=96).resize == mode


def test_native_families_letterbox_and_a_bad_letterbox_value_is_one_line():
    assert create_model("yolo-lite", num_classes=2).resize == "letterbox"
    with pytest.raises(EdgekitError, match="letterbox=2: Darknet takes 0 .* or 1"):
        build_darknet(parse_cfg_text(cfg("letterbox=2")))


def test_training_set_and_anchors_stretch_like_darknet():
    from edgekit.runtime.model import read_image

    recs = load_dataset(sample_data_yaml()).split("train")[:3]
    rec = recs[0]
    assert rec.width != rec.height  # a non-square image: the two modes differ
    x, t = DetectionTrainSet([rec], 64, resize="stretch")[0]
    sx, sy = 64 / rec.width, 64 / rec.height
    keep = rec.valid_mask()
    np.testing.assert_allclose(t[:, 2:].numpy(), rec.boxes[keep] * np.array([sx, sy, sx, sy]), rtol=1e-5, atol=1e-3)
    ref, _ = preprocess(read_image(rec.path), 64, resize="stretch")
    np.testing.assert_allclose(x.numpy(), ref[0], atol=1e-6)  # the pixels inference will see
    xl, tl = DetectionTrainSet([rec], 64)[0]  # the default stays the letterbox
    assert not np.allclose(xl.numpy(), x.numpy(), atol=1e-3) and not np.allclose(tl.numpy(), t.numpy())
    # k-means runs on the boxes as the model sees them: a single box's size is its anchor
    one = [dataclasses.replace(rec, boxes=rec.boxes[keep][:1], classes=rec.classes[keep][:1])]
    (w, h), = fit_anchors(one, 64, 1, resize="stretch")
    bw, bh = rec.boxes[keep][0, 2:] - rec.boxes[keep][0, :2]
    assert (w, h) == pytest.approx((bw * sx, bh * sy), abs=0.01)
    (wl, hl), = fit_anchors(one, 64, 1)
    assert (wl, hl) == pytest.approx((bw * 64 / max(rec.width, rec.height), bh * 64 / max(rec.width, rec.height)),
                                     abs=0.01)


def test_validation_uses_the_models_resize():
    from edgekit.runtime.model import read_image
    from edgekit.validate import predict_records

    recs = load_dataset(sample_data_yaml()).split("val")[:2]
    torch.manual_seed(0)
    model = create_model("darknet", num_classes=7, cfg=cfg(), imgsz=64).eval()
    assert model.resize == "stretch"
    preds, _ = predict_records(model, recs, 64, conf=0.0, max_det=20)
    for rec, p in zip(recs, preds):
        img = read_image(rec.path)
        x, lb = preprocess(img, 64, resize="stretch")
        assert lb == resize_params(img.shape[:2], 64, "stretch")
        with torch.no_grad():
            outs = [o.numpy() for o in model(torch.from_numpy(x))]
        want = postprocess_detections(outs, model.head_spec, lb, 0.0, 0.6, 20)
        assert len(p["boxes"]) > 0
        np.testing.assert_allclose(p["boxes"], want["boxes"], atol=1e-4)
        # boxes may reach the far corner of the original image, not of a letterboxed square
        assert p["boxes"][:, 2].max() <= rec.width and p["boxes"][:, 3].max() <= rec.height


@pytest.mark.parametrize("net, mode", [("", "stretch"), ("letterbox=1", "letterbox")])
def test_a_trained_cfg_keeps_its_resize_through_the_checkpoint(tmp_path, net, mode):
    from edgekit.train import TrainOptions, train

    opts = TrainOptions("darknet", str(sample_data_yaml()), imgsz=64, epochs=1, batch=8, out=str(tmp_path / "run"),
                        threads=1, max_train_images=8, progress=False, anchors="default",
                        model_kwargs={"cfg": cfg(net), "cfg_name": "tiny.cfg"})
    summary = train(opts)
    for name in ("best.pt", "last.pt"):
        ck = read_checkpoint(tmp_path / "run" / "weights" / name)  # weights_only=True
        assert ck["resize"] == mode
        assert model_from_checkpoint(ck).resize == mode
    assert summary["epochs"] == 1


def test_checkpoints_without_the_key_were_letterboxed_and_a_bad_value_is_refused(tmp_path):
    from edgekit.models.checkpoint import checkpoint_problem, save_checkpoint

    m = create_model("darknet", num_classes=1, cfg=cfg(), imgsz=64)
    ck = {"model": "darknet", "model_kwargs": {"cfg": cfg(), "imgsz": 64}, "names": ["fish"], "imgsz": 64,
          "state_dict": m.state_dict(), "head_spec": m.head_spec, "anchors": None}
    save_checkpoint(tmp_path / "old.pt", ck)
    # written before the key existed, when edgekit letterboxed every model it trained
    assert model_from_checkpoint(read_checkpoint(tmp_path / "old.pt")).resize == "letterbox"
    assert checkpoint_problem({**ck, "resize": "crop"}) == "'resize' is 'crop', not 'letterbox' or 'stretch'"
