"""One pruning step on the dependency graph: to a channel ratio, or down to a MAC budget.

Each step builds a fresh Torch-Pruning ``MetaPruner`` on the model as it is now (after the
previous step's fine-tuning), so a run can stop and resume between steps with nothing but
checkpoints. The DepGraph couples every layer whose channels must change together
(a conv's batch norm, the next conv's inputs, residual sums, concatenations, depthwise
groups); ``round_to`` keeps every pruned width a multiple of 8 or 16, the SIMD width that
int8 and fp32 kernels on a Cortex-A fill.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.errors import EdgekitError

FINE_STEPS = 50  # sub-steps of a MAC-budget step: each removes ~1.8 % of every prunable layer's channels
MAX_RATIO = 0.9  # no layer loses more than this fraction in one step


def make_pruner(model: nn.Module, imgsz: int, importance, ignored: list[nn.Module], ratio: float,
                round_to: int, iterative_steps: int = 1):
    """A Torch-Pruning MetaPruner over ``model``'s dependency graph (traced at ``imgsz``).

    Example:
        >>> from edgekit.models import create_model
        >>> from edgekit.prune.importance import make_importance
        >>> from edgekit.prune.protect import protected_layers
        >>> m = create_model("yolo-lite", num_classes=3, imgsz=64)
        >>> p = make_pruner(m, 64, make_importance("l2", m), protected_layers(m), 0.5, 8)
        >>> p.step(); m.backbone.layers[0].conv.out_channels
        8
    """
    import torch_pruning as tp

    return tp.pruner.MetaPruner(model, torch.zeros(1, 3, imgsz, imgsz), importance, pruning_ratio=ratio,
                                iterative_steps=iterative_steps, ignored_layers=ignored, round_to=round_to)


def figures(model, imgsz: int) -> dict:
    """Params and MACs of ``model`` at ``imgsz``.

    Example:
        >>> from edgekit.models import create_model
        >>> figures(create_model("yolo-lite", num_classes=3), 64)["macs"] > 0
        True
    """
    from edgekit.models.complexity import count_macs, count_params

    return {"params": count_params(model), "macs": count_macs(model, imgsz)}


def prunable_channels(model: nn.Module, ignored: list[nn.Module]) -> int:
    """Output channels of the convs that may shrink (heads and ``--ignore`` excluded).

    Example:
        >>> prunable_channels(nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 4, 1)), [])
        20
    """
    kept = {id(m) for layer in ignored for m in layer.modules()}
    return sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d) and id(m) not in kept)


def step_ratio(ratio: float, steps: int, k: int) -> float:
    """The ratio step ``k`` (1-based) removes from the model left by step ``k - 1``, so that ``steps``
    equal steps (of the original width) end at ``ratio`` overall.

    Example:
        >>> [round(step_ratio(0.5, 2, k), 3) for k in (1, 2)]
        [0.25, 0.333]
    """
    before, after = 1 - ratio * (k - 1) / steps, 1 - ratio * k / steps
    return 1 - after / before


def prune_by_ratio(model: nn.Module, imgsz: int, importance, ignored, ratio: float, round_to: int) -> None:
    """Remove ``ratio`` of every prunable layer's channels (rounded to ``round_to``), in place.

    Example:
        >>> prune_by_ratio(model, 320, imp, protected_layers(model), 0.2, 8)  # doctest: +SKIP
    """
    make_pruner(model, imgsz, importance, ignored, ratio, round_to).step()


def prune_to_macs(model: nn.Module, imgsz: int, importance, ignored, target_macs: int, round_to: int,
                  before_each=None) -> int:
    """Prune in small sub-steps until the model's MACs at ``imgsz`` are <= ``target_macs``; returns them.

    ``before_each`` (optional) runs before every sub-step, e.g. to refresh gradients for taylor.

    Raises:
        EdgekitError: the budget cannot be reached (too much protected, or ``round_to`` too coarse).

    Example:
        >>> prune_to_macs(model, 320, imp, protected_layers(model), 150_000_000, 8)  # doctest: +SKIP
        149310720
    """
    from edgekit.models.complexity import count_macs

    macs = count_macs(model, imgsz)
    pruner = make_pruner(model, imgsz, importance, ignored, MAX_RATIO, round_to, iterative_steps=FINE_STEPS)
    for _ in range(FINE_STEPS):
        if macs <= target_macs:
            break
        if before_each is not None:
            before_each()
        pruner.step()
        macs = count_macs(model, imgsz)
    if macs > target_macs:
        raise EdgekitError(f"cannot prune below {macs:,} MACs in one step (asked for {target_macs:,}): "
                           "ask for fewer MACs removed, more --steps, a smaller --round-to, or fewer --ignore layers")
    return macs
