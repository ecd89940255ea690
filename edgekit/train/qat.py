"""``--qat``: quantization-aware fine-tuning of a detector's activations, for models INT8 rounding hurts.

An INT8 export rounds every conv's input to 256 levels over one range per tensor (what a min/max
calibrator measures). A conv whose filters are large while its output is small (taps that cancel,
typical of batch-norm-folded depthwise filters) multiplies that rounding noise:
``benchmarks/int8_input_noise.py`` finds such layers, and no calibration method or float layer
fixes them while their input stays INT8. Training with the rounding in place lets the weights
move away from it.

During training steps, a forward pre-hook on every ``Conv2d`` rounds the conv's input to 256 levels
over a running min..max of that input (an exponential average of the batches' ranges, as the
export's calibration would see them), with the straight-through gradient of
``torch.fake_quantize_per_tensor_affine``. In eval mode (validation, export, the EMA copy), the hooks
do nothing: checkpoints, validation mAP and exports stay plain float, and the export's own INT8
gate judges the result. Weights are not rounded: per-channel INT8 weights keep 43-50 dB on the
models here (``edgekit quant-report``'s ``weight_sqnr_db``), far above the activations' loss.
"""

from __future__ import annotations

import torch
from torch import nn


class InputRounding:
    """The pre-hook of one conv: its input rounded to 256 levels over a running min..max, in training only.

    Example:
        >>> conv = nn.Conv2d(1, 1, 1).train()
        >>> x = torch.linspace(0, 1, 1000).view(1, 1, 1, 1000)
        >>> InputRounding()(conv, (x,))[0].unique().numel(), InputRounding()(conv.eval(), (x,))
        (256, None)
    """

    def __init__(self, momentum: float = 0.1):
        self.momentum = momentum
        self.lo: float | None = None
        self.hi: float | None = None

    def __call__(self, module: nn.Module, args: tuple):
        if not module.training:
            return None
        x = args[0]
        lo, hi = float(x.detach().min()), float(x.detach().max())
        if self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            self.lo += self.momentum * (lo - self.lo)
            self.hi += self.momentum * (hi - self.hi)
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)  # zero exactly representable, as INT8 converters keep it
        if hi - lo < 1e-8:
            return None
        scale = (hi - lo) / 255.0
        zero = int(round(-lo / scale))
        rounded = torch.fake_quantize_per_tensor_affine(x.float(), scale, zero, 0, 255).to(x.dtype)
        return (rounded, *args[1:])


def attach(model: nn.Module) -> int:
    """Round every ``Conv2d``'s input in training steps (see the module docstring); returns how many convs.

    Example:
        >>> from edgekit.models import create_model
        >>> attach(create_model("yolo-lite", num_classes=2)) > 0
        True
    """
    n = 0
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            mod.register_forward_pre_hook(InputRounding())
            n += 1
    return n
