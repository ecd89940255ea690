"""A pruned Darknet model written back as Darknet files: ``.cfg`` with the new filter counts + ``.weights``.

Darknet's cfg is the architecture, so a pruned model needs no new format: each
``[convolutional]`` section gets its pruned ``filters=`` (and ``groups=`` for depthwise
convs); the weights file follows the cfg's layer order as Darknet reads it. Both files run
in Darknet, OpenCV's DNN module and ``edgekit export pruned.cfg --weights pruned.weights``.
"""

from __future__ import annotations

import re
from pathlib import Path

from torch import nn


def pruned_cfg_text(cfg_text: str, model) -> str:
    """``cfg_text`` with ``filters=``/``groups=`` of every ``[convolutional]`` section set from ``model``.

    Example:
        >>> from edgekit.models import load_darknet
        >>> from edgekit.models.darknet import reference_cfg
        >>> text = reference_cfg("yolov3-tiny.cfg").read_text()
        >>> pruned_cfg_text(text, load_darknet(reference_cfg("yolov3-tiny.cfg"))) == text
        True
    """
    out, section, kind = [], -1, None
    for line in cfg_text.splitlines(keepends=True):
        s = line.strip()
        if s.startswith("["):
            section += 1
            kind = s.strip("[]").strip().lower()
        elif kind in ("convolutional", "conv") and "=" in s and not s.startswith(("#", ";")):
            key = s.split("=", 1)[0].strip().lower()
            conv = next(m for m in model.layers[section - 1].modules() if isinstance(m, nn.Conv2d))
            value = {"filters": conv.out_channels, "groups": conv.groups}.get(key)
            if value is not None:
                line = re.sub(r"=\s*[^#;\s]+", f"={value}", line, count=1)
        out.append(line)
    return "".join(out)


def write_pruned_darknet(cfg: Path, model, out: Path) -> tuple[Path, Path]:
    """Write ``out/pruned.cfg`` and ``out/pruned.weights`` for the pruned Darknet ``model`` built from ``cfg``.

    Example:
        >>> write_pruned_darknet(Path("yolov3-tiny.cfg"), model, Path("runs/prune/yolov3-tiny"))  # doctest: +SKIP
        (PosixPath('runs/prune/yolov3-tiny/pruned.cfg'), PosixPath('runs/prune/yolov3-tiny/pruned.weights'))
    """
    from edgekit.io import atomic_write_bytes
    from edgekit.models.darknet import save_darknet_weights

    out.mkdir(parents=True, exist_ok=True)
    cfg_out = atomic_write_bytes(out / "pruned.cfg", pruned_cfg_text(Path(cfg).read_text(), model).encode())
    return Path(cfg_out), save_darknet_weights(model, out / "pruned.weights")
