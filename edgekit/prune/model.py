"""``prune_model``: one pruning step on any detector module, registered or built from a Darknet cfg.

The building block under :func:`edgekit.prune.prune` for models that have no edgekit
checkpoint to fine-tune (a Darknet ``.cfg`` + ``.weights``): the module is pruned in place
and keeps its forward contract (same outputs, same ``head_spec``).
"""

from __future__ import annotations

from torch import nn

from edgekit.errors import EdgekitError


def prune_model(model: nn.Module, imgsz: int, ratio: float | None = None, target_macs: int | None = None,
                importance: str = "l2", round_to: int = 8, ignore=()) -> nn.Module:
    """Remove channels from ``model`` in place: ``ratio`` of every prunable layer's, or down to ``target_macs``.

    ``taylor`` importance reads the gradients already in ``model`` (run a backward pass first).

    Example:
        >>> from edgekit.models import count_macs, load_darknet
        >>> from edgekit.models.darknet import reference_cfg
        >>> m = load_darknet(reference_cfg("yolov3-tiny.cfg")).eval()
        >>> before = count_macs(m, 64)
        >>> count_macs(prune_model(m, 64, ratio=0.5), 64) < before
        True
    """
    from edgekit.prune.importance import make_importance
    from edgekit.prune.protect import protected_layers
    from edgekit.prune.schedule import prune_by_ratio, prune_to_macs

    if (ratio is None) == (target_macs is None):
        raise EdgekitError("give exactly one of ratio and target_macs")
    if importance == "taylor" and not any(p.grad is not None for p in model.parameters()):
        raise EdgekitError("--importance taylor needs gradients: run a backward pass of the loss first, or use l1/l2")
    ignored = protected_layers(model, list(ignore))
    imp = make_importance(importance, model)
    model.eval()
    if ratio is not None:
        prune_by_ratio(model, imgsz, imp, ignored, ratio, round_to)
    else:
        prune_to_macs(model, imgsz, imp, ignored, int(target_macs), round_to)
    return model
