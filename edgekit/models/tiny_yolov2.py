"""Tiny-YOLOv2 (Darknet ``yolov2-tiny-voc.cfg``): 9 convs, BN + leaky 0.1, region head.

Topology: 3x3 convs of 16, 32, 64, 128, 256, 512 filters, each but the last followed by a
2x2/2 max pool; after the 512 conv Darknet's 2x2/1 max pool (keeps 13x13); a 1024 conv;
then the "neck" conv (1024 in the VOC cfg, 512 in the COCO ``yolov2-tiny.cfg``) and a 1x1
conv to 5 * (5 + C). VOC at 416: 15.86 M params, 6.97 GFLOPs (ANCHORS.md).
"""

from __future__ import annotations

from torch import nn

from edgekit.models.anchors import resolve_anchors
from edgekit.models.detector import Detector, YoloHead, make_head_spec
from edgekit.models.layers import ConvBNAct
from edgekit.models.plain_backbone import PlainBackbone, scale_width
from edgekit.models.registry import register_model

# yolov2-tiny-voc.cfg anchors (grid cells at stride 32) in pixels
VOC_ANCHORS_PX = [[[1.08 * 32, 1.19 * 32], [3.42 * 32, 4.41 * 32], [6.63 * 32, 11.38 * 32],
                   [9.42 * 32, 5.11 * 32], [16.62 * 32, 10.52 * 32]]]



def tiny_darknet_spec(tap16: bool = False) -> list:
    """The shared Tiny-YOLO trunk; ``tap16`` also returns the stride-16 256-filter map (v3)."""
    return [("C", 16, 3), ("M", 2), ("C", 32, 3), ("M", 2), ("C", 64, 3), ("M", 2),
            ("C", 128, 3), ("M", 2), ("C", 256, 3)] + ([("T",)] if tap16 else []) + [
            ("M", 2), ("C", 512, 3), ("M", 1), ("C", 1024, 3), ("T",)]


@register_model("tiny-yolov2")
def tiny_yolov2(num_classes: int = 80, anchors=None, width: float = 1.0, imgsz: int = 416,
                neck_channels: int = 1024):
    """Tiny-YOLOv2: region head, 5 anchors, default 416x416.

    Args:
        num_classes: classes C.
        anchors: 5 (w, h) in pixels (any count works); default the VOC cfg's.
        width: channel multiplier (1.0 = the Darknet cfg).
        imgsz: default input size recorded in ``head_spec``.
        neck_channels: filters of the conv before the head: 1024 (VOC cfg) or 512 (COCO cfg).

    Example:
        >>> m = tiny_yolov2(num_classes=20)
        >>> sum(p.numel() for p in m.parameters()) / 1e6  # doctest: +ELLIPSIS
        15.86...
    """
    strides = [32]
    groups = resolve_anchors(anchors, strides, VOC_ANCHORS_PX)
    backbone = PlainBackbone(tiny_darknet_spec(), width=width)
    c = scale_width(neck_channels, width)
    neck = _LastMap(ConvBNAct(backbone.out_channels[-1], c, 3))
    head = YoloHead([c], [len(groups[0])], num_classes)
    spec = make_head_spec("region", num_classes, groups, strides, imgsz)
    return Detector(backbone, neck, head, spec)


class _LastMap(nn.Sequential):
    """A neck that runs its layers on the last (coarsest) backbone map only."""

    def forward(self, feats):
        x = feats[-1]
        for layer in self:
            x = layer(x)
        return [x]
