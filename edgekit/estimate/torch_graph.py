"""Per-op features of a torch module: every aten op of one forward pass, recorded with its shapes.

A ``TorchDispatchMode`` (the mechanism behind torch's own ``FlopCounterMode``, which
:func:`edgekit.models.complexity.count_macs` uses) sees each aten op with its real tensors, so
functional ops (``torch.cat``, residual adds, channel shuffles) are counted as well as modules.
MACs follow the same convention as ``count_macs`` (one per multiply-accumulate; a test checks the
two agree). Ops whose inputs all come from the current convolution group (its bias, batch norm,
activation, SiLU's ``x * sigmoid(x)``) are fused into it, as runtimes do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from edgekit.estimate.layers import Layer, conv_kind

# aten op names (overload packet) by what they cost; anything not listed costs nothing (views, shapes)
_GEMM = {"addmm", "mm", "bmm", "matmul", "linear"}
_POOL = {"max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d", "mean", "_adaptive_avg_pool2d",
         "adaptive_max_pool2d"}
_MEMORY = {"cat", "stack", "upsample_nearest2d", "upsample_bilinear2d", "_upsample_nearest_exact2d", "clone",
           "constant_pad_nd", "copy_", "_to_copy", "pixel_shuffle", "channel_shuffle", "repeat"}
_ELEMENTWISE = {"add", "add_", "mul", "mul_", "sub", "div", "relu", "relu_", "leaky_relu", "leaky_relu_", "hardtanh",
                "hardtanh_", "sigmoid", "silu", "silu_", "hardswish", "hardswish_", "hardsigmoid", "clamp", "clamp_",
                "tanh", "exp", "softmax", "_softmax", "native_batch_norm", "_native_batch_norm_legit_no_training",
                "batch_norm", "elu", "gelu", "mish", "softplus", "where", "maximum", "minimum", "neg", "pow"}


def _ptr(t) -> int | None:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, AttributeError):
        return None


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.layers: list[Layer] = []
        self.group: set[int] = set()  # storages written by the current convolution group (for fusion)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        ins = [t for t in tree_flatten((args, kwargs or {}))[0] if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        out_elems = sum(t.numel() for t in outs[:1])
        if name == "convolution":
            x, w = args[0], args[1]
            groups = int(args[8])
            macs = outs[0].numel() * (w.shape[1]) * int(torch.tensor(w.shape[2:]).prod())
            kind = conv_kind(x.shape[1], groups, tuple(w.shape[2:]), tuple(args[3]), w.shape[0], tuple(args[5]))
            self._add(Layer(kind, int(macs), w.numel(), x.numel(), out_elems, name), outs, new_group=True)
        elif name in _GEMM:
            mats = [t for t in ins if t.dim() >= 2]
            if len(mats) >= 2:
                a, b = mats[-2], mats[-1]
                macs = outs[0].numel() * a.shape[-1]
                self._add(Layer("pointwise", int(macs), b.numel(), a.numel(), out_elems, name), outs, new_group=True)
        elif name in _POOL:
            self._add(Layer("pool", 0, 0, ins[0].numel(), out_elems, name), outs, new_group=False)
        elif name in _MEMORY:
            if name in ("_to_copy", "copy_", "clone") and outs and outs[0].dtype != torch.float32:
                return out
            self._add(Layer("memory", 0, 0, sum(t.numel() for t in ins if t.dim() > 1), out_elems, name), outs,
                      new_group=False)
        elif name in _ELEMENTWISE:
            acts = [t for t in ins if t.dim() > 1]  # parameters of a batch norm or a bias are 1-D
            if acts and all(_ptr(t) in self.group for t in acts):
                self.group.update(p for p in map(_ptr, outs) if p is not None)  # fused into the conv
            else:
                self._add(Layer("elementwise", 0, 0, sum(t.numel() for t in acts), out_elems, name), outs,
                          new_group=False)
        return out

    def _add(self, layer: Layer, outs, new_group: bool) -> None:
        self.layers.append(layer)
        self.group = {p for p in map(_ptr, outs) if p is not None} if new_group else set()


def torch_layers(model: torch.nn.Module, imgsz: int | Sequence[int], in_channels: int = 3) -> list[Layer]:
    """The fused per-op :class:`Layer` list of one forward pass of ``model`` on a 1 x C x H x W input.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        >>> [(x.kind, x.macs) for x in torch_layers(net.eval(), 8)]
        [('conv', 13824), ('pool', 0)]
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    was_training = model.training
    model.eval()
    rec = _Recorder()
    try:
        with torch.no_grad(), rec:
            model(torch.zeros(1, in_channels, h, w))
    finally:
        model.train(was_training)
    return rec.layers
