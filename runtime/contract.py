"""The manifest is checked before it is trusted: its own shape, then against the opened model.

A manifest is a file a user can edit, copy beside the wrong artifact or truncate. Two checks
run whenever an artifact is loaded (:class:`edgekit.runtime.runner.ArtifactRunner`):

- :func:`check_manifest`: the keys the runtime reads exist with sane types and values, and
  agree with each other (as many class names as the decoder has classes, one anchor group
  and stride per detection output, a permutation for ``decode_index``);
- :func:`check_against_model`: the interpreter's real input and outputs fit it (input dtype,
  layout and size, number of outputs, channels = anchors x (5 + classes) per head map).

Each failure is one :class:`~edgekit.errors.EdgekitError` line naming the file, the key and
the fix, instead of a KeyError or an interpreter's InvalidArgument deep in ``predict``.
numpy only.
"""

from __future__ import annotations

import math
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.runtime.preprocess import COLORS, RESIZE_MODES

LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "float16", "uint8", "int8")
TASKS = ("detect", "classify")
HEADS = ("yolo", "region")


class _Check:
    """Collects the path and the fix so each rule is one line."""

    def __init__(self, where: str | Path):
        self.where = where

    def fail(self, what: str):
        raise EdgekitError(f"{self.where}: manifest {what}: re-export the model with `edgekit export` "
                           "(or restore its manifest)")

    def get(self, data, key: str, kind, label: str | None = None):
        label = label or key
        if not isinstance(data, dict) or key not in data:
            self.fail(f"has no '{label}'")
        value = data[key]
        if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            self.fail(f"'{label}' should be {names}, not {type(value).__name__}")
        return value

    def ints(self, value, label: str, length: int | None = None, minimum: int = 1) -> list[int]:
        if (not isinstance(value, list) or (length is not None and len(value) != length)
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)):
            n = f"{length} " if length else ""
            self.fail(f"'{label}' should be a list of {n}whole numbers >= {minimum}, not {value!r:.60}")
        return value


def check_manifest(manifest: dict, where: str | Path = "manifest") -> dict:
    """Check the keys and values the runtime reads; returns the manifest, or raises one clear line.

    Example:
        >>> check_manifest({"task": "detect"}, "m.onnx.json")
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: m.onnx.json: manifest has no 'input': re-export the model with `edgekit export` (or restore its manifest)
    """
    c = _Check(where)
    task = c.get(manifest, "task", str)
    if task not in TASKS:
        c.fail(f"'task' is '{task}', not one of {', '.join(TASKS)}")
    inp = c.get(manifest, "input", dict)
    c.ints(c.get(inp, "shape", list, "input.shape"), "input.shape", 4)
    if c.get(inp, "layout", str, "input.layout") not in LAYOUTS:
        c.fail(f"'input.layout' is '{inp['layout']}', not one of {', '.join(LAYOUTS)}")
    if c.get(inp, "dtype", str, "input.dtype") not in DTYPES:
        c.fail(f"'input.dtype' is '{inp['dtype']}', not one of {', '.join(DTYPES)}")
    _check_quant(c, inp.get("quant"), "input.quant", integer=inp["dtype"] in ("uint8", "int8"))
    pre = c.get(manifest, "preprocess", dict)
    c.ints(c.get(pre, "imgsz", list, "preprocess.imgsz"), "preprocess.imgsz", 2)
    pad = pre.get("pad_value", 114)
    if not isinstance(pad, (int, float)) or isinstance(pad, bool) or not 0 <= pad <= 255:
        c.fail(f"'preprocess.pad_value' is {pad!r}, not a number from 0 to 255")
    if pre.get("color", "RGB") not in COLORS:
        c.fail(f"'preprocess.color' is {pre['color']!r}, not {' or '.join(COLORS)}")
    if pre.get("resize", "letterbox") not in RESIZE_MODES:
        c.fail(f"'preprocess.resize' is {pre['resize']!r}, not one of {', '.join(RESIZE_MODES)}")
    outputs = c.get(manifest, "outputs", list)
    if not outputs or not all(isinstance(o, dict) for o in outputs):
        c.fail("'outputs' should be a non-empty list of output descriptions")
    order = [o.get("decode_index", k) for k, o in enumerate(outputs)]
    if sorted(order) != list(range(len(outputs))):
        c.fail(f"'outputs[].decode_index' is {order}, not an order of 0..{len(outputs) - 1}")
    for k, o in enumerate(outputs):
        _check_quant(c, o.get("quant"), f"outputs[{k}].quant", integer=False)
    names = c.get(manifest, "names", list)
    if not all(isinstance(n, str) for n in names):
        c.fail("'names' should be a list of strings")
    decode = c.get(manifest, "decode", dict)
    classes = c.get(decode, "num_classes", int, "decode.num_classes")
    if classes < 1:
        c.fail(f"'decode.num_classes' is {classes}, not 1 or more")
    if len(names) != classes:
        c.fail(f"lists {len(names)} class names but the model has {classes} classes")
    if task == "detect":
        if c.get(decode, "type", str, "decode.type") not in HEADS:
            c.fail(f"'decode.type' is '{decode['type']}', not one of {', '.join(HEADS)}")
        strides = c.ints(c.get(decode, "strides", list, "decode.strides"), "decode.strides")
        anchors = c.get(decode, "anchors", list, "decode.anchors")
        if len(strides) != len(outputs) or len(anchors) != len(outputs):
            c.fail(f"has {len(outputs)} outputs but {len(strides)} strides and {len(anchors)} anchor groups")
        for k, group in enumerate(anchors):
            if (not isinstance(group, list) or not group
                    or not all(isinstance(a, list) and len(a) == 2 and all(_positive(v) for v in a) for a in group)):
                c.fail(f"'decode.anchors[{k}]' should be a non-empty list of [w, h] pairs > 0")
    return manifest


def check_against_model(manifest: dict, backend, where: str | Path = "manifest") -> None:
    """Check that the opened model's real input and outputs fit the manifest; one clear line if not.

    Dimensions a backend reports as unknown (-1, or 1 for a dynamic axis) are not compared.

    Example:
        >>> check_against_model(manifest, open_backend("m.onnx"), "m.onnx")  # doctest: +SKIP
    """
    c = _Check(where)
    inp, real = manifest["input"], backend.inputs[0]
    if real.dtype != inp["dtype"]:
        c.fail(f"says the input is {inp['dtype']}, but the model takes {real.dtype}")
    if not _fits(inp["shape"], real.shape):
        c.fail(f"says the input is {inp['layout']} {inp['shape']}, but the model takes {list(real.shape)}")
    h, w = manifest["preprocess"]["imgsz"]
    hw = inp["shape"][2:4] if inp["layout"] == "NCHW" else inp["shape"][1:3]
    channels = inp["shape"][1] if inp["layout"] == "NCHW" else inp["shape"][3]
    if list(hw) != [h, w] or channels != 3:
        c.fail(f"'preprocess.imgsz' {[h, w]} and the {inp['layout']} input shape {inp['shape']} disagree")
    outputs = manifest["outputs"]
    if len(backend.outputs) != len(outputs):
        c.fail(f"describes {len(outputs)} outputs, but the model has {len(backend.outputs)}")
    decode = manifest["decode"]
    classes = decode["num_classes"]
    for k, (o, out) in enumerate(zip(outputs, backend.outputs)):
        shape = list(out.shape)
        if manifest["task"] == "detect":
            want = len(decode["anchors"][o.get("decode_index", k)]) * (5 + classes)
            axis = 1 if o.get("layout", "NCHW") == "NCHW" else -1
            if len(shape) == 4 and shape[axis] not in (-1, 1, want):
                c.fail(f"decodes output {k} as {want} channels ({len(decode['anchors'][o.get('decode_index', k)])} "
                       f"anchors x (5 + {classes} classes)), but the model gives shape {shape}")
        elif shape and shape[-1] not in (-1, 1, classes):
            c.fail(f"has {classes} classes, but the model's output {k} has shape {shape}")


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _check_quant(c: _Check, quant, label: str, integer: bool) -> None:
    if quant is None:
        if integer:
            c.fail(f"has no '{label}' for an integer tensor (its scale and zero point)")
        return
    if (not isinstance(quant, list) or len(quant) != 2 or not _positive(quant[0])
            or not isinstance(quant[1], int) or isinstance(quant[1], bool)):
        c.fail(f"'{label}' should be [scale > 0, integer zero point], not {quant!r:.60}")


def _fits(declared, real) -> bool:
    """Same rank, and every dimension equal where the model states one (-1 or 1 may be a dynamic axis)."""
    return len(declared) == len(real) and all(r in (-1, 1) or int(r) == int(d) for d, r in zip(declared, real))
