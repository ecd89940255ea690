"""The conv + max-pool stacks of Tiny-YOLO and YOLO-LITE, described as a short list.

A spec is a list of ``("C", filters, size)`` (conv, stride 1) and ``("M", stride)`` (2x2
max pool); ``("T",)`` marks a feature map the backbone returns (a tap).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgekit.models.layers import ConvBNAct, DarknetMaxPool, forward_taps, make_divisible


def scale_width(c: int, width: float) -> int:
    """Channels after a width multiplier (unchanged at 1.0, multiples of 8 otherwise).

    Example:
        >>> scale_width(1024, 0.5)
        512
    """
    return c if width == 1.0 else make_divisible(c * width, 8)


class PlainBackbone(nn.Module):
    """Convs and max pools in sequence, returning the tapped maps (finest first).

    Attributes:
        out_channels: channels of each returned map.
        strides: stride of each returned map.

    Example:
        >>> b = PlainBackbone([("C", 16, 3), ("M", 2), ("T",), ("C", 32, 3), ("M", 2), ("T",)])
        >>> b.out_channels, b.strides
        ([16, 32], [2, 4])
    """

    def __init__(self, spec: Sequence[tuple], in_channels: int = 3, bn: bool = True,
                 act: str = "leaky", width: float = 1.0):
        super().__init__()
        layers, self.taps, self.out_channels, self.strides = [], [], [], []
        c, stride = in_channels, 1
        for item in spec:
            if item[0] == "C":
                c_out = scale_width(item[1], width)
                layers.append(ConvBNAct(c, c_out, item[2], bn=bn, act=act))
                c = c_out
            elif item[0] == "M":
                layers.append(DarknetMaxPool(2, item[1]))
                stride *= item[1]
            elif item[0] == "T":
                self.taps.append(len(layers) - 1)
                self.out_channels.append(c)
                self.strides.append(stride)
            else:
                raise ValueError(f"bad backbone spec item {item}")
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return forward_taps(self.layers, self.taps, x)
