"""Tiny-YOLOv3 (Darknet ``yolov3-tiny.cfg``): two YOLO heads at strides 32 and 16.

The Tiny-YOLOv2 trunk; a 1x1 256 conv, then a 3x3 512 conv and the stride-32 head; from
the 256 conv a 1x1 128 conv, 2x nearest upsample, concat with the trunk's stride-16 256
map, a 3x3 256 conv and the stride-16 head. Outputs in the cfg's order: [stride 32,
stride 16]. COCO at 416: 8.86 M params, 5.56 GFLOPs (ANCHORS.md).
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.models.anchors import resolve_anchors
from edgekit.models.detector import Detector, YoloHead, make_head_spec
from edgekit.models.layers import ConvBNAct
from edgekit.models.plain_backbone import PlainBackbone, scale_width
from edgekit.models.registry import register_model
from edgekit.models.tiny_yolov2 import tiny_darknet_spec

# yolov3-tiny.cfg: masks 3,4,5 (stride 32) and 0,1,2 (stride 16)
COCO_ANCHORS_PX = [[[81, 82], [135, 169], [344, 319]], [[10, 14], [23, 27], [37, 58]]]


class TinyYoloV3Neck(nn.Module):
    """The yolov3-tiny neck: maps [C4 (stride 16), C5 (stride 32)] to [P5, P4]."""

    def __init__(self, c4: int, c5: int, width: float = 1.0):
        super().__init__()
        c256, c512, c128 = (scale_width(c, width) for c in (256, 512, 128))
        self.reduce = ConvBNAct(c5, c256, 1)
        self.p5 = ConvBNAct(c256, c512, 3)
        self.lateral = ConvBNAct(c256, c128, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.p4 = ConvBNAct(c128 + c4, c256, 3)
        self.out_channels = [c512, c256]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        c4, c5 = feats
        x = self.reduce(c5)
        p4 = self.p4(torch.cat([self.up(self.lateral(x)), c4], 1))
        return [self.p5(x), p4]


@register_model("tiny-yolov3")
def tiny_yolov3(num_classes: int = 80, anchors=None, width: float = 1.0, imgsz: int = 416):
    """Tiny-YOLOv3: yolo heads (sigmoid classes), 3 anchors per scale, default 416x416.

    Args:
        num_classes: classes C.
        anchors: 6 (w, h) in pixels (flat, split by size) or [[3 for stride 32], [3 for 16]].
        width: channel multiplier (1.0 = the Darknet cfg).
        imgsz: default input size recorded in ``head_spec``.

    Example:
        >>> m = tiny_yolov3(num_classes=80)
        >>> round(sum(p.numel() for p in m.parameters()) / 1e6, 2)  # published: 8.86 M
        8.85
    """
    strides = [32, 16]
    groups = resolve_anchors(anchors, strides, COCO_ANCHORS_PX)
    backbone = PlainBackbone(tiny_darknet_spec(tap16=True), width=width)
    neck = TinyYoloV3Neck(*backbone.out_channels, width=width)
    head = YoloHead(neck.out_channels, [len(g) for g in groups], num_classes)
    spec = make_head_spec("yolo", num_classes, groups, strides, imgsz)
    return Detector(backbone, neck, head, spec)
