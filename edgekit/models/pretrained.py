"""Pretrained starts from what users download: torchvision and timm MobileNetV2 state dicts.

``edgekit train --weights mobilenet_v2.pth`` (a plain state dict, loaded with
``weights_only=True``) is recognised by its key names, mapped onto edgekit's MobileNetV2
backbone (``backbone.features.*``), and the tensors that fit are transferred like any other
``--weights``; what was mapped and what was left (the 1280-channel head conv and the
ImageNet classifier, which edgekit's detector backbone does not have) is reported.

Key layouts (width 1.0 shown; any width maps, the shapes decide what fits):

- torchvision ``mobilenet_v2``: ``features.0.{0,1}`` stem conv/BN; ``features.1.conv.{0.0,0.1,1,2}``
  (t=1: depthwise conv/BN, project conv/BN); ``features.2-17.conv.{0.0,0.1,1.0,1.1,2,3}``
  (expand, depthwise, project); ``features.18``, ``classifier``.
- timm ``mobilenetv2_*``: ``conv_stem``, ``bn1``; ``blocks.0.0.{conv_dw,bn1,conv_pw,bn2}``;
  ``blocks.S.B.{conv_pw,bn1,conv_dw,bn2,conv_pwl,bn3}``; ``conv_head``, ``bn2``, ``classifier``.
"""

from __future__ import annotations

import re

from edgekit.errors import EdgekitError

# blocks per stage of MobileNetV2 (its SETTINGS), to turn timm's blocks.S.B into features.K
STAGE_BLOCKS = (1, 2, 3, 4, 3, 3, 1)
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def detect_format(state_dict: dict) -> str | None:
    """``"torchvision-mobilenetv2"``, ``"timm-mobilenetv2"`` or None.

    Example:
        >>> detect_format({"features.1.conv.0.0.weight": 0}), detect_format({"conv_stem.weight": 0, "blocks.0.0.conv_dw.weight": 0})
        ('torchvision-mobilenetv2', 'timm-mobilenetv2')
    """
    keys = set(state_dict)
    if "features.0.0.weight" in keys or "features.1.conv.0.0.weight" in keys:
        return "torchvision-mobilenetv2"
    if "conv_stem.weight" in keys and any(k.startswith("blocks.0.0.conv_dw") for k in keys):
        return "timm-mobilenetv2"
    return None


def _conv_bn(src_conv: str, src_bn: str, dst: str) -> dict[str, str]:
    m = {f"{src_conv}.weight": f"{dst}.conv.weight"}
    m.update({f"{src_bn}.{k}": f"{dst}.bn.{k}" for k in BN_KEYS})
    return m


def _name_map(fmt: str) -> dict[str, str]:
    """Source key -> edgekit key (``backbone.`` prefix) for every layer edgekit's backbone has."""
    out: dict[str, str] = {}
    if fmt == "torchvision-mobilenetv2":
        out.update(_conv_bn("features.0.0", "features.0.1", "features.0"))
        out.update(_conv_bn("features.1.conv.0.0", "features.1.conv.0.1", "features.1.block.0"))
        out.update(_conv_bn("features.1.conv.1", "features.1.conv.2", "features.1.block.1"))
        for k in range(2, 18):
            out.update(_conv_bn(f"features.{k}.conv.0.0", f"features.{k}.conv.0.1", f"features.{k}.block.0"))
            out.update(_conv_bn(f"features.{k}.conv.1.0", f"features.{k}.conv.1.1", f"features.{k}.block.1"))
            out.update(_conv_bn(f"features.{k}.conv.2", f"features.{k}.conv.3", f"features.{k}.block.2"))
    elif fmt == "timm-mobilenetv2":
        out.update(_conv_bn("conv_stem", "bn1", "features.0"))
        out.update(_conv_bn("blocks.0.0.conv_dw", "blocks.0.0.bn1", "features.1.block.0"))
        out.update(_conv_bn("blocks.0.0.conv_pw", "blocks.0.0.bn2", "features.1.block.1"))
        k = 2
        for stage in range(1, len(STAGE_BLOCKS)):
            for b in range(STAGE_BLOCKS[stage]):
                p = f"blocks.{stage}.{b}"
                out.update(_conv_bn(f"{p}.conv_pw", f"{p}.bn1", f"features.{k}.block.0"))
                out.update(_conv_bn(f"{p}.conv_dw", f"{p}.bn2", f"features.{k}.block.1"))
                out.update(_conv_bn(f"{p}.conv_pwl", f"{p}.bn3", f"features.{k}.block.2"))
                k += 1
    return {src: "backbone." + dst for src, dst in out.items()}


def map_state_dict(state_dict: dict) -> tuple[str, dict, dict]:
    """(format, edgekit-named tensors, report) of a downloaded state dict.

    The report has ``mapped`` (count), ``unused`` (source key prefixes left out, e.g. the
    classifier) and ``format``.

    Example:
        >>> import torch
        >>> fmt, sd, rep = map_state_dict({"features.0.0.weight": torch.zeros(32, 3, 3, 3), "classifier.1.weight": torch.zeros(2, 2)})
        >>> fmt, list(sd), rep["unused"]
        ('torchvision-mobilenetv2', ['backbone.features.0.conv.weight'], ['classifier.1'])
    """
    fmt = detect_format(state_dict)
    if fmt is None:
        sample = ", ".join(list(state_dict)[:3])
        raise EdgekitError(f"--weights: a state dict edgekit cannot map (keys like {sample}): give an edgekit "
                           "checkpoint, a torchvision or timm MobileNetV2 state dict, or Darknet .weights")
    names = _name_map(fmt)
    # BN's num_batches_tracked is a counter, not a weight: it would "fit" any width
    mapped = {names[k]: v for k, v in state_dict.items() if k in names and not k.endswith("num_batches_tracked")}
    unused = sorted({re.sub(r"\.(weight|bias|running_mean|running_var|num_batches_tracked)$", "", k)
                     for k in state_dict if k not in names})
    return fmt, mapped, {"format": fmt, "mapped": len(mapped), "unused": unused}


def unwrap_state_dict(obj) -> dict | None:
    """The tensor dict inside what ``torch.load`` returned (a bare state dict, or one under
    ``state_dict``/``model``/``model_state_dict``), or None when there is none.

    Example:
        >>> import torch
        >>> list(unwrap_state_dict({"state_dict": {"a": torch.zeros(1)}}))
        ['a']
    """
    import torch

    if not isinstance(obj, dict):
        return None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return tensors if tensors and len(tensors) == len(obj) else None
