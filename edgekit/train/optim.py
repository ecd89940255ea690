"""Optimisation pieces of the training engine: parameter groups, the LR schedule, EMA, one step.

Task-independent: :mod:`edgekit.train.engine` uses them for every task.
"""

from __future__ import annotations

import math
from copy import deepcopy

import torch
from torch import nn

from edgekit.errors import EdgekitError


class ModelEMA:
    """Exponential moving average of the weights (YOLOv5's: decay ramps up over ``tau`` updates).

    Example:
        >>> ema = ModelEMA(nn.Linear(2, 1))
        >>> ema.update(nn.Linear(2, 1)); ema.updates
        1
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0):
        self.ema = deepcopy(model).eval()
        self.decay, self.tau, self.updates = decay, tau, updates
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def update(self, model: nn.Module) -> None:
        """Blend ``model``'s current weights into the average (buffers such as BN counts are copied)."""
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        with torch.no_grad():
            for k, v in self.ema.state_dict().items():
                if v.dtype.is_floating_point:
                    v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
                else:
                    v.copy_(msd[k])


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: no weight decay on biases and normalisation weights.

    Example:
        >>> [len(g["params"]) for g in param_groups(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)), 5e-4)]
        [1, 3]
    """
    decay, no_decay = [], []
    for mod in model.modules():
        for name, p in mod.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            (no_decay if name == "bias" or isinstance(mod, nn.modules.batchnorm._BatchNorm) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def cosine_lr(it: int, total: int, warmup: int, lr: float) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` iterations, then cosine down to 1 % of it.

    Example:
        >>> [round(cosine_lr(i, 10, 2, 1.0), 3) for i in (0, 1, 2, 9)]
        [0.5, 1.0, 1.0, 0.048]
    """
    if it < warmup:
        return lr * (it + 1) / warmup
    frac = (it - warmup) / max(total - warmup, 1)
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))


def warmup_iters(warmup_epochs: float, batches_per_epoch: int, total: int) -> int:
    """Warm-up length in iterations: ``warmup_epochs`` worth, at most a third of the run.

    Example:
        >>> warmup_iters(2.0, 80, 800), warmup_iters(2.0, 8, 16)
        (160, 5)
    """
    return min(max(int(warmup_epochs * batches_per_epoch), 1), max(total // 3, 1))


def optimizer_step(model: nn.Module, optimizer, ema: ModelEMA, loss: torch.Tensor, epoch: int, hint: str) -> None:
    """Backward, clip, step and EMA update; a non-finite loss is a clear error (``hint`` says what to check).

    Example:
        >>> m = nn.Linear(2, 1); opt = torch.optim.SGD(m.parameters(), lr=0.1); ema = ModelEMA(m)
        >>> optimizer_step(m, opt, ema, m(torch.ones(1, 2)).sum(), 0, "check the data"); ema.updates
        1
    """
    if not torch.isfinite(loss):
        raise EdgekitError(f"the loss became {float(loss)} at epoch {epoch + 1}: lower --lr or {hint}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # the same cap for every task: one bad batch early in warm-up must not wreck the weights
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    optimizer.step()
    ema.update(model)
