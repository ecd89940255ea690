"""The calibration set's networks, rebuilt layer for layer so their graphs can be measured.

The published timings the estimator is fitted on (``anchors.json``, from ANCHORS.md) are of
models that are not edgekit detectors: ncnn's ``mobilenet_ssd`` and ``nanodet_m`` and XNNPACK's
MobileNetV1. Their graphs are defined here from their public definitions (weights do not matter
for latency; batch norm is left out because every runtime folds it into the convolution):

- ``mobilenet_v1``: Howard et al. 2017, width 1.0, 1000 classes (569 M MACs at 224, the paper's figure);
- ``mobilenet_ssd``: chuanqi305/MobileNet-SSD (the Caffe model ncnn benchmarks): MobileNetV1 at 300,
  extra layers conv14-17, 1x1 loc/conf heads on conv11, conv13 and conv14_2-conv17_2, 21 VOC classes;
- ``nanodet_m``: RangiLyu/nanodet ``nanodet-m.yml``: ShuffleNetV2 1.0x (stages 2-4), PAN with
  96-channel 1x1 laterals and resize-add paths, NanoDetHead with two depthwise-separable 96-channel
  convs per level and a shared cls+reg 1x1 output (80 + 4 x 8 channels), strides 8/16/32;
- ``yolov2_voc``: Darknet's YOLOv2 at 416, the only calibration network with dense 3x3 stride-1
  convolutions (the seed deck's approximate "full YOLO" figures).

Two more are *not* calibration rows but checks of the estimator on models outside the set: SSDLite
with MobileNetV2 and MobileNetV1 at 320 (MobileNetV2 paper Table 6: 0.8 B and 1.3 B MAdds, 200 ms
and 270 ms on a Pixel 1 big core).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(c_in: int, c_out: int, k: int = 3, s: int = 1, groups: int = 1, act: str | None = "relu") -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups)]
    if act == "relu":
        layers.append(nn.ReLU())
    elif act == "leaky":
        layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


def _dw_sep(c_in: int, c_out: int, s: int, act: str = "relu") -> nn.Sequential:
    return nn.Sequential(_conv(c_in, c_in, 3, s, groups=c_in, act=act), _conv(c_in, c_out, 1, act=act))


MOBILENET_V1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def mobilenet_v1_features() -> nn.ModuleList:
    """conv0 (3x3 s2, 32) and the 13 depthwise-separable blocks conv1..conv13."""
    mods, c = [_conv(3, 32, 3, 2)], 32
    for c_out, s in MOBILENET_V1:
        mods.append(_dw_sep(c, c_out, s))
        c = c_out
    return nn.ModuleList(mods)


class MobileNetV1(nn.Module):
    """MobileNetV1 1.0 classifier (global average pool + fully connected)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = mobilenet_v1_features()
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        for m in self.features:
            x = m(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class MobileNetSSD(nn.Module):
    """chuanqi305 MobileNet-SSD: heads on conv11 (3 boxes), conv13 and four extra layers (6 boxes)."""

    def __init__(self, num_classes: int = 21):
        super().__init__()
        self.features = mobilenet_v1_features()
        self.extras = nn.ModuleList([nn.Sequential(_conv(c_in, mid, 1), _conv(mid, c_out, 3, 2))
                                     for c_in, mid, c_out in ((1024, 256, 512), (512, 128, 256), (256, 128, 256),
                                                              (256, 64, 128))])
        sources = [(512, 3), (1024, 6), (512, 6), (256, 6), (256, 6), (128, 6)]
        self.loc = nn.ModuleList([nn.Conv2d(c, b * 4, 1) for c, b in sources])
        self.conf = nn.ModuleList([nn.Conv2d(c, b * num_classes, 1) for c, b in sources])

    def forward(self, x):
        taps = []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in (11, 13):  # conv11 and conv13 (index 0 is conv0)
                taps.append(x)
        for m in self.extras:
            x = m(x)
            taps.append(x)
        loc = [l(t).permute(0, 2, 3, 1).flatten(1) for l, t in zip(self.loc, taps)]
        conf = [c(t).permute(0, 2, 3, 1).flatten(1) for c, t in zip(self.conf, taps)]
        return torch.cat(loc, 1), torch.softmax(torch.cat(conf, 1).view(1, -1, 21), -1)


class ShuffleBlock(nn.Module):
    """ShuffleNetV2 unit: channel split (stride 1) or two branches (stride 2), concat, channel shuffle."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride, branch = stride, c_out // 2
        if stride > 1:
            self.branch1 = nn.Sequential(_conv(c_in, c_in, 3, stride, groups=c_in, act=None),
                                         _conv(c_in, branch, 1, act="leaky"))
        c2 = c_in if stride > 1 else branch
        self.branch2 = nn.Sequential(_conv(c2, branch, 1, act="leaky"),
                                     _conv(branch, branch, 3, stride, groups=branch, act=None),
                                     _conv(branch, branch, 1, act="leaky"))

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.branch2(b)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        n, c, h, w = out.shape
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class NanoDetM(nn.Module):
    """NanoDet-m: ShuffleNetV2 1.0x + PAN (96) + NanoDetHead (2 dw-separable convs, 112 outputs per level)."""

    def __init__(self, num_classes: int = 80, reg_max: int = 7):
        super().__init__()
        self.stem = _conv(3, 24, 3, 2, act="leaky")
        stages, c = [], 24
        for c_out, repeats in ((116, 4), (232, 8), (464, 4)):
            stages.append(nn.Sequential(*[ShuffleBlock(c if i == 0 else c_out, c_out, 2 if i == 0 else 1)
                                          for i in range(repeats)]))
            c = c_out
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList([nn.Conv2d(ci, 96, 1) for ci in (116, 232, 464)])
        out = num_classes + 4 * (reg_max + 1)
        self.heads = nn.ModuleList([nn.Sequential(_dw_sep(96, 96, 1, "leaky"), _dw_sep(96, 96, 1, "leaky"),
                                                  nn.Conv2d(96, out, 1)) for _ in range(3)])

    def forward(self, x):
        x = F.max_pool2d(self.stem(x), 3, 2, 1)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        lat = [l(f) for l, f in zip(self.lateral, feats)]
        for i in (1, 0):  # top-down
            lat[i] = lat[i] + F.interpolate(lat[i + 1], size=lat[i].shape[2:], mode="bilinear", align_corners=False)
        for i in (1, 2):  # bottom-up
            lat[i] = lat[i] + F.interpolate(lat[i - 1], size=lat[i].shape[2:], mode="bilinear", align_corners=False)
        return [h(f).flatten(2) for h, f in zip(self.heads, lat)]


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1 (ReLU6), depthwise 3x3 (ReLU6), project 1x1 (linear), residual when it fits."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.expand = nn.Sequential(nn.Conv2d(c_in, hidden, 1), nn.ReLU6()) if expand != 1 else nn.Identity()
        self.rest = nn.Sequential(nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden), nn.ReLU6(),
                                  nn.Conv2d(hidden, c_out, 1))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.rest(self.expand(x))
        return x + y if self.residual else y


def _ssdlite_extras() -> nn.ModuleList:
    """SSDLite's extra layers (depths 512, 256, 256, 128): 1x1 to half depth, depthwise 3x3 s2, 1x1."""
    mods, c = [], 1280
    for depth in (512, 256, 256, 128):
        mods.append(nn.Sequential(_conv(c, depth // 2, 1, act=None), nn.ReLU6(), _dw_sep(depth // 2, depth, 2)))
        c = depth
    return mods


def _ssdlite_heads(channels, num_classes: int = 91) -> tuple[nn.ModuleList, nn.ModuleList]:
    boxes = [3] + [6] * (len(channels) - 1)
    loc = nn.ModuleList([nn.Sequential(_conv(c, c, 3, groups=c), nn.Conv2d(c, b * 4, 1)) for c, b in zip(channels, boxes)])
    conf = nn.ModuleList([nn.Sequential(_conv(c, c, 3, groups=c), nn.Conv2d(c, b * num_classes, 1))
                          for c, b in zip(channels, boxes)])
    return loc, conf


class SSDLiteMobileNetV2(nn.Module):
    """SSDLite-MobileNetV2 (MobileNetV2 paper, Table 6; TF Object Detection API ``ssdlite_mobilenet_v2``):
    heads on block 13's 576-channel expansion (stride 16) and the 1280-channel last conv (stride 32),
    four SSDLite extra layers, depthwise-separable box and class predictors, 91 COCO classes."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self):
        super().__init__()
        blocks, c = [], 32
        for t, ch, n, s in self.SETTINGS:
            for i in range(n):
                blocks.append(InvertedResidual(c, ch, s if i == 0 else 1, t))
                c = ch
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU6())
        self.blocks = nn.ModuleList(blocks)
        self.last = nn.Sequential(nn.Conv2d(320, 1280, 1), nn.ReLU6())
        self.extras = _ssdlite_extras()
        self.loc, self.conf = _ssdlite_heads([576, 1280, 512, 256, 256, 128])

    def forward(self, x):
        x, taps = self.stem(x), []
        for i, b in enumerate(self.blocks):
            if i == 13:  # the first stride-32 block: its expansion output is the stride-16 feature map
                e = b.expand(x)
                taps.append(e)
                x = b.rest(e)
            else:
                x = b(x)
        x = self.last(x)
        taps.append(x)
        for m in self.extras:
            x = m(x)
            taps.append(x)
        return [torch.cat([h(t).flatten(1) for h, t in zip(heads, taps)], 1) for heads in (self.loc, self.conf)]


class SSDLiteMobileNetV1(nn.Module):
    """SSDLite-MobileNetV1 (MobileNetV2 paper, Table 6): MobileNetV1 conv11/conv13 + the SSDLite extras and heads."""

    def __init__(self):
        super().__init__()
        self.features = mobilenet_v1_features()
        self.extras = _ssdlite_extras()
        self.extras[0] = nn.Sequential(_conv(1024, 256, 1, act=None), nn.ReLU6(), _dw_sep(256, 512, 2))
        self.loc, self.conf = _ssdlite_heads([512, 1024, 512, 256, 256, 128])

    def forward(self, x):
        taps = []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in (11, 13):
                taps.append(x)
        for m in self.extras:
            x = m(x)
            taps.append(x)
        return [torch.cat([h(t).flatten(1) for h, t in zip(heads, taps)], 1) for heads in (self.loc, self.conf)]


class YOLOv2VOC(nn.Module):
    """YOLOv2 at 416 (pjreddie.com/darknet/yolov2, ``yolov2-voc.cfg``: Darknet-19, the 26x26 passthrough
    reorganised to 13x13, 5 anchors x 25 outputs): 29.4 BFLOPs = 14.7 G MACs, leaky ReLU after every
    conv (batch norm folded). The seed deck's "full YOLO at 416x416" (ANCHORS.md)."""

    def __init__(self):
        super().__init__()
        pool = nn.MaxPool2d(2, 2)
        c = lambda i, o, k: _conv(i, o, k, act="leaky")  # noqa: E731
        self.to26 = nn.Sequential(c(3, 32, 3), pool, c(32, 64, 3), pool, c(64, 128, 3), c(128, 64, 1), c(64, 128, 3),
                                  pool, c(128, 256, 3), c(256, 128, 1), c(128, 256, 3), pool, c(256, 512, 3),
                                  c(512, 256, 1), c(256, 512, 3), c(512, 256, 1), c(256, 512, 3))
        self.to13 = nn.Sequential(pool, c(512, 1024, 3), c(1024, 512, 1), c(512, 1024, 3), c(1024, 512, 1),
                                  c(512, 1024, 3), c(1024, 1024, 3), c(1024, 1024, 3))
        self.passthrough = c(512, 64, 1)
        self.head = nn.Sequential(c(1280, 1024, 3), nn.Conv2d(1024, 125, 1))

    def forward(self, x):
        a = self.to26(x)
        b = self.to13(a)
        r = self.passthrough(a)
        n, ch, h, w = r.shape  # Darknet's reorg: 2x2 space-to-depth
        r = r.view(n, ch, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4).reshape(n, ch * 4, h // 2, w // 2)
        return self.head(torch.cat([r, b], 1))


REFERENCE_NETS = {"mobilenet_v1": MobileNetV1, "mobilenet_ssd": MobileNetSSD, "nanodet_m": NanoDetM, "yolov2_voc": YOLOv2VOC,
                  # not in the calibration set: published timings the estimator is checked on (tests/estimate)
                  "ssdlite_mobilenet_v2": SSDLiteMobileNetV2, "ssdlite_mobilenet_v1": SSDLiteMobileNetV1}


def reference_net(name: str) -> nn.Module:
    """A calibration network by its ``anchors.json`` name.

    Example:
        >>> from edgekit.models import count_macs
        >>> round(count_macs(reference_net("mobilenet_v1"), 224) / 1e6)
        569
    """
    return REFERENCE_NETS[name]().eval()
