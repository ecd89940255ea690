"""YOLO-LITE (Pedoeem & Huang, arXiv 1811.05588), the paper's final "trial 3 no batch" net.

Exactly ``tiny-yolov2-trial3-noBatch.cfg``: 224x224 input, no batch norm (convs carry a
bias), leaky ReLU; five 3x3 convs of 16, 32, 64, 128, 128 filters, each followed by a 2x2/2
max pool; a 3x3 256 conv; a 1x1 conv to 5 * (5 + C); YOLOv2 region head with 5 anchors.
VOC (C = 20): 749 filters, 482 M FLOPs in the paper, 240 M MACs, about 0.57 M params.
"""

from __future__ import annotations

from torch import nn

from edgekit.models.anchors import resolve_anchors
from edgekit.models.detector import Detector, YoloHead, make_head_spec
from edgekit.models.plain_backbone import PlainBackbone
from edgekit.models.registry import register_model
from edgekit.models.tiny_yolov2 import VOC_ANCHORS_PX

YOLO_LITE = [("C", 16, 3), ("M", 2), ("C", 32, 3), ("M", 2), ("C", 64, 3), ("M", 2),
             ("C", 128, 3), ("M", 2), ("C", 128, 3), ("M", 2), ("C", 256, 3), ("T",)]


@register_model("yolo-lite")
def yolo_lite(num_classes: int = 80, anchors=None, width: float = 1.0, imgsz: int = 224):
    """YOLO-LITE: region head, 5 anchors, default 224x224, no batch norm.

    Args:
        num_classes: classes C.
        anchors: 5 (w, h) in pixels; default the Tiny-YOLOv2 VOC anchors, as in the cfg.
        width: channel multiplier (1.0 = the paper).
        imgsz: default input size recorded in ``head_spec``.

    Example:
        >>> m = yolo_lite(num_classes=20)
        >>> sum(p.numel() for p in m.parameters())
        572317
    """
    strides = [32]
    groups = resolve_anchors(anchors, strides, VOC_ANCHORS_PX)
    # no BN is the point of the paper: it doubled CPU speed (9.5 -> 21 FPS)
    backbone = PlainBackbone(YOLO_LITE, bn=False, width=width)
    head = YoloHead(backbone.out_channels, [len(groups[0])], num_classes)
    spec = make_head_spec("region", num_classes, groups, strides, imgsz)
    return Detector(backbone, nn.Identity(), head, spec)
