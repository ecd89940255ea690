"""Model registry, seed detectors, anchors and complexity counts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgekit.errors import EdgekitError
from edgekit.models import (anchor_fitness, count_macs, count_params, create_model, kmeans_anchors,
                            list_models, split_anchors)
from edgekit.models.complexity import count_flops
from edgekit.runtime.decode import decode_dense, decode_yolo_outputs

# the seed detectors DESIGN.md names: the registry must hold them (every test below runs over the registry)
DESIGN_SEEDS = ["tiny-yolov2", "tiny-yolov3", "yolo-lite", "mobilenetv2-yolo"]
IMG = 64  # tiny: the machine is shared


def test_seed_families_registered():
    names = list_models()
    for n in DESIGN_SEEDS + ["mobilenetv2_035-yolo", "mobilenetv2_050-yolo", "mobilenetv2_075-yolo"]:
        assert n in names
    assert list_models("tiny-*") == ["tiny-yolov2", "tiny-yolov3"]


@pytest.mark.parametrize("name", list_models(task="detect"))  # classifiers: tests/edgekit/test_classify.py
def test_every_model_builds_runs_and_decodes(name):
    nc = 3
    model = create_model(name, num_classes=nc).eval()
    spec = model.head_spec
    assert json.loads(json.dumps(spec)) == spec  # goes into manifests as is
    assert spec["type"] in ("region", "yolo") and spec["num_classes"] == nc
    assert len(spec["anchors"]) == len(spec["strides"]) == len(spec["scale_x_y"])
    assert spec["anchor_units"] == ("grid" if spec["type"] == "region" else "pixels")
    if name != "darknet":  # the backbone advertises what it returns (a Darknet cfg is one flat list of layers)
        feats = model.backbone(torch.zeros(1, 3, IMG, IMG))
        assert [f.shape[1] for f in feats] == model.backbone.out_channels
        assert [IMG // f.shape[-1] for f in feats] == model.backbone.strides
    with torch.no_grad():
        outs = model(torch.zeros(1, 3, IMG, IMG))
    assert isinstance(outs, list) and len(outs) == len(spec["strides"])
    for out, anchors, s in zip(outs, spec["anchors"], spec["strides"]):
        assert tuple(out.shape) == (1, len(anchors) * (5 + nc), IMG // s, IMG // s)
    rows = decode_dense([o.numpy() for o in outs], spec)
    n_rows = sum(len(a) * (IMG // s) ** 2 for a, s in zip(spec["anchors"], spec["strides"]))
    assert rows.shape == (1, n_rows, 5 + nc) and np.isfinite(rows).all()
    boxes, scores, ids = decode_yolo_outputs([o.numpy() for o in outs], spec, conf=0.0)
    assert len(boxes) == len(scores) == len(ids) > 0 and ids.max() < nc


@pytest.mark.parametrize("name", list_models())
def test_models_train_backward(name):
    model = create_model(name, num_classes=2).train()
    outs = model(torch.randn(2, 3, IMG, IMG))
    outs = [outs] if isinstance(outs, torch.Tensor) else outs  # a classifier returns one tensor of logits
    sum(o.float().pow(2).mean() for o in outs).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_yolo_lite_is_the_paper_net():
    m = create_model("yolo-lite", num_classes=20)
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128, 128, 256, 125]
    assert sum(c.out_channels for c in convs) == 749  # "749 filters in all"
    assert [c.kernel_size[0] for c in convs] == [3] * 6 + [1]
    assert all(c.bias is not None for c in convs)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    assert sum(isinstance(x, torch.nn.LeakyReLU) for x in m.modules()) == 6
    macs = count_macs(m, 224)
    assert abs(macs / 240e6 - 1) < 0.02, macs  # ANCHORS.md: 240 M MACs (482 M FLOPs in the paper)
    assert abs(count_params(m) / 0.57e6 - 1) < 0.02
    assert m.head_spec["imgsz"] == [224, 224] and m.head_spec["type"] == "region"
    assert [len(a) for a in m.head_spec["anchors"]] == [5]


def test_tiny_yolo_match_published_sizes():
    v2 = create_model("tiny-yolov2", num_classes=20)
    assert abs(count_params(v2) / 15.86e6 - 1) < 0.005
    assert abs(count_flops(v2, 416) / 6.97e9 - 1) < 0.01
    v2c = create_model("tiny-yolov2", num_classes=80, neck_channels=512)  # yolov2-tiny.cfg (COCO)
    assert abs(count_params(v2c) / 11.23e6 - 1) < 0.005
    v3 = create_model("tiny-yolov3", num_classes=80)
    assert abs(count_params(v3) / 8.86e6 - 1) < 0.005
    assert abs(count_flops(v3, 416) / 5.56e9 - 1) < 0.01
    with torch.no_grad():
        assert [o.shape[-1] for o in v3.eval()(torch.zeros(1, 3, 416, 416))] == [13, 26]


def test_mobilenetv2_widths():
    base = create_model("mobilenetv2-yolo", num_classes=20)
    assert base.head_spec["imgsz"] == [320, 320] and base.head_spec["strides"] == [16, 32]
    assert abs(count_flops(base, 320) / 1.2e9 - 1) < 0.05  # TOOLCHAIN.md's MB probe: 1.9 M, 1.2 GFLOPs
    sizes = []
    for w, name in [(0.35, "mobilenetv2_035-yolo"), (0.5, "mobilenetv2_050-yolo"), (0.75, "mobilenetv2_075-yolo")]:
        named, kw = create_model(name, num_classes=20), create_model("mobilenetv2-yolo", num_classes=20, width=w)
        assert count_params(named) == count_params(kw)
        sizes.append(count_params(named))
    assert sizes == sorted(sizes) and sizes[-1] < count_params(base)
    dw = [c for c in base.modules() if isinstance(c, torch.nn.Conv2d) and c.groups > 1]
    assert dw and all(c.groups == c.in_channels == c.out_channels for c in dw)
    assert any(isinstance(x, torch.nn.ReLU6) for x in base.modules())


def test_registry_errors_are_clear():
    with pytest.raises(EdgekitError, match="unknown model 'yolo-huge'.*tiny-yolov2"):
        create_model("yolo-huge")
    with pytest.raises(EdgekitError, match="no option colour"):
        create_model("yolo-lite", colour="red")
    with pytest.raises(EdgekitError, match="num_classes"):
        create_model("yolo-lite", num_classes=0)
    with pytest.raises(EdgekitError, match="anchor"):
        create_model("tiny-yolov3", anchors=[[10, 10]] * 5)  # 5 do not split over 2 outputs


def test_anchors_from_kmeans_reach_head_spec():
    rng = np.random.default_rng(1)
    wh = np.concatenate([rng.normal(c, c * 0.05, (200, 2)) for c in (12, 30, 60, 110, 180, 280)])
    anchors = kmeans_anchors(wh, 6)
    m = create_model("tiny-yolov3", num_classes=2, anchors=anchors)
    spec = m.head_spec
    # smallest three go to stride 16 (output 1), largest to stride 32 (output 0)
    np.testing.assert_allclose(spec["anchors"][1], anchors[:3], rtol=1e-5)
    np.testing.assert_allclose(spec["anchors"][0], anchors[3:], rtol=1e-5)
    r = create_model("yolo-lite", num_classes=2, anchors=anchors[:5])
    np.testing.assert_allclose(r.head_spec["anchors"][0], anchors[:5] / 32, rtol=1e-5)  # region: grid cells
    three = create_model("yolo-lite", num_classes=2, anchors=anchors[:3])  # anchor count follows the user
    assert three(torch.zeros(1, 3, IMG, IMG))[0].shape[1] == 3 * 7


def test_kmeans_anchors():
    rng = np.random.default_rng(0)
    centres = np.array([[10, 20], [40, 30], [90, 160]], float)
    wh = np.concatenate([c * rng.uniform(0.9, 1.1, (100, 2)) for c in centres] + [np.zeros((5, 2))])
    a = kmeans_anchors(wh, 3, seed=0)
    assert a.shape == (3, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, centres, rtol=0.06)
    assert (np.diff(a.prod(1)) > 0).all()  # sorted by area
    np.testing.assert_array_equal(a, kmeans_anchors(wh, 3, seed=0))
    assert anchor_fitness(wh, a) > 0.85 > anchor_fitness(wh, a[:1])
    with pytest.raises(EdgekitError, match="3 non-empty boxes for 5 anchors"):
        kmeans_anchors(np.ones((3, 2)), 5)


def test_split_anchors_by_stride():
    a = [[344, 319], [10, 14], [81, 82], [23, 27], [135, 169], [37, 58]]
    g = split_anchors(a, [16, 32])
    assert g[0] == [[10, 14], [23, 27], [37, 58]] and g[1][-1] == [344, 319]
    with pytest.raises(EdgekitError):
        split_anchors(a[:5], [16, 32])


def test_complexity_uses_flop_counter():
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise: 9 MACs per output value
    assert count_macs(conv, 10, in_channels=8) == 8 * 10 * 10 * 9
    assert count_params(conv) == 8 * 9 + 8


def test_models_cli_json(capsys):
    import argparse

    from edgekit.cli import models_cmd
    parser = argparse.ArgumentParser()
    models_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["models", "yolo-lite", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    row = out["models"][0]
    assert row["name"] == "yolo-lite" and row["imgsz"] == [224, 224]
    assert abs(row["gflops"] - 0.48) < 0.01 and abs(row["params_m"] - 0.572) < 0.001
    args = parser.parse_args(["models", "nothing-*"])
    with pytest.raises(EdgekitError, match="no registered model"):
        args.func(args)


def test_import_edgekit_and_decode_stay_light():
    code = ("import sys, edgekit, edgekit.runtime.decode;"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_batchnorm_free_nets_keep_their_signal():
    """YOLO-LITE has no BN: with torch's default conv init its features shrink to ~0.01 by the last conv
    (nothing trains); the He init Darknet uses keeps them O(1)."""
    import torch

    from edgekit.models import create_model

    torch.manual_seed(0)
    m = create_model("yolo-lite", num_classes=7).eval()
    with torch.no_grad():
        feats = m.backbone(torch.rand(2, 3, 224, 224))[-1]
    assert 0.3 < float(feats.std()) < 3.0
