"""``--freeze``: train only the layers after a pretrained start, the rest kept as they are.

Two spellings, as users bring them:

- ``N``: the first N layers of a Darknet cfg (its layer indices, as a ``yolov4-tiny.conv.29``
  partial file holds the first 29), for a model built from a ``.cfg``;
- ``backbone``: the ``backbone`` module of a registry model (MobileNetV2, the Tiny-YOLO trunks...).

Frozen layers get no gradient (autograd stops before them, so a step also costs less) and
their batch-norm layers stay in eval mode: their running statistics are the pretrained ones,
not re-estimated from a few fine-tuning batches.
"""

from __future__ import annotations

from torch import nn

from edgekit.errors import EdgekitError


def parse_freeze(text: str) -> int | str:
    """``--freeze``'s value: a layer count or ``backbone``.

    Example:
        >>> parse_freeze("109"), parse_freeze("backbone")
        (109, 'backbone')
    """
    if text == "backbone":
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise EdgekitError(f"--freeze {text}: give a number of Darknet cfg layers (e.g. 29) or 'backbone'")


def frozen_modules(model: nn.Module, spec: int | str) -> list[nn.Module]:
    """The modules ``spec`` freezes in ``model`` (one clear error when it does not fit the model).

    Example:
        >>> from edgekit.models import create_model
        >>> m = create_model("yolo-lite", num_classes=2)
        >>> frozen_modules(m, "backbone") == [m.backbone]
        True
    """
    from edgekit.models.darknet import DarknetModel, HeadOutput

    if isinstance(model, DarknetModel):
        if spec == "backbone":
            raise EdgekitError("a Darknet cfg names no backbone: give --freeze N to freeze its first N layers "
                               "(e.g. the N of a .conv.N partial weights file)")
        first_head = next(i for i, layer in enumerate(model.layers) if isinstance(layer, HeadOutput))
        if spec >= first_head:
            raise EdgekitError(f"--freeze {spec} reaches the cfg's first [yolo]/[region] layer ({first_head}): the "
                               f"detection heads must train on your classes; give N below {first_head}")
        return list(model.layers[:spec])
    if spec != "backbone":
        raise EdgekitError(f"--freeze {spec} counts Darknet cfg layers; {type(model).__name__} is a registry model: "
                           "use --freeze backbone")
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise EdgekitError(f"{type(model).__name__} has no backbone module to freeze: drop --freeze")
    return [backbone]


def freeze(model: nn.Module, spec: int | str | None) -> list[nn.Module]:
    """Stop the gradients of the modules ``spec`` names; returns them (see :func:`keep_frozen_eval`).

    Example:
        >>> from edgekit.models import create_model
        >>> m = create_model("yolo-lite", num_classes=2)
        >>> mods = freeze(m, "backbone")
        >>> any(p.requires_grad for p in m.backbone.parameters()), all(p.requires_grad for p in m.head.parameters())
        (False, True)
    """
    if spec is None:
        return []
    mods = frozen_modules(model, spec)
    for mod in mods:
        for p in mod.parameters():
            p.requires_grad_(False)
    return mods


def keep_frozen_eval(modules: list[nn.Module]) -> None:
    """After ``model.train()``: the frozen modules' batch-norm and dropout layers back in eval mode.

    Only those: batch-norm keeps its pretrained statistics, dropout stops dropping features
    nothing will learn from. Other layers keep their train-mode behaviour.

    Example:
        >>> block = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
        >>> keep_frozen_eval([block]); block[1].training
        False
    """
    for mod in modules:
        for sub in mod.modules():
            if isinstance(sub, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
                sub.eval()
