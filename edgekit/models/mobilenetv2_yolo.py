"""MobileNetV2 + FPN-lite neck + two YOLO heads at strides 16 and 32 (default 320x320).

Neck: 1x1 laterals bring both maps to ``neck`` channels; the stride-32 map is upsampled
2x and concatenated to the stride-16 one; each output then goes through a depthwise
separable 3x3 conv (the MobileNet way to see context cheaply). Heads are 1x1 convs with
sigmoid classes and anchors in pixels. Outputs in stride order: [16, 32].
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.models.anchors import resolve_anchors
from edgekit.models.detector import Detector, YoloHead, make_head_spec
from edgekit.models.layers import ConvBNAct, make_divisible
from edgekit.models.mobilenetv2 import MobileNetV2
from edgekit.models.registry import register_model

# Yolo-Fastest's anchors, fitted on COCO at 320x320 for the same two strides
DEFAULT_ANCHORS_PX = [[[12, 18], [37, 49], [52, 132]], [[115, 73], [119, 199], [242, 238]]]


def dw_separable(c_in: int, c_out: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, both BN + ReLU6."""
    return nn.Sequential(ConvBNAct(c_in, c_in, 3, groups=c_in, act="relu6"),
                         ConvBNAct(c_in, c_out, 1, act="relu6"))


class FPNLite(nn.Module):
    """Two-level FPN with concat fusion: [C4, C5] -> [P4, P5].

    Example:
        >>> n = FPNLite([32, 64], 48)
        >>> [f.shape[1] for f in n([torch.zeros(1, 32, 8, 8), torch.zeros(1, 64, 4, 4)])]
        [48, 48]
    """

    def __init__(self, in_channels: list[int], c: int):
        super().__init__()
        self.lat4 = ConvBNAct(in_channels[0], c, 1, act="relu6")
        self.lat5 = ConvBNAct(in_channels[1], c, 1, act="relu6")
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.out4 = dw_separable(2 * c, c)
        self.out5 = dw_separable(c, c)
        self.out_channels = [c, c]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        c4, c5 = feats
        p5 = self.lat5(c5)
        p4 = self.out4(torch.cat([self.lat4(c4), self.up(p5)], 1))
        return [p4, self.out5(p5)]


@register_model("mobilenetv2-yolo")
def mobilenetv2_yolo(num_classes: int = 80, anchors=None, width: float = 1.0, imgsz: int = 320,
                     neck_channels: int | None = None):
    """MobileNetV2-YOLO: 2 YOLO heads (strides 16, 32), 3 anchors each.

    Args:
        num_classes: classes C.
        anchors: 6 (w, h) in pixels (flat, split by size) or [[3 for stride 16], [3 for 32]].
        width: MobileNetV2 width multiplier (0.35, 0.5, 0.75, 1.0).
        imgsz: default input size recorded in ``head_spec``.
        neck_channels: FPN width; default 128 * width (at least 32), a multiple of 8.

    Example:
        >>> m = mobilenetv2_yolo(num_classes=20, width=0.5)
        >>> [tuple(o.shape) for o in m(torch.zeros(1, 3, 64, 64))]
        [(1, 75, 4, 4), (1, 75, 2, 2)]
    """
    strides = [16, 32]
    groups = resolve_anchors(anchors, strides, DEFAULT_ANCHORS_PX)
    backbone = MobileNetV2(width)
    c = neck_channels or max(32, make_divisible(128 * width, 8))
    neck = FPNLite(backbone.out_channels, c)
    head = YoloHead(neck.out_channels, [len(g) for g in groups], num_classes)
    spec = make_head_spec("yolo", num_classes, groups, strides, imgsz)
    return Detector(backbone, neck, head, spec)


def _fixed_width(w: float):
    def factory(num_classes: int = 80, anchors=None, imgsz: int = 320, neck_channels: int | None = None):
        return mobilenetv2_yolo(num_classes, anchors, w, imgsz, neck_channels)
    factory.__doc__ = f"MobileNetV2-YOLO at width {w} (see :func:`mobilenetv2_yolo`)."
    return factory


# timm-style names for the published widths
for _w in (0.35, 0.5, 0.75):
    register_model(f"mobilenetv2_{round(_w * 100):03d}-yolo")(_fixed_width(_w))
