"""``--weights`` from downloaded MobileNetV2 state dicts (issue 19: pretrained starts).

Nothing is downloaded: the state dicts are made here by small replicas of torchvision's and
timm's MobileNetV2 module trees (their real key names come from the module structure), with
random weights. The mapped backbone must compute exactly what the replica computes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

# torchvision's inverted-residual settings (t, c, n, s) at width 1.0
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def conv_norm_act(c_in, c_out, k=3, s=1, groups=1):
    """torchvision.ops.Conv2dNormActivation: Sequential(Conv2d, BatchNorm2d, ReLU6) -> keys .0, .1"""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out), nn.ReLU6())


class TVInvertedResidual(nn.Module):
    def __init__(self, c_in, c_out, s, t):
        super().__init__()
        hidden = c_in * t
        layers = [] if t == 1 else [conv_norm_act(c_in, hidden, 1)]
        layers += [conv_norm_act(hidden, hidden, 3, s, hidden), nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.res = s == 1 and c_in == c_out

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class TVMobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2's module tree: features.0..18 and classifier."""

    def __init__(self):
        super().__init__()
        feats, c = [conv_norm_act(3, 32, 3, 2)], 32
        for t, ch, n, s in SETTINGS:
            for i in range(n):
                feats.append(TVInvertedResidual(c, ch, s if i == 0 else 1, t))
                c = ch
        feats.append(conv_norm_act(c, 1280, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))


class TimmBlock(nn.Module):
    def __init__(self, c_in, c_out, s, t):
        super().__init__()
        hidden = c_in * t
        if t == 1:  # timm's DepthwiseSeparableConv: conv_dw, bn1, conv_pw, bn2
            self.conv_dw, self.bn1 = nn.Conv2d(c_in, c_in, 3, s, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_in)
            self.conv_pw, self.bn2 = nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        else:  # timm's InvertedResidual: conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3
            self.conv_pw, self.bn1 = nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden)
            self.conv_dw, self.bn2 = nn.Conv2d(hidden, hidden, 3, s, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden)
            self.conv_pwl, self.bn3 = nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)


class TimmMobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_stem, self.bn1 = nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32)
        stages, c = [], 32
        for t, ch, n, s in SETTINGS:
            stages.append(nn.Sequential(*[TimmBlock(c if i == 0 else ch, ch, s if i == 0 else 1, t) for i in range(n)]))
            c = ch
        self.blocks = nn.Sequential(*stages)
        self.conv_head, self.bn2 = nn.Conv2d(320, 1280, 1, bias=False), nn.BatchNorm2d(1280)
        self.classifier = nn.Linear(1280, 1000)


def _randomised(module: nn.Module) -> nn.Module:
    """Random BN statistics too, so a wrong mapping cannot hide behind identity BNs."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.1, 0.1, generator=g)
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    return module.eval()


def test_torchvision_state_dict_maps_onto_the_backbone_exactly():
    from edgekit.models import create_model
    from edgekit.models.pretrained import map_state_dict

    tv = _randomised(TVMobileNetV2())
    fmt, mapped, report = map_state_dict(tv.state_dict())
    assert fmt == "torchvision-mobilenetv2" and report["unused"] == ["classifier.1", "features.18.0", "features.18.1"]
    model = create_model("mobilenetv2-yolo", num_classes=2).eval()
    missing = [k for k in mapped if k not in model.state_dict()]
    assert not missing
    model.load_state_dict(mapped, strict=False)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = tv.features[:18](x)  # up to the 320-channel block, where edgekit's backbone ends
        got = model.backbone(x)[-1]
    assert torch.allclose(ref, got, atol=1e-5)


def test_timm_state_dict_maps_to_the_same_layers():
    from edgekit.models import create_model
    from edgekit.models.pretrained import map_state_dict

    fmt, mapped, report = map_state_dict(TimmMobileNetV2().state_dict())
    own = create_model("mobilenetv2-yolo", num_classes=2).state_dict()
    backbone = {k for k in own if k.startswith("backbone.") and not k.endswith("num_batches_tracked")}
    assert fmt == "timm-mobilenetv2" and set(mapped) == backbone
    assert all(own[k].shape == v.shape for k, v in mapped.items())
    assert report["unused"] == ["bn2", "classifier", "conv_head"]


def test_train_from_a_torchvision_file_transfers_the_backbone(tmp_path, sample_yaml, capsys):
    from edgekit.models.checkpoint import read_checkpoint
    from edgekit.train import TrainOptions, train

    tv = _randomised(TVMobileNetV2())
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(tv.state_dict(), path)
    res = train(TrainOptions("mobilenetv2-yolo", str(sample_yaml), imgsz=64, epochs=1, batch=8, workers=0, lr=0.0,
                             out=str(tmp_path / "run"), weights=str(path), max_train_images=8))
    best = read_checkpoint(res["best"])["state_dict"]
    assert torch.equal(best["backbone.features.5.block.1.conv.weight"], tv.state_dict()["features.5.conv.1.0.weight"])
    assert "torchvision-mobilenetv2 state dict, 255 tensors mapped" in capsys.readouterr().err


def test_a_width_that_does_not_fit_is_one_clear_error(tmp_path, sample_yaml):
    from edgekit.errors import EdgekitError
    from edgekit.train import TrainOptions, train

    path = tmp_path / "mobilenet_v2.pth"
    torch.save(TVMobileNetV2().state_dict(), path)
    with pytest.raises(EdgekitError, match="channel counts differ; use the model of the same width"):
        train(TrainOptions("mobilenetv2_050-yolo", str(sample_yaml), imgsz=64, epochs=1, batch=8, workers=0,
                           out=str(tmp_path / "run"), weights=str(path), max_train_images=8))
