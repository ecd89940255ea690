"""A detector from a Darknet ``.cfg``, registered as ``darknet``, so a cfg trains like any family.

``edgekit train --model yolov4-tiny.cfg`` stores the cfg's text in the checkpoint
(``model_kwargs["cfg"]``): the architecture travels with the weights and reloads with
``weights_only=True``, without the file. The cfg is adapted to the data the way Darknet users
edit it by hand: ``classes=`` of every ``[yolo]``/``[region]`` head, ``filters=`` of the conv
before it, the anchors (k-means ones replace the cfg's, each head keeping its count) and the
``[net]`` size. Without a cfg the factory builds the shipped ``yolov3-tiny.cfg``.

Darknet ``.weights`` (whole files or the first layers only, as ``darknet partial`` writes
``yolov4-tiny.conv.29``) start training through :func:`darknet_weights_state`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.models.anchors import split_anchors
from edgekit.models.darknet import DarknetModel, build_darknet, load_weights, reference_cfg
from edgekit.models.darknet_cfg import Section, parse_cfg_text
from edgekit.models.registry import register_model

HEADS = ("yolo", "region")
PARTIAL_NAME = re.compile(r"\.conv\.\d+$")  # darknet53.conv.74, yolov4-tiny.conv.29


def is_darknet_weights(path: str | Path) -> bool:
    """Whether ``path`` names Darknet weights (``.weights`` or a ``darknet partial`` file).

    Example:
        >>> is_darknet_weights("yolov4-tiny.conv.29"), is_darknet_weights("best.pt")
        (True, False)
    """
    name = Path(path).name
    return name.endswith(".weights") or bool(PARTIAL_NAME.search(name))


def _head_convs(sections: list[Section]) -> list[tuple[Section, Section]]:
    """(head, the conv feeding it) for every head; the conv must come right before it."""
    pairs = []
    for i, sec in enumerate(sections):
        if sec.kind in HEADS:
            prev = sections[i - 1]
            if prev.kind != "convolutional":
                raise sec.error("the layer before a head must be [convolutional] for edgekit to fit its filters "
                                "to the data's classes")
            pairs.append((sec, prev))
    if not pairs:
        raise sections[0].error("no [yolo] or [region] layer: edgekit trains detectors only")
    return pairs


def _anchors_per_head(head: Section) -> int:
    if head.kind == "yolo":
        return len(head.get_ints("mask", list(range(head.get_int("num", 1)))))
    return head.get_int("num", 1)


def adapt_cfg(text: str, num_classes: int, anchors=None, imgsz=None, source: str = "cfg") -> list[Section]:
    """The cfg's sections fitted to ``num_classes``, ``anchors`` (pixels: flat or per head) and ``imgsz``.

    Example:
        >>> secs = adapt_cfg(reference_cfg("yolov3-tiny.cfg").read_text(), 3, imgsz=128)
        >>> secs[0].get_int("width"), [s.get_int("classes") for s in secs if s.kind == "yolo"]
        (128, [3, 3])
    """
    sections = parse_cfg_text(text, source)
    net = sections[0]
    if imgsz is not None:
        h, w = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
        net.options.update(height=str(h), width=str(w))
    pairs = _head_convs(sections)
    for head, conv in pairs:
        head.options["classes"] = str(num_classes)
        conv.options["filters"] = str(_anchors_per_head(head) * (5 + num_classes))
    if anchors is not None:
        strides = build_darknet(sections).head_spec["strides"]  # per head, in cfg order
        counts = [_anchors_per_head(head) for head, _ in pairs]
        flat_given = all(np.ndim(p) == 1 for p in anchors)  # (n, 2) pairs, not per-head groups of pairs
        groups = split_anchors(anchors, strides, counts) if flat_given and len(anchors) == sum(counts) \
            else [[[float(w), float(h)] for w, h in g] for g in anchors] if not flat_given else [list(anchors)]
        if [len(g) for g in groups] != counts:
            raise EdgekitError(f"anchors per head {[len(g) for g in groups]} do not fit the cfg's heads {counts}")
        flat = [p for g in groups for p in g]
        start = 0
        for (head, _), g, stride in zip(pairs, groups, strides):
            if head.kind == "yolo":
                head.options["anchors"] = ", ".join(f"{w:g},{h:g}" for w, h in flat)
                head.options["mask"] = ",".join(str(start + k) for k in range(len(g)))
                head.options["num"] = str(len(flat))
            else:  # region anchors are in grid cells
                head.options["anchors"] = ", ".join(f"{w / stride:g},{h / stride:g}" for w, h in g)
                head.options["num"] = str(len(g))
            start += len(g)
    return sections


@register_model("darknet")
def darknet(num_classes: int = 80, anchors=None, cfg: str | None = None, imgsz=None,
            cfg_name: str | None = None) -> DarknetModel:
    """A detector built from Darknet cfg text (default: the shipped yolov3-tiny.cfg).

    Args:
        num_classes: the data's classes (the heads and their convs are fitted to them).
        anchors: None for the cfg's anchors; (n, 2) pixels split by size, or per head.
        cfg: the cfg file's text (stored in checkpoints as it is).
        imgsz: the input size (overrides ``[net]`` width/height).
        cfg_name: the file's name, for messages.

    Example:
        >>> m = darknet(num_classes=2, imgsz=64)
        >>> m.head_spec["strides"], m.head_spec["num_classes"]
        ([32, 16], 2)
    """
    text = cfg if cfg is not None else reference_cfg("yolov3-tiny.cfg").read_text()
    return build_darknet(adapt_cfg(text, num_classes, anchors, imgsz, cfg_name or "cfg"))


def darknet_weights_state(cfg_text: str, path: str | Path, source: str = "cfg") -> tuple[dict, dict]:
    """(state dict, report) of Darknet weights for the cfg as written (its own classes and size).

    A whole ``.weights`` file fills every conv layer; a ``darknet partial`` file (``*.conv.N``) fills
    the first ones, and only those are returned, so training takes exactly what the file holds.

    Example:
        >>> sd, rep = darknet_weights_state(open("yolov4-tiny.cfg").read(), "yolov4-tiny.conv.29")  # doctest: +SKIP
        >>> rep["layers"], rep["of"]  # doctest: +SKIP
        (21, 21)
    """
    model = build_darknet(parse_cfg_text(cfg_text, source))
    header = load_weights(model, path, partial=True)
    n_layers = header["layers"]
    convs = [i for i, m in enumerate(model.layers) if hasattr(m, "conv")]
    loaded = {f"layers.{i}." for i in convs[:n_layers]}
    sd = {k: v for k, v in model.state_dict().items() if any(k.startswith(p) for p in loaded)}
    return sd, {"layers": n_layers, "of": len(convs), "header": header}
