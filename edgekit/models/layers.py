"""Building blocks shared by the seed detectors and the Darknet loader.

Both paths build the same plain torch modules (conv + optional BN + activation, Darknet's
max pool), so a model trained here and one loaded from a ``.cfg`` export and quantize the
same way.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.errors import EdgekitError


class Mish(nn.Module):
    """Mish, x * tanh(softplus(x)) (YOLOv4). Written out so it exports to plain ops."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(nn.functional.softplus(x))


def make_activation(name: str) -> nn.Module:
    """Build an activation from its Darknet name.

    Args:
        name: one of linear, leaky (slope 0.1, as Darknet), relu, relu6, mish, swish,
            logistic, tanh, hardswish.

    Returns:
        The module (``nn.Identity`` for linear).

    Example:
        >>> make_activation("leaky")
        LeakyReLU(negative_slope=0.1)
    """
    name = name.strip().lower()
    table = {
        "linear": nn.Identity,
        "leaky": lambda: nn.LeakyReLU(0.1),
        "relu": nn.ReLU,
        "relu6": nn.ReLU6,
        "mish": Mish,
        "swish": nn.SiLU,
        "silu": nn.SiLU,
        "logistic": nn.Sigmoid,
        "tanh": nn.Tanh,
        "hardswish": nn.Hardswish,
    }
    if name not in table:
        raise EdgekitError(f"unsupported activation '{name}': use one of {', '.join(sorted(table))}")
    return table[name]()


class ConvBNAct(nn.Sequential):
    """Conv2d, then BatchNorm (when ``bn``; the conv then has no bias), then an activation.

    Children are named ``conv``, ``bn``, ``act`` so BN folding and pruning find them.

    Example:
        >>> m = ConvBNAct(3, 16, 3, act="leaky")
        >>> m(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 16, 32, 32])
    """

    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1, padding: int | None = None,
                 groups: int = 1, bn: bool = True, act: str = "leaky", bn_eps: float = 1e-5,
                 bn_momentum: float = 0.03):
        super().__init__()
        padding = k // 2 if padding is None else padding
        self.conv = nn.Conv2d(c_in, c_out, k, stride, padding, groups=groups, bias=not bn)
        if bn:
            self.bn = nn.BatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum)
        else:
            # no BN to renormalise: torch's default init shrinks the signal ~2x per layer (std
            # 0.014 after YOLO-LITE's six convs), so the head sees almost nothing and training
            # stalls (test mAP 0.000 after 10 epochs). He-normal for the activation instead, as
            # Darknet itself initialises (scale sqrt(2 / fan_in)): std ~1.
            slope = 0.1 if act == "leaky" else 0.0
            nn.init.kaiming_normal_(self.conv.weight, a=slope, mode="fan_in", nonlinearity="leaky_relu")
            nn.init.zeros_(self.conv.bias)
        self.act = make_activation(act)


class DarknetMaxPool(nn.Module):
    """Max pool with Darknet's padding: ``padding`` (default size-1) split left/top first.

    Darknet (and OpenCV's importer) pad ``padding // 2`` before and the rest after, and the
    padded cells never win the max (they act as -inf). Output size is
    ``(n + padding - size) // stride + 1``, e.g. 13 -> 13 for size 2 stride 1, 13 -> 7 for
    size 2 stride 2.

    Symmetric padding is ``MaxPool2d(padding=p)`` (torch pads with -inf too). Otherwise the
    input gets an edge-replicating pad of only what Darknet's windows reach, worked out
    from the (static) input size: none for a 2x2/2 pool on an even map, so exported graphs
    of the usual sizes hold a bare MaxPool; one row and column for Tiny-YOLO's 2x2/1 pool.
    Replicating the border equals -inf padding for a max (every window reaching into the
    pad also holds the border cell) and, unlike a zero pad, keeps Darknet's numbers where
    activations are negative, as leaky ReLU outputs are.

    Example:
        >>> DarknetMaxPool(2, 1)(torch.zeros(1, 8, 13, 13)).shape
        torch.Size([1, 8, 13, 13])
    """

    def __init__(self, size: int = 2, stride: int = 2, padding: int | None = None):
        super().__init__()
        padding = size - 1 if padding is None else padding
        self.size, self.stride, self.padding = size, stride, padding
        self.before = padding // 2
        if padding - self.before > size - 1:
            # a window made of padding only would output -inf
            raise EdgekitError(f"maxpool padding {padding} too large for size {size}")
        self.symmetric = 2 * self.before == padding and self.before <= size // 2
        self.pool = nn.MaxPool2d(size, stride, self.before if self.symmetric else 0)

    def out_size(self, n: int) -> int:
        """Output length along one axis for input length ``n`` (Darknet's formula)."""
        return (n + self.padding - self.size) // self.stride + 1

    def _after(self, n: int) -> int:
        return max(0, (self.out_size(n) - 1) * self.stride + self.size - n - self.before)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.symmetric:
            return self.pool(x)
        pad_h, pad_w = self._after(int(x.shape[-2])), self._after(int(x.shape[-1]))
        if self.before or pad_h or pad_w:
            x = nn.functional.pad(x, (self.before, pad_w, self.before, pad_h), mode="replicate")
        return self.pool(x)


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10 %.

    Same rule as the MobileNet reference code, so width multipliers give the usual widths.

    Example:
        >>> make_divisible(32 * 0.35)
        16
    """
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def forward_taps(layers, taps, x: torch.Tensor) -> list[torch.Tensor]:
    """Run ``layers`` in order and return the outputs of the layers whose index is in ``taps``.

    Example:
        >>> forward_taps([nn.Identity(), nn.ReLU()], [0, 1], torch.tensor([-1.0]))
        [tensor([-1.]), tensor([0.])]
    """
    feats = []
    for i, layer in enumerate(layers):
        x = layer(x)
        if i in taps:
            feats.append(x)
    return feats
