"""MobileNetV2 image classifier: the shared backbone, a 1x1 conv, global average pool, dropout, linear.

The forward returns raw logits ``(N, C)``: softmax, top-k and the "unsure" reject live in
``edgekit.runtime.classify`` (numpy), shared by validation and every runtime backend, as
detectors keep their decoding out of the graph.

``head_spec`` schema for classifiers (JSON-able, stored in checkpoints and manifests)::

    {"type": "classify", "num_classes": C, "imgsz": [h, w], "output": "logits"}

The default input is 64x64, meant for thumbnails cut out of detection boxes
(``edgekit data crops``); any size that is a multiple of 32 works.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.models.layers import ConvBNAct, make_divisible
from edgekit.models.mobilenetv2 import MobileNetV2
from edgekit.models.registry import register_model


def make_classify_spec(num_classes: int, imgsz) -> dict:
    """The ``head_spec`` of a classifier.

    Example:
        >>> make_classify_spec(7, 64)
        {'type': 'classify', 'num_classes': 7, 'imgsz': [64, 64], 'output': 'logits'}
    """
    hw = [int(imgsz), int(imgsz)] if isinstance(imgsz, (int, float)) else [int(v) for v in imgsz]
    return {"type": "classify", "num_classes": int(num_classes), "imgsz": hw, "output": "logits"}


class Classifier(nn.Module):
    """backbone (last feature map) -> optional 1x1 conv -> global average pool -> dropout -> linear.

    Args:
        backbone: a module returning a list of feature maps and exposing ``out_channels``.
        num_classes: classes C.
        head_spec: see the module docstring.
        last_channels: width of the 1x1 conv before pooling (0: none).
        dropout: dropout probability before the linear layer.

    Attributes:
        task: ``"classify"``, so export and runtime code can tell classifiers from detectors.

    Example:
        >>> m = Classifier(MobileNetV2(0.35), 3, make_classify_spec(3, 32), last_channels=64)
        >>> m(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 3])
    """

    task = "classify"

    def __init__(self, backbone: nn.Module, num_classes: int, head_spec: dict, last_channels: int = 1280,
                 dropout: float = 0.2):
        super().__init__()
        self.backbone = backbone
        c = backbone.out_channels[-1]
        self.conv = ConvBNAct(c, last_channels, 1, act="relu6") if last_channels else nn.Identity()
        c = last_channels or c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)
        # the reference initialisation of the classifier layer: small normal weights, zero bias
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)
        self.head_spec = head_spec

    @property
    def num_classes(self) -> int:
        return self.head_spec["num_classes"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.backbone(x)[-1])
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))

    def extra_repr(self) -> str:
        return f"task=classify, num_classes={self.head_spec['num_classes']}, imgsz={self.head_spec['imgsz']}"


@register_model("mobilenetv2-cls", task="classify")
def mobilenetv2_cls(num_classes: int = 1000, width: float = 1.0, imgsz: int = 64, dropout: float = 0.2,
                    last_channels: int | None = None):
    """MobileNetV2 classifier (Sandler et al. 2018, Table 2 with a configurable last conv).

    Args:
        num_classes: classes C.
        width: width multiplier, 0.35 to 1.0 (0.35, 0.5, 0.75, 1.0 are the published ones).
        imgsz: default input size recorded in ``head_spec`` (64: thumbnails).
        dropout: dropout before the linear layer.
        last_channels: width of the final 1x1 conv; default 1280 as the paper (kept at
            1280 for widths below 1, scaled above), 0 for none.

    Example:
        >>> m = mobilenetv2_cls(num_classes=7, width=0.5)
        >>> m(torch.zeros(1, 3, 64, 64)).shape, m.head_spec["type"]
        (torch.Size([1, 7]), 'classify')
    """
    if not 0.35 <= float(width) <= 1.0:
        raise EdgekitError(f"mobilenetv2-cls width must be between 0.35 and 1.0, got {width}: use e.g. --width 0.5")
    if last_channels is None:
        last_channels = make_divisible(1280 * max(1.0, width), 8)
    backbone = MobileNetV2(width)
    return Classifier(backbone, num_classes, make_classify_spec(num_classes, imgsz), last_channels, dropout)
