"""A detector is backbone + neck + head, and carries the ``head_spec`` that decodes it.

The forward returns the raw head maps (a list of ``N x A*(5+C) x H x W`` tensors): no
decoding in the graph, so export stays simple and INT8 quantizes logits. Decoding is
``edgekit.runtime.decode``, in numpy, shared by the torch model, every exported artifact
and the board.

``head_spec`` schema (a JSON-serialisable dict, stored in manifests as is)::

    {
      "type": "region" | "yolo",   # region: YOLOv2, softmax classes; yolo: YOLOv3, sigmoid
      "num_classes": int,
      "imgsz": [h, w],             # default input size in pixels
      "strides": [s, ...],         # per output, input pixels per grid cell
      "anchors": [[[w, h], ...], ...],  # per output, in anchor_units
      "anchor_units": "grid" | "pixels",  # region: grid cells (Darknet); yolo: input pixels
      "scale_x_y": [f, ...],       # per output (YOLOv4 grid sensitivity), 1.0 = none
      "new_coords": 0 | 1,         # 1: Scaled-YOLOv4 outputs, already through a sigmoid
    }
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from edgekit.errors import EdgekitError

HEAD_TYPES = ("region", "yolo")


def make_head_spec(head_type: str, num_classes: int, anchors_px: Sequence, strides: Sequence[int],
                   imgsz: int | Sequence[int], scale_x_y: float | Sequence[float] = 1.0,
                   new_coords: int = 0) -> dict:
    """Build and check a ``head_spec`` from anchors given in input pixels.

    Region heads store their anchors in grid cells, as Darknet does (pixels / stride),
    so the same spec decodes a model run at another input size the way Darknet would.

    Args:
        head_type: "region" or "yolo".
        num_classes: number of classes C.
        anchors_px: per output, a list of (w, h) in input pixels.
        strides: per output, its stride in pixels.
        imgsz: default input size, an int or (h, w).
        scale_x_y: one value or one per output.
        new_coords: 1 for Scaled-YOLOv4 style outputs.

    Returns:
        The ``head_spec`` dict (see the module docstring).

    Example:
        >>> make_head_spec("region", 20, [[(32, 32)]], [32], 416)["anchors"]
        [[[1.0, 1.0]]]
    """
    if head_type not in HEAD_TYPES:
        raise EdgekitError(f"unknown head type '{head_type}': use one of {HEAD_TYPES}")
    if len(anchors_px) != len(strides):
        raise EdgekitError(f"{len(anchors_px)} anchor groups for {len(strides)} outputs: give one group per output")
    hw = [int(imgsz), int(imgsz)] if np.isscalar(imgsz) else [int(v) for v in imgsz]
    sxy = [float(scale_x_y)] * len(strides) if np.isscalar(scale_x_y) else [float(v) for v in scale_x_y]
    groups = []
    for group, s in zip(anchors_px, strides):
        a = np.asarray(group, dtype=np.float64).reshape(-1, 2)
        if head_type == "region":
            a = a / float(s)
        groups.append([[round(float(w), 6), round(float(h), 6)] for w, h in a])
    return {
        "type": head_type,
        "num_classes": int(num_classes),
        "imgsz": hw,
        "strides": [int(s) for s in strides],
        "anchors": groups,
        "anchor_units": "grid" if head_type == "region" else "pixels",
        "scale_x_y": sxy,
        "new_coords": int(new_coords),
    }


def check_outputs(outputs: Sequence, head_spec: dict) -> None:
    """Raise EdgekitError unless ``outputs`` have the channels ``head_spec`` says.

    Example:
        >>> spec = make_head_spec("yolo", 1, [[(8, 8)]], [32], 64)
        >>> check_outputs([torch.zeros(1, 6, 2, 2)], spec)
    """
    if len(outputs) != len(head_spec["anchors"]):
        raise EdgekitError(f"{len(outputs)} outputs but head_spec describes {len(head_spec['anchors'])}")
    for k, (out, group) in enumerate(zip(outputs, head_spec["anchors"])):
        want = len(group) * (5 + head_spec["num_classes"])
        if out.shape[1] != want:
            raise EdgekitError(f"output {k} has {out.shape[1]} channels, head_spec needs {want}")


class YoloHead(nn.Module):
    """One 1x1 conv (with bias) per feature map, to ``A * (5 + C)`` channels.

    Biases start from a prior (objectness ~1 object per 8 cells of the coarsest map, as
    YOLOv5 does) so early training is not swamped by the loss of empty cells.

    Example:
        >>> head = YoloHead([64], [5], 20)
        >>> [o.shape for o in head([torch.zeros(1, 64, 7, 7)])]
        [torch.Size([1, 125, 7, 7])]
    """

    def __init__(self, in_channels: Sequence[int], num_anchors: Sequence[int], num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.convs = nn.ModuleList(
            nn.Conv2d(c, a * (5 + num_classes), 1) for c, a in zip(in_channels, num_anchors))
        for conv, a in zip(self.convs, num_anchors):
            b = conv.bias.data.view(a, 5 + num_classes)
            b.zero_()
            b[:, 4] = math.log(0.01 / 0.99)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(f) for conv, f in zip(self.convs, feats)]


class HeadSpecMixin:
    """``num_classes`` and ``strides`` read from ``self.head_spec`` (seed detectors and Darknet models).

    ``resize``: how an image becomes the input (:data:`edgekit.runtime.preprocess.RESIZE_MODES`); edgekit's
    families letterbox, a Darknet model stretches unless its cfg says ``letterbox=1``.
    """

    head_spec: dict
    resize: str = "letterbox"

    @property
    def num_classes(self) -> int:
        return self.head_spec["num_classes"]

    @property
    def strides(self) -> list[int]:
        return list(self.head_spec["strides"])


class Detector(HeadSpecMixin, nn.Module):
    """backbone -> neck -> head, returning raw head maps; ``head_spec`` says how to decode.

    Args:
        backbone: module returning a list of feature maps; exposes ``out_channels``, ``strides``.
        neck: module mapping that list to the list the head consumes (``nn.Identity`` works).
        head: module returning one raw map per output.
        head_spec: decoding metadata (see the module docstring).

    Example:
        >>> from edgekit.models import create_model
        >>> m = create_model("yolo-lite", num_classes=20)
        >>> [o.shape for o in m(torch.zeros(1, 3, 224, 224))]
        [torch.Size([1, 125, 7, 7])]
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, head: nn.Module, head_spec: dict):
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head
        self.head_spec = head_spec

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.head(self.neck(self.backbone(x))))

    def extra_repr(self) -> str:
        s = self.head_spec
        return f"head={s['type']}, num_classes={s['num_classes']}, strides={s['strides']}, imgsz={s['imgsz']}"

