"""MobileNetV2 backbone (Sandler et al., arXiv 1801.04381): inverted residuals, ReLU6.

Each block expands 1x1 (ReLU6), filters depthwise 3x3 (ReLU6), projects 1x1 (linear), and
adds its input when shapes allow. The width multiplier scales every layer (multiples of 8,
as the reference). The backbone ends at the 320-channel block: the 1280-channel conv
serves ImageNet classification and would double the cost of a small detector.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.models.layers import ConvBNAct, forward_taps, make_divisible

# (expansion t, channels c, repeats n, first stride s), Table 2 of the paper
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
            (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1, linear); residual when stride 1 and c_in == c_out.

    Example:
        >>> InvertedResidual(16, 16, 1, 6)(torch.zeros(1, 16, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        layers = [] if expand == 1 else [ConvBNAct(c_in, hidden, 1, act="relu6")]
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act="relu6"),
                   ConvBNAct(hidden, c_out, 1, act="linear")]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 features, returning the maps at ``out_strides`` (the last block at each stride).

    Args:
        width: width multiplier (0.35, 0.5, 0.75, 1.0 are the published ones).
        in_channels: image channels.
        out_strides: which strides to return, from 4, 8, 16, 32; default the ends of the 96
            and 320 stages (16, 32). Stride 8 (end of the 32 stage) serves objects of a few pixels.

    Attributes:
        out_channels: channels of the returned maps.
        strides: the returned strides, ascending.

    Example:
        >>> b = MobileNetV2(0.5)
        >>> b.out_channels, b.strides
        ([48, 160], [16, 32])
        >>> MobileNetV2(0.5, out_strides=(8, 16, 32)).out_channels
        [16, 48, 160]
    """

    def __init__(self, width: float = 1.0, in_channels: int = 3, out_strides=(16, 32)):
        super().__init__()
        stage_strides = [2]
        for _, _, _, s in SETTINGS:
            stage_strides.append(stage_strides[-1] * s)
        stage_strides = stage_strides[1:]
        bad = sorted(set(out_strides) - set(stage_strides))
        if bad:
            raise ValueError(f"MobileNetV2 has no stage at stride {bad}: choose from {sorted(set(stage_strides))}")
        # the last stage at each wanted stride
        wanted = {max(i for i, st in enumerate(stage_strides) if st == s) for s in out_strides}
        c = make_divisible(32 * width, 8)
        layers: list[nn.Module] = [ConvBNAct(in_channels, c, 3, 2, act="relu6")]
        self.taps, self.out_channels, self.strides = [], [], []
        for k, (t, ch, n, s) in enumerate(SETTINGS):
            c_out = make_divisible(ch * width, 8)
            for i in range(n):
                layers.append(InvertedResidual(c, c_out, s if i == 0 else 1, t))
                c = c_out
            if k in wanted:
                self.taps.append(len(layers) - 1)
                self.out_channels.append(c)
                self.strides.append(stage_strides[k])
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return forward_taps(self.features, self.taps, x)
