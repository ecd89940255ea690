"""Layers whose output channels must not change: detection heads, grouped-route inputs, ``--ignore``.

A head conv's output channels are the ``A * (5 + C)`` the decoder reads; its input channels
may still shrink with the layer before it. A Darknet route with ``groups`` slices its input
by channel position, which a pruned input would shift, so the conv feeding it is kept too.
"""

from __future__ import annotations

import fnmatch

from torch import nn

from edgekit.errors import EdgekitError


def head_convs(model: nn.Module) -> list[nn.Module]:
    """The convs producing the raw head maps (seed detectors' ``head.convs``, Darknet's pre-[yolo] convs).

    Example:
        >>> from edgekit.models import create_model
        >>> len(head_convs(create_model("tiny-yolov3", num_classes=3)))
        2
    """
    from edgekit.models.darknet import DarknetModel, HeadOutput, Route

    if isinstance(model, DarknetModel):
        out = []
        for i, layer in enumerate(model.layers):
            if isinstance(layer, HeadOutput):
                out.append(model.layers[i - 1])
            if isinstance(layer, Route) and layer.groups > 1:
                out += [model.layers[j] for j in layer.sources]
        convs = [m for layer in out for m in layer.modules() if isinstance(m, nn.Conv2d)]
        if len(convs) < len(out):
            raise EdgekitError("a Darknet [yolo]/[region] layer or grouped route is not fed by a convolution: "
                               "this cfg cannot be pruned safely; pass its layers with --ignore or prune the torch model")
        return convs
    head = getattr(model, "head", None)
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)] if head is not None else []
    if not convs:
        raise EdgekitError(f"cannot find the detection head of {type(model).__name__}: "
                           "pruning needs a model from the registry or a Darknet cfg")
    return convs


def protected_layers(model: nn.Module, ignore: list[str] = ()) -> list[nn.Module]:
    """Head convs plus every module whose name matches an ``ignore`` pattern (shell wildcards).

    Example:
        >>> from edgekit.models import create_model
        >>> m = create_model("yolo-lite", num_classes=3)
        >>> len(protected_layers(m, ["backbone.layers.0*"]))
        4
    """
    kept = head_convs(model)
    names = dict(model.named_modules())
    for pattern in ignore:
        hits = [m for n, m in names.items() if n and fnmatch.fnmatch(n, pattern)]
        if not hits:
            some = ", ".join(n for n, m in names.items() if isinstance(m, nn.Conv2d))[:300]
            raise EdgekitError(f"--ignore '{pattern}' matches no layer of this model: its convs are {some}...")
        kept += hits
    return kept
