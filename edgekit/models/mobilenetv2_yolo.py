"""MobileNetV2 + FPN-lite neck + YOLO heads at strides 16 and 32 (``-p3``: 8, 16, 32), default 320x320.

Neck: 1x1 laterals bring every map to ``neck`` channels; each coarser map is upsampled
2x and concatenated to the next finer one; each output then goes through a depthwise
separable 3x3 conv (the MobileNet way to see context cheaply). Heads are 1x1 convs with
sigmoid classes and anchors in pixels. Outputs in stride order: [16, 32] or [8, 16, 32].
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
# YOLOv3's COCO anchors at 416 scaled to 320, for the three-stride (P3) variants
P3_ANCHORS_PX = [[[8, 10], [12, 23], [25, 18]], [[23, 47], [48, 34], [45, 92]], [[89, 69], [120, 166], [286, 250]]]


def dw_separable(c_in: int, c_out: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, both BN + ReLU6."""
    return nn.Sequential(ConvBNAct(c_in, c_in, 3, groups=c_in, act="relu6"),
                         ConvBNAct(c_in, c_out, 1, act="relu6"))


class FPNLite(nn.Module):
    """Top-down FPN with concat fusion: [C3?, C4, C5] -> [P3?, P4, P5].

    Every level gets a 1x1 lateral to ``c`` channels; going down, the level above is
    upsampled 2x and concatenated, then a depthwise separable 3x3 mixes them. Modules are
    named by level (``lat4``, ``out5``...), so a two-level model keeps its weights' names
    whether or not a stride-8 level exists in other models.

    Example:
        >>> n = FPNLite([32, 64], 48)
        >>> [f.shape[1] for f in n([torch.zeros(1, 32, 8, 8), torch.zeros(1, 64, 4, 4)])]
        [48, 48]
        >>> n3 = FPNLite([16, 32, 64], 48, levels=[3, 4, 5])
        >>> [f.shape[-1] for f in n3([torch.zeros(1, 16, 16, 16), torch.zeros(1, 32, 8, 8), torch.zeros(1, 64, 4, 4)])]
        [16, 8, 4]
    """

    def __init__(self, in_channels: list[int], c: int, levels: list[int] | None = None):
        super().__init__()
        self.levels = list(levels or range(6 - len(in_channels), 6))
        top = self.levels[-1]
        for lvl, ch in zip(self.levels, in_channels):
            self.add_module(f"lat{lvl}", ConvBNAct(ch, c, 1, act="relu6"))
            self.add_module(f"out{lvl}", dw_separable(c if lvl == top else 2 * c, c))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.out_channels = [c] * len(self.levels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        top = self.levels[-1]
        p_top = getattr(self, f"lat{top}")(feats[-1])
        outs, above = [getattr(self, f"out{top}")(p_top)], p_top
        for lvl, f in zip(reversed(self.levels[:-1]), reversed(feats[:-1])):
            above = getattr(self, f"out{lvl}")(torch.cat([getattr(self, f"lat{lvl}")(f), self.up(above)], 1))
            outs.insert(0, above)
        return outs


@register_model("mobilenetv2-yolo")
def mobilenetv2_yolo(num_classes: int = 80, anchors=None, width: float = 1.0, imgsz: int = 320,
                     neck_channels: int | None = None, strides=(16, 32)):
    """MobileNetV2-YOLO: YOLO heads at ``strides`` (default 16, 32), 3 anchors each.

    Args:
        num_classes: classes C.
        anchors: 3 (w, h) per stride in pixels (flat, split by size) or one list of 3 per stride.
        width: MobileNetV2 width multiplier (0.35, 0.5, 0.75, 1.0).
        imgsz: default input size recorded in ``head_spec``.
        neck_channels: FPN width; default 128 * width (at least 32), a multiple of 8.
        strides: (16, 32), or (8, 16, 32) for objects of a few pixels (the ``-p3`` models).

    Example:
        >>> m = mobilenetv2_yolo(num_classes=20, width=0.5)
        >>> [tuple(o.shape) for o in m(torch.zeros(1, 3, 64, 64))]
        [(1, 75, 4, 4), (1, 75, 2, 2)]
    """
    strides = sorted(int(s) for s in strides)
    if strides not in ([16, 32], [8, 16, 32]):
        raise ValueError(f"mobilenetv2-yolo heads at strides {strides}: use (16, 32) or (8, 16, 32)")
    groups = resolve_anchors(anchors, strides, DEFAULT_ANCHORS_PX if len(strides) == 2 else P3_ANCHORS_PX)
    backbone = MobileNetV2(width, out_strides=strides)
    c = neck_channels or max(32, make_divisible(128 * width, 8))
    neck = FPNLite(backbone.out_channels, c, levels=[s.bit_length() - 1 for s in strides])
    head = YoloHead(neck.out_channels, [len(g) for g in groups], num_classes)
    spec = make_head_spec("yolo", num_classes, groups, strides, imgsz)
    return Detector(backbone, neck, head, spec)


def _fixed_width(w: float, strides=(16, 32), default_neck: int | None = None):
    def factory(num_classes: int = 80, anchors=None, imgsz: int = 320, neck_channels: int | None = None):
        return mobilenetv2_yolo(num_classes, anchors, w, imgsz, neck_channels or default_neck, strides)
    factory.__doc__ = f"MobileNetV2-YOLO at width {w}, heads at strides {list(strides)} (see :func:`mobilenetv2_yolo`)."
    return factory


# timm-style names for the published widths
for _w in (0.35, 0.5, 0.75):
    register_model(f"mobilenetv2_{round(_w * 100):03d}-yolo")(_fixed_width(_w))
# A stride-8 head for objects of a few pixels (Fish4Knowledge: median fish 13 x 11 px). Its
# neck is 128 wide: overfitting 32 Fish4Knowledge images for 200 steps (benchmarks/overfit_check.py,
# 2 threads) reached train mAP50 0.142 without the stride-8 head, 0.163 with it and the 64-channel
# neck of width 0.5, and 0.423 with the 128-channel neck.
register_model("mobilenetv2_050-yolo-p3")(_fixed_width(0.5, (8, 16, 32), default_neck=128))
