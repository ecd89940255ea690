"""Darknet ``.cfg`` + ``.weights`` to a plain torch module with the seed models' contract.

The built module returns the raw maps that feed each ``[yolo]``/``[region]`` layer and
carries the same ``head_spec`` as the registered detectors, so decoding, validation and
export are shared. Layers: convolutional (groups, batch_normalize, activations), maxpool
(Darknet's padding, stride 1 included), route (several layers, negative or absolute,
``groups``/``group_id``), shortcut, upsample, reorg (YOLOv2's passthrough, Darknet's own element
order), avgpool (global), dropout (identity), yolo, region. Anything else is refused with the line
it is on.

The input is resized as the cfg's ``[net]`` says: Darknet stretches the image to width x height
(each axis on its own, no padding) unless ``letterbox=1``; the model's ``resize`` carries that
(``"stretch"`` or ``"letterbox"``) into training, validation, checkpoints and export manifests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.models.darknet_cfg import Section, read_cfg
from edgekit.models.detector import HeadSpecMixin, make_head_spec
from edgekit.models.layers import ConvBNAct, DarknetMaxPool, make_activation

BN_EPS = 1e-6  # Darknet's epsilon (OpenCV's importer uses it too)


class Route(nn.Module):
    """Concatenation of earlier outputs, each optionally cut to one channel group."""

    def __init__(self, sources: list[int], groups: int = 1, group_id: int = 0, channels: list[int] = ()):
        super().__init__()
        self.sources, self.groups, self.group_id = sources, groups, group_id
        self.parts = [(c // groups * group_id, c // groups * (group_id + 1)) for c in channels]

    def forward(self, cache: dict[int, torch.Tensor]) -> torch.Tensor:
        xs = [cache[j] if self.groups == 1 else cache[j][:, a:b] for j, (a, b) in zip(self.sources, self.parts)]
        return xs[0] if len(xs) == 1 else torch.cat(xs, 1)


class Shortcut(nn.Module):
    """Residual sum of the previous output and earlier ones, then an activation."""

    def __init__(self, sources: list[int], activation: str = "linear"):
        super().__init__()
        self.sources = sources
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor, cache: dict[int, torch.Tensor]) -> torch.Tensor:
        for j in self.sources:
            x = x + cache[j]
        return self.act(x)


class Reorg(nn.Module):
    """Darknet's ``[reorg]`` (space-to-depth of YOLOv2's passthrough) with Darknet's element order.

    Darknet's ``reorg_cpu(..., forward=0)`` is not a plain space-to-depth: it reads the input
    buffer as ``(C/s², H·s, W·s)``, gathers each ``s x s`` phase into a channel block of an
    ``(C, H, W)`` buffer, and that buffer is the ``(C·s², H/s, W/s)`` output. Pretrained YOLOv2
    weights expect exactly this order (OpenCV DNN reproduces it), so it is copied as is.

    Example:
        >>> Reorg(2)(torch.zeros(1, 64, 26, 26)).shape
        torch.Size([1, 256, 13, 13])
    """

    def __init__(self, stride: int = 2):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.stride
        y = x.reshape(b, c // (s * s), h, s, w, s).permute(0, 3, 5, 1, 2, 4)  # [b, dy, dx, c2, j, i]
        return y.reshape(b, c * s * s, h // s, w // s)


class HeadOutput(nn.Identity):
    """Marks a ``[yolo]``/``[region]`` layer: its input is returned as a raw output."""


class DarknetModel(HeadSpecMixin, nn.Module):
    """A network built from a Darknet cfg; forward returns the raw head maps.

    Attributes:
        head_spec: decoding metadata, same schema as the registered models.
        layers: one module per cfg section after ``[net]`` (indices match Darknet's).
        resize: ``"stretch"`` (Darknet's default) or ``"letterbox"`` (``letterbox=1`` in ``[net]``).
    """

    def __init__(self, layers: list[nn.Module], keep: set[int], head_spec: dict, source: str = "",
                 resize: str = "stretch"):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.keep = sorted(keep)
        self.head_spec = head_spec
        self.source = source
        self.resize = resize

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        cache: dict[int, torch.Tensor] = {}
        outputs = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Route):
                x = layer(cache)
            elif isinstance(layer, Shortcut):
                x = layer(x, cache)
            elif isinstance(layer, HeadOutput):
                outputs.append(x)
            else:
                x = layer(x)
            if i in self.keep:
                cache[i] = x
        return outputs


def _sources(sec: Section, key: str, i: int, heads: set[int]) -> list[int]:
    out = []
    for j in sec.get_ints(key):
        k = i + j if j < 0 else j
        if not 0 <= k < i:
            raise sec.error(f"{key}={j} points to layer {k}, but only layers 0..{i - 1} come before it")
        if k in heads:
            # our head layers pass raw maps through, Darknet's would pass decoded ones
            raise sec.error(f"{key}={j} reads the output of a [yolo]/[region] layer: not supported")
        out.append(k)
    if not out:
        raise sec.error(f"{key}= is empty")
    return out


def build_darknet(sections: list[Section]) -> DarknetModel:
    """Build the torch module for parsed cfg sections (random weights).

    Shapes are followed through the net at the ``[net]`` size, so a wrong route, a conv
    before ``[yolo]`` with the wrong filter count or a size mismatch fails here, naming
    the line, rather than in the forward pass.

    Example:
        >>> from edgekit.models.darknet_cfg import parse_cfg_text
        >>> cfg = "[net]\\nwidth=64\\nheight=64\\n[convolutional]\\nfilters=18\\nsize=1\\n"
        >>> cfg += "[yolo]\\nmask=0,1,2\\nanchors=10,10,20,20,30,30\\nclasses=1\\nnum=3\\n"
        >>> build_darknet(parse_cfg_text(cfg)).head_spec["strides"]
        [1]
    """
    net, body = sections[0], sections[1:]
    c, h, w = net.get_int("channels", 3), net.get_int("height"), net.get_int("width")
    if min(c, h, w) < 1:
        raise net.error("width, height and channels must be >= 1")
    layers: list[nn.Module] = []
    shapes: list[tuple[int, int, int]] = []
    keep: set[int] = set()
    heads: list[dict] = []
    head_idx: set[int] = set()
    for i, sec in enumerate(body):
        kind = sec.kind
        if kind == "convolutional":
            n, k = sec.get_int("filters", 1), sec.get_int("size", 1)
            stride = sec.get_int("stride", 1)
            if sec.get_int("stride_x", stride) != stride or sec.get_int("stride_y", stride) != stride:
                raise sec.error("different stride_x and stride_y are not supported")
            groups = sec.get_int("groups", 1)
            pad = k // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)
            if sec.get_int("dilation", 1) != 1 or sec.get_int("antialiasing", 0) or "share_index" in sec.options:
                raise sec.error("dilation, antialiasing and share_index are not supported")
            if n < 1 or k < 1 or stride < 1 or groups < 1 or c % groups or n % groups:
                raise sec.error(f"filters={n}, size={k}, stride={stride}, groups={groups} do not fit {c} input channels")
            bn = bool(sec.get_int("batch_normalize", 0))
            layers.append(ConvBNAct(c, n, k, stride, pad, groups, bn, sec.get_str("activation", "logistic"),
                                    bn_eps=BN_EPS))
            c, h, w = n, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        elif kind == "maxpool":
            size = sec.get_int("size", sec.get_int("stride", 1))
            stride = sec.get_int("stride", 1)
            if sec.get_int("maxpool_depth", 0) or sec.get_int("stride_x", stride) != stride \
                    or sec.get_int("stride_y", stride) != stride:
                raise sec.error("maxpool_depth and different stride_x/stride_y are not supported")
            pool = DarknetMaxPool(size, stride, sec.get_int("padding", size - 1))
            layers.append(pool)
            h, w = pool.out_size(h), pool.out_size(w)
        elif kind == "avgpool":
            layers.append(nn.AdaptiveAvgPool2d(1))
            h = w = 1
        elif kind == "dropout":
            layers.append(nn.Identity())
        elif kind == "upsample":
            s = sec.get_int("stride", 2)
            if s < 1 or sec.get_float("scale", 1.0) != 1.0:
                raise sec.error("only upsampling by a positive integer stride with scale=1 is supported")
            layers.append(nn.Upsample(scale_factor=s, mode="nearest"))
            h, w = h * s, w * s
        elif kind == "reorg":
            s = sec.get_int("stride", 2)
            if s < 1 or sec.get_int("reverse", 0) or sec.get_int("flatten", 0) or sec.get_int("extra", 0):
                raise sec.error("only reorg with a positive stride (no reverse, flatten or extra) is supported")
            if h % s or w % s or c % (s * s):
                raise sec.error(f"reorg stride={s} needs a size divisible by {s} and channels by {s * s}, "
                                f"got {c}x{h}x{w}")
            layers.append(Reorg(s))
            c, h, w = c * s * s, h // s, w // s
        elif kind == "route":
            src = _sources(sec, "layers", i, head_idx)
            groups, gid = sec.get_int("groups", 1), sec.get_int("group_id", 0)
            chans = [shapes[j][0] for j in src]
            if groups < 1 or not 0 <= gid < groups or any(ch % groups for ch in chans):
                raise sec.error(f"groups={groups}, group_id={gid} do not split channels {chans}")
            if len({shapes[j][1:] for j in src}) != 1:
                raise sec.error(f"routed layers {src} have different sizes {[shapes[j][1:] for j in src]}")
            layers.append(Route(src, groups, gid, chans))
            keep.update(src)
            c, (h, w) = sum(ch // groups for ch in chans), shapes[src[0]][1:]
        elif kind == "shortcut":
            src = _sources(sec, "from", i, head_idx)
            if "weights_type" in sec.options and sec.get_str("weights_type") != "none":
                raise sec.error("weighted shortcuts are not supported")
            for j in src:
                if shapes[j] != (c, h, w):
                    raise sec.error(f"adds layer {j} of shape {shapes[j]} to shape {(c, h, w)}")
            layers.append(Shortcut(src, sec.get_str("activation", "linear")))
            keep.update(src)
        elif kind in ("yolo", "region"):
            heads.append(_head_entry(sec, kind, c, h, w))
            head_idx.add(i)
            layers.append(HeadOutput())
        else:
            raise sec.error(f"layer type [{kind}] is not supported by edgekit's Darknet loader")
        if min(c, h, w) < 1:
            raise sec.error(f"output shape {(c, h, w)} is empty: the input {net.get_int('width')}x"
                            f"{net.get_int('height')} is too small for this net")
        shapes.append((c, h, w))
    return DarknetModel(layers, keep, _head_spec(net, heads), net.source, resize_mode(net))


def resize_mode(net: Section) -> str:
    """How Darknet resizes the input for this ``[net]``: ``"letterbox"`` with ``letterbox=1``, else ``"stretch"``.

    Example:
        >>> from edgekit.models.darknet_cfg import parse_cfg_text
        >>> resize_mode(parse_cfg_text("[net]\\nwidth=32\\nheight=32\\n[maxpool]\\n")[0])
        'stretch'
    """
    value = net.get_int("letterbox", 0)
    if value not in (0, 1):
        raise net.error(f"letterbox={value}: Darknet takes 0 (stretch to width x height) or 1 (keep the aspect ratio)")
    return "letterbox" if value else "stretch"


def _head_entry(sec: Section, kind: str, c: int, h: int, w: int) -> dict:
    classes = sec.get_int("classes", 20)
    anchors = np.asarray(sec.get_floats("anchors", []), dtype=np.float64)
    if anchors.size % 2:
        raise sec.error("anchors= needs (w, h) pairs: an even count of numbers")
    anchors = anchors.reshape(-1, 2)
    num = sec.get_int("num", len(anchors))
    if len(anchors) < num or num < 1:
        raise sec.error(f"num={num} but {len(anchors)} anchors are given")
    if kind == "yolo":
        mask = sec.get_ints("mask", list(range(num)))
        if any(not 0 <= m < num for m in mask):
            raise sec.error(f"mask={mask} must index the {num} anchors")
        anchors = anchors[mask]
        if sec.get_float("scale_x_y", 1.0) <= 0:
            raise sec.error("scale_x_y must be > 0")
    else:
        anchors = anchors[:num]
        if sec.get_int("coords", 4) != 4 or not sec.get_int("softmax", 0) or "tree" in sec.options:
            raise sec.error("only region layers with coords=4 and softmax=1 (YOLOv2) are supported")
    need = len(anchors) * (5 + classes)
    if c != need:
        raise sec.error(f"gets {c} channels but {len(anchors)} anchors x (5 + {classes} classes) need {need}: "
                        f"set filters={need} in the conv before it")
    return {"kind": kind, "classes": classes, "anchors": anchors, "hw": (h, w),
            "scale_x_y": sec.get_float("scale_x_y", 1.0), "new_coords": sec.get_int("new_coords", 0), "sec": sec}


def _head_spec(net: Section, heads: list[dict]) -> dict:
    if not heads:
        raise net.error("no [yolo] or [region] layer: edgekit loads detectors only")
    first = heads[0]
    for hd in heads[1:]:
        if hd["kind"] != first["kind"] or hd["classes"] != first["classes"] or hd["new_coords"] != first["new_coords"]:
            raise hd["sec"].error("all heads must share type, classes and new_coords")
    H, W = net.get_int("height"), net.get_int("width")
    strides = []
    for hd in heads:
        sh, sw = H / hd["hw"][0], W / hd["hw"][1]
        if sh != sw or sw != int(sw):
            raise hd["sec"].error(f"grid {hd['hw']} is not an integer subsampling of the {W}x{H} input")
        strides.append(int(sw))
    # region anchors are grid cells in the cfg: make_head_spec takes pixels and divides back
    scale = strides if first["kind"] == "region" else [1] * len(heads)
    return make_head_spec(first["kind"], first["classes"], [hd["anchors"] * s for hd, s in zip(heads, scale)],
                          strides, [H, W], [hd["scale_x_y"] for hd in heads], first["new_coords"])


def reference_cfg(name: str) -> Path:
    """Path of a reference cfg shipped in ``edgekit/models/cfg`` (no weights ship).

    Example:
        >>> reference_cfg("yolov3-tiny.cfg").name
        'yolov3-tiny.cfg'
    """
    from importlib.resources import files

    path = Path(str(files("edgekit.models") / "cfg" / name))
    if not path.is_file():
        shipped = sorted(p.name for p in path.parent.glob("*.cfg"))
        raise EdgekitError(f"no reference cfg '{name}': shipped ones are {', '.join(shipped)}")
    return path


def _conv_layers(model: DarknetModel) -> list[ConvBNAct]:
    return [m for m in model.layers if isinstance(m, ConvBNAct)]


def darknet_weight_count(model: DarknetModel) -> int:
    """Number of float32 values a matching ``.weights`` file holds after its header."""
    total = 0
    for m in _conv_layers(model):
        n = m.conv.out_channels
        total += m.conv.weight.numel() + (4 * n if hasattr(m, "bn") else n)
    return total


def load_weights(model: DarknetModel, path: str | Path, partial: bool = False) -> dict:
    """Fill ``model`` from a Darknet ``.weights`` file; returns its header (and ``layers``: conv layers filled).

    Layout: int32 major, minor, revision; ``seen`` as int64 when major*10+minor >= 2 (else
    int32); then per conv layer in order: with BN, beta (bias), gamma, running mean, running
    variance; without, the bias; then the conv weights. The file size must match the cfg
    exactly: a truncated or longer file means the two do not belong together. ``partial``
    accepts a file holding only the first conv layers (``darknet partial`` writes
    ``yolov4-tiny.conv.29`` so), as long as it ends on a layer boundary.

    Example:
        >>> load_weights(model, "yolo-fastest-1.1.weights")  # doctest: +SKIP
        {'major': 0, 'minor': 2, 'revision': 5, 'seen': 32013312, 'layers': 58}
    """
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"Darknet weights not found: {path}")
    data = path.read_bytes()
    major, minor, revision = (int(v) for v in np.frombuffer(data[:12].ljust(12, b"\0"), "<i4", 3))
    wide_seen = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    offset = 20 if wide_seen else 16
    if len(data) < offset:
        raise EdgekitError(f"{path.name}: {len(data)} bytes is too short for a Darknet .weights header")
    seen = int(np.frombuffer(data, "<i8" if wide_seen else "<i4", 1, 12)[0])
    need = darknet_weight_count(model)
    have = (len(data) - offset) / 4
    convs = _conv_layers(model)
    sizes = [m.conv.weight.numel() + (4 * m.conv.out_channels if hasattr(m, "bn") else m.conv.out_channels) for m in convs]
    n_layers = len(convs)
    if partial and have < need:
        ends = np.cumsum(sizes)
        n_layers = int(np.searchsorted(ends, have, side="right"))
        if n_layers == 0 or ends[n_layers - 1] != have:
            raise EdgekitError(f"{path.name} holds {int(have)} weights, which is not the first conv layers of this cfg "
                               f"(they end at {', '.join(str(int(e)) for e in ends[:4])}, ...): check that .cfg and "
                               ".weights belong together")
    elif have != need:
        what = "truncated" if have < need else "longer than the cfg needs"
        raise EdgekitError(f"{path.name} is {what}: the cfg needs {need} weights ({need * 4 + offset} bytes), "
                           f"the file has {len(data)} bytes: check that .cfg and .weights belong together")
    values = np.frombuffer(data, "<f4", int(have), offset)
    pos = 0

    def take(t: torch.Tensor) -> None:
        nonlocal pos
        t.data.copy_(torch.from_numpy(values[pos:pos + t.numel()].copy()).view_as(t))
        pos += t.numel()

    with torch.no_grad():
        for m in convs[:n_layers]:
            if hasattr(m, "bn"):
                for t in (m.bn.bias, m.bn.weight, m.bn.running_mean, m.bn.running_var):
                    take(t)
            else:
                take(m.conv.bias)
            take(m.conv.weight)
    return {"major": major, "minor": minor, "revision": revision, "seen": seen, "layers": n_layers}


def save_darknet_weights(model: DarknetModel, path: str | Path, seen: int = 0, cutoff: int | None = None) -> Path:
    """Write ``model``'s weights as a Darknet ``.weights`` file (version 0.2.0), atomically.

    With the ``.cfg`` it was built from, the file runs in Darknet and OpenCV's DNN module.
    ``cutoff``: only the first conv layers, as ``darknet partial cfg weights out N`` writes a backbone.

    Example:
        >>> save_darknet_weights(load_darknet("yolov3-tiny.cfg"), "out.weights")  # doctest: +SKIP
        PosixPath('out.weights')
    """
    path = Path(path)
    chunks = [np.array([0, 2, 0], "<i4").tobytes(), np.array([seen], "<i8").tobytes()]
    for m in _conv_layers(model)[:cutoff]:
        ts = [m.bn.bias, m.bn.weight, m.bn.running_mean, m.bn.running_var] if hasattr(m, "bn") else [m.conv.bias]
        for t in ts + [m.conv.weight]:
            chunks.append(t.detach().cpu().numpy().astype("<f4").tobytes())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"".join(chunks))
    tmp.replace(path)  # no half-written file under the final name
    return path


def load_darknet(cfg_path: str | Path, weights_path: str | Path | None = None) -> DarknetModel:
    """Build a model from a Darknet ``.cfg`` and, when given, load its ``.weights``.

    Args:
        cfg_path: the ``.cfg`` file.
        weights_path: the ``.weights`` file, or None for random weights (to train).

    Returns:
        A :class:`DarknetModel` in eval mode if weights were loaded (train mode otherwise),
        whose forward returns the raw head maps and whose ``head_spec`` decodes them.

    Example:
        >>> m = load_darknet("yolo-fastest-1.1.cfg", "yolo-fastest-1.1.weights")  # doctest: +SKIP
        >>> m.head_spec["strides"]  # doctest: +SKIP
        [32, 16]
    """
    model = build_darknet(read_cfg(cfg_path))
    if weights_path is not None:
        model.weights_header = load_weights(model, weights_path)
        model.eval()
    return model
