"""Parameter and MAC counts, measured by torch's own ``FlopCounterMode``.

FlopCounterMode counts 2 FLOPs per multiply-accumulate of convs and matmuls (grouped and
depthwise convs included) and ignores element-wise ops, the usual convention of papers
(Darknet's "BFLOPs", YOLO-LITE's 482 M FLOPs = 240 M MACs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BN running statistics are buffers and not counted).

    Example:
        >>> count_params(nn.Conv2d(3, 16, 3))
        448
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, imgsz: int | Sequence[int], in_channels: int = 3) -> int:
    """FLOPs (2 per MAC) of one forward pass on a 1 x C x H x W input.

    Example:
        >>> count_flops(nn.Conv2d(3, 16, 3, padding=1), 8)
        55296
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_channels, h, w))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def count_macs(model: nn.Module, imgsz: int | Sequence[int], in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass (FLOPs / 2) at ``imgsz`` (int or (h, w)).

    Example:
        >>> count_macs(nn.Conv2d(3, 16, 3, padding=1), 8)
        27648
    """
    return count_flops(model, imgsz, in_channels) // 2
