"""Channel counts of a structurally pruned model, stored in its checkpoint and re-applied on load.

A pruned model has the registry's layers with fewer channels. Its checkpoint keeps the
registry name and options (so it is still "mobilenetv2_050-yolo-p3") plus a JSON-able
``"pruned"`` map ``{module name: [in, out, groups]}`` (convs) or ``[features]`` (batch norms,
linears: ``[in, out]``). :func:`apply_channel_counts` resizes the freshly built model's
modules in place, the way Torch-Pruning itself edits them, before the state dict is loaded;
the weights then come from the checkpoint. No pickled module is ever needed, so a pruned
checkpoint loads with ``weights_only=True`` like any other.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Conv2d(16, 4, 1))
    >>> counts = {"0": [3, 8, 1], "1": [8], "2": [8, 4, 1]}
    >>> _ = apply_channel_counts(net, counts); channel_counts(net) == counts
    True
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.errors import EdgekitError

RESIZABLE = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


def _counts_of(m: nn.Module) -> list[int]:
    if isinstance(m, nn.Conv2d):
        return [m.in_channels, m.out_channels, m.groups]
    if isinstance(m, nn.BatchNorm2d):
        return [m.num_features]
    return [m.in_features, m.out_features]


def channel_counts(model: nn.Module, reference: nn.Module | None = None) -> dict[str, list[int]]:
    """``{name: counts}`` of every conv, batch norm and linear; with ``reference``, only those that differ.

    Example:
        >>> from torch import nn
        >>> channel_counts(nn.Sequential(nn.Conv2d(3, 8, 1)), nn.Sequential(nn.Conv2d(3, 16, 1)))
        {'0': [3, 8, 1]}
    """
    ref = dict(reference.named_modules()) if reference is not None else {}
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, RESIZABLE):
            counts = _counts_of(m)
            if name not in ref or _counts_of(ref[name]) != counts:
                out[name] = counts
    return out


def _resize(p: torch.Tensor | None, shape: tuple) -> torch.Tensor | None:
    if p is None:
        return None
    new = torch.zeros(shape, dtype=p.dtype)  # values come from the state dict loaded next
    return nn.Parameter(new, requires_grad=p.requires_grad) if isinstance(p, nn.Parameter) else new


def apply_channel_counts(model: nn.Module, counts: dict) -> nn.Module:
    """Resize ``model``'s convs, batch norms and linears in place to ``counts`` (see :func:`channel_counts`).

    Raises:
        EdgekitError: a name the model does not have, or counts of the wrong kind.

    Example:
        >>> from torch import nn
        >>> net = apply_channel_counts(nn.Sequential(nn.Conv2d(3, 16, 3)), {"0": [3, 8, 1]})
        >>> net[0].weight.shape
        torch.Size([8, 3, 3, 3])
    """
    modules = dict(model.named_modules())
    for name, c in counts.items():
        m = modules.get(name)
        want = 3 if isinstance(m, nn.Conv2d) else 1 if isinstance(m, nn.BatchNorm2d) else 2
        if not isinstance(m, RESIZABLE) or not isinstance(c, (list, tuple)) or len(c) != want \
                or not all(isinstance(v, int) and v >= 1 for v in c):
            raise EdgekitError(f"pruned channel counts name layer '{name}' ({c!r}), which this model does not have "
                               f"in that form: the checkpoint does not belong to this model version")
        if isinstance(m, nn.Conv2d):
            cin, cout, groups = c
            if cin % groups or cout % groups:
                raise EdgekitError(f"pruned layer '{name}': {cin} -> {cout} channels do not split into {groups} groups")
            m.in_channels, m.out_channels, m.groups = cin, cout, groups
            m.weight = _resize(m.weight, (cout, cin // groups, *m.kernel_size))
            m.bias = _resize(m.bias, (cout,))
        elif isinstance(m, nn.BatchNorm2d):
            (n,) = c
            m.num_features = n
            m.weight, m.bias = _resize(m.weight, (n,)), _resize(m.bias, (n,))
            m.running_mean, m.running_var = _resize(m.running_mean, (n,)), _resize(m.running_var, (n,))
        else:
            fin, fout = c
            m.in_features, m.out_features = fin, fout
            m.weight, m.bias = _resize(m.weight, (fout, fin)), _resize(m.bias, (fout,))
    return model
