"""``--qat``: quantization-aware fine-tuning of a detector's activations, for models INT8 rounding hurts.

An INT8 export rounds the tensors between its integer ops to 256 levels over one range per
tensor (what a min/max calibrator measures): each conv's input, and each conv's own output, the
batch norm folded in, where the activation is a separate op (LeakyReLU in TFLite). Two things
then go wrong on some models: a conv whose filters are large while its output is small (taps
that cancel, typical of batch-norm-folded depthwise filters) multiplies its input's rounding
noise (``benchmarks/int8_input_noise.py`` finds them), and a pre-activation output whose range
is set by rare outliers leaves few levels for its usual values. No calibration method or float
layer fixes either while the tensors stay INT8. Training with the rounding in place lets the
weights move away from both.

During training steps, every conv's input and every conv's output (after its batch norm, where
one follows it) is rounded to 256 levels over a running min..max of that tensor (an exponential
average of the batches' ranges, as the export's calibration would see them), with the
straight-through gradient of ``torch.fake_quantize_per_tensor_affine``. The batch norms keep
their statistics (eval mode, affine parameters still trained), as in PyTorch's own QAT recipe:
the export folds the running statistics, and batch statistics of rounded activations would drift
from them. In eval mode (validation, export, the EMA copy) the hooks do nothing: checkpoints,
validation mAP and exports stay plain float, and the export's own INT8 gate judges the result.
Weights are not rounded: per-channel INT8 weights keep 43-50 dB on the models here
(``edgekit quant-report``'s ``weight_sqnr_db``), far above the activations' loss. Where a
converter fuses the activation into the conv (ReLU/ReLU6), rounding the pre-activation output
is one rounding more than the artifact has: a little more noise than needed, never less.
"""

from __future__ import annotations

import torch
from torch import nn


class Rounding:
    """One tensor rounded to 256 levels over a running min..max, in training steps only.

    Used as a conv's forward pre-hook (its input) and as a forward hook (its output).

    Example:
        >>> conv = nn.Conv2d(1, 1, 1).train()
        >>> x = torch.linspace(0, 1, 1000).view(1, 1, 1, 1000)
        >>> Rounding().pre(conv, (x,))[0].unique().numel(), Rounding().pre(conv.eval(), (x,))
        (256, None)
    """

    def __init__(self, momentum: float = 0.1):
        self.momentum = momentum
        self.lo: float | None = None
        self.hi: float | None = None

    def round(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = float(x.detach().min()), float(x.detach().max())
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            self.lo += self.momentum * (lo - self.lo)
            self.hi += self.momentum * (hi - self.hi)
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)  # zero exactly representable, as INT8 converters keep it
        if hi - lo < 1e-8:
            return x
        scale = (hi - lo) / 255.0
        zero = int(round(-lo / scale))
        return torch.fake_quantize_per_tensor_affine(x.float(), scale, zero, 0, 255).to(x.dtype)

    def pre(self, module: nn.Module, args: tuple):
        return (self.round(args[0]), *args[1:]) if module.training else None

    def post(self, module: nn.Module, args: tuple, output):
        return self.round(output) if module.training and isinstance(output, torch.Tensor) else None


def attach(model: nn.Module) -> list[nn.Module]:
    """Round every conv's input and output in training steps (see the module docstring).

    Returns the batch-norm layers, which the caller keeps in eval mode after each ``model.train()``
    (:func:`edgekit.train.freeze.keep_frozen_eval`).

    Example:
        >>> from edgekit.models import create_model
        >>> len(attach(create_model("mobilenetv2_050-yolo", num_classes=2))) > 0
        True
    """
    parents = {id(getattr(m, "conv", None)): m for m in model.modules()}
    norms = []
    for mod in model.modules():
        if not isinstance(mod, nn.Conv2d):
            continue
        mod.register_forward_pre_hook(Rounding().pre)
        bn = getattr(parents.get(id(mod)), "bn", None)  # edgekit's conv blocks: .conv then .bn
        if isinstance(bn, nn.BatchNorm2d):
            bn.register_forward_hook(Rounding().post)
            norms.append(bn)
        else:
            mod.register_forward_hook(Rounding().post)
    return norms
