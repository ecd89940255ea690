"""Channel importance: which channels of a coupled group go first.

``l1``/``l2``: the norm of each channel's weights across the whole group (every coupled layer
votes); ``taylor``: |weight x gradient| of the detection loss on a few training batches (what
removing the channel would cost the loss, to first order); ``bn-scale``: |gamma| of the batch
norms (Network Slimming). A model without batch norms (YOLO-LITE) has no gamma to rank by:
``bn-scale`` is refused for it with one line rather than silently ranking nothing.
"""

from __future__ import annotations

from torch import nn

from edgekit.errors import EdgekitError


def has_batchnorm(model: nn.Module) -> bool:
    """True when ``model`` holds at least one BatchNorm2d.

    Example:
        >>> from edgekit.models import create_model
        >>> has_batchnorm(create_model("yolo-lite", num_classes=3)), has_batchnorm(create_model("tiny-yolov2", num_classes=3))
        (False, True)
    """
    return any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def make_importance(name: str, model: nn.Module):
    """The Torch-Pruning importance for ``name`` (l1, l2, taylor, bn-scale), checked against ``model``.

    Example:
        >>> from edgekit.models import create_model
        >>> type(make_importance("l2", create_model("yolo-lite", num_classes=3))).__name__
        'GroupMagnitudeImportance'
    """
    import torch_pruning as tp

    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "taylor":
        return tp.importance.GroupTaylorImportance()
    if name == "bn-scale":
        if not has_batchnorm(model):
            raise EdgekitError("--importance bn-scale ranks channels by batch-norm scales, and this model has no "
                               "batch norm (e.g. yolo-lite): use --importance l2 or taylor")
        return tp.importance.BNScaleImportance()
    raise EdgekitError(f"unknown --importance '{name}': use l1, l2, taylor or bn-scale")


def accumulate_gradients(model: nn.Module, loss_fn, batches) -> int:
    """Fill ``.grad`` of ``model`` with the detection loss summed over ``batches`` (for ``taylor``); returns the count.

    Example:
        >>> accumulate_gradients(model, loss_fn, islice(loader, 4))  # doctest: +SKIP
        4
    """
    model.zero_grad(set_to_none=True)
    model.train()
    n = 0
    for batch in batches:
        loss, _ = loss_fn(model, batch)
        loss.backward()
        n += 1
    model.eval()
    return n
