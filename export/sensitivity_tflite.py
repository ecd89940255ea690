"""Per-layer INT8 sensitivity of a LiteRT model: the fp32 and the INT8 ``.tflite`` side by side.

Both flatbuffers run in the LiteRT interpreter with ``experimental_preserve_all_tensors=True``
and the builtin kernels (XNNPACK would keep
the tensors of its partitions to itself) on the same held-out
images; each op's output in the INT8 model is dequantized with its own scale and zero point
and compared with the same tensor of the fp32 model (ai-edge-quantizer keeps the float
tensor names; a rewired int8 op writes ``<name>_quantized``). The columns are those of
:func:`edgekit.export.sensitivity.onnx_sensitivity`.

A layer is named after the torch modules litert-torch records in its output tensor name
(``inner.backbone.features.3.block.1.conv:CONV_2D``): short, stable across conversions of the
same model, and what ``--keep-float`` takes. Its ``scope`` is the op's output tensor names,
which is what ai-edge-quantizer's recipe ``regex`` matches (``no_quantize`` keeps it float).
"""

from __future__ import annotations

import re

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.sensitivity import INPUT_DB, TensorStats, layer_row, rank, weight_sqnr

SKIP = {"QUANTIZE", "DEQUANTIZE", "TRANSPOSE", "RESHAPE"}  # carry values, add no arithmetic of their own
WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
QUANTIZED_SUFFIX = "_quantized"  # the name a rewired int8 op's output takes (export.tflite._fold_float_islands)


def short_name(tensor_name: str) -> str:
    """The torch module path in a litert-torch tensor name (wrapper and class names dropped).

    Example:
        >>> short_name("edgekit.export.wrap.tuple_outputs.<locals>.TupleOutputs/"
        ...            "edgekit.models.detector.Detector_inner/edgekit.models.layers.ConvBNAct_0/"
        ...            "torch.nn.modules.conv.Conv2d_conv;2")
        'inner.0.conv'
    """
    parts = []
    for comp in tensor_name.split(";")[0].split("/"):
        cls = comp.rsplit(".", 1)[-1]
        if "_" in cls and not comp.startswith("edgekit.export.wrap"):
            parts.append(cls.split("_", 1)[1])
    return ".".join(parts) or tensor_name


def tflite_layers(fp32: bytes) -> list[dict]:
    """The fp32 model's ops that quantization changes: name, op, scope, output, inputs, weight.

    Example:
        >>> tflite_layers(Path("fp32.tflite").read_bytes())[0]["name"]  # doctest: +SKIP
        'inner.backbone.0.conv:CONV_2D'
    """
    from ai_edge_litert.tools import flatbuffer_utils
    from ai_edge_quantizer.utils.tfl_flatbuffer_utils import get_op_scope

    from edgekit.export.tflite import _is_const, _op_names

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(fp32))
    sg, ops = model.subgraphs[0], _op_names(model)[0]
    name_of = lambda i: sg.tensors[i].name.decode() if isinstance(sg.tensors[i].name, bytes) else sg.tensors[i].name  # noqa: E731
    layers, seen = [], {}
    for op, kind in zip(sg.operators, ops):
        if kind in SKIP or not op.outputs:
            continue
        ins = [i for i in op.inputs if i >= 0 and not _is_const(model, sg.tensors[i])]
        weight = op.inputs[1] if kind in WEIGHTED and len(op.inputs) > 1 and _is_const(model, sg.tensors[op.inputs[1]]) else None
        base = f"{short_name(name_of(op.outputs[0]))}:{kind}"
        seen[base] = seen.get(base, 0) + 1
        layers.append({"name": base if seen[base] == 1 else f"{base}#{seen[base]}", "op": kind,
                       "scope": get_op_scope(op, sg.tensors), "output": name_of(op.outputs[0]),
                       "inputs": [name_of(i) for i in ins], "graph_inputs": [name_of(i) for i in ins if i in sg.inputs],
                       "weight": None if weight is None else name_of(weight)})
    return layers


def keep_float_recipe(layers: list[dict], names: list[str]) -> list[dict]:
    """ai-edge-quantizer recipe entries that leave the named layers in float (``no_quantize``).

    Unknown names are refused: a typo would silently quantize the layer.

    Example:
        >>> keep_float_recipe([{"name": "a:CONV_2D", "scope": "x;2"}], ["a:CONV_2D"])[0]["regex"]
        '^x;2$'
    """
    by_name = {layer["name"]: layer for layer in layers}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise EdgekitError(f"--keep-float: no layer named {', '.join(unknown)} in the TFLite model: take the names from "
                           "`edgekit quant-report MODEL --target tflite-int8 --data DATA`")
    return [{"regex": f"^{re.escape(by_name[n]['scope'])}$", "operation": "*", "algorithm_key": "no_quantize",
             "op_config": {}} for n in names]


def _interpreter(buf: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # the builtin kernels, no XNNPACK: a delegated partition keeps its intermediate tensors to itself
    it = Interpreter(model_content=bytes(buf), experimental_preserve_all_tensors=True, num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


def _dequantized(it, detail) -> np.ndarray:
    """A tensor's values as float (per-tensor or per-channel scales)."""
    x = it.get_tensor(detail["index"])
    q = detail.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", []), np.float64)
    if x.dtype in (np.float32, np.float16) or scales.size == 0:
        return x.astype(np.float64)
    zps = np.asarray(q.get("zero_points", np.zeros_like(scales)), np.float64)
    if scales.size > 1:
        shape = [1] * x.ndim
        shape[q.get("quantized_dimension", 0)] = -1
        scales, zps = scales.reshape(shape), zps.reshape(shape)
    return (x.astype(np.float64) - zps) * scales


def _feed(it, x_nchw: np.ndarray) -> None:
    d = it.get_input_details()[0]
    x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1), np.float32)
    if d["dtype"] != np.float32:
        scale, zp = d["quantization"]
        info = np.iinfo(d["dtype"])
        x = np.clip(np.round(x / scale + zp), info.min, info.max).astype(d["dtype"])
    it.set_tensor(d["index"], x)
    it.invoke()


def tflite_sensitivity(fp32: bytes, int8: bytes, images: list[np.ndarray]) -> list[dict]:
    """Per-layer rows of the INT8 flatbuffer against the fp32 one, most damaging first.

    ``images``: (1, 3, H, W) float32 letterboxed RGB in [0, 1] (the same tensors ONNX is fed).

    Example:
        >>> rows = tflite_sensitivity(fp32_bytes, int8_bytes, [x])  # doctest: +SKIP
        >>> rows[0]["name"], rows[0]["lost_db"]  # doctest: +SKIP
        ('inner.head.convs.1:CONV_2D', 8.2)
    """
    layers = tflite_layers(fp32)
    f_it, q_it = _interpreter(fp32), _interpreter(int8)
    f_det = {d["name"]: d for d in f_it.get_tensor_details()}
    q_det = {d["name"]: d for d in q_it.get_tensor_details()}
    for name, d in list(q_det.items()):  # a rewired op's output answers for the float tensor it replaced
        if name.endswith(QUANTIZED_SUFFIX):
            q_det[name[:-len(QUANTIZED_SUFFIX)]] = d
    wanted = {t for layer in layers for t in [layer["output"], *layer["inputs"]] if t in f_det}
    stats = {t: TensorStats() for t in wanted}
    for x in images:
        _feed(f_it, x)
        _feed(q_it, x)
        for t in wanted:
            ref = _dequantized(f_it, f_det[t])
            got = _dequantized(q_it, q_det[t]) if t in q_det else None
            stats[t].add(ref, got if got is not None and got.shape == ref.shape else None)
    rows = []
    for layer in layers:
        out = layer["output"]
        if out not in stats or stats[out].signal == 0.0 and stats[out].noise == 0.0:
            continue
        ins = [INPUT_DB if t in layer["graph_inputs"] else stats[t].sqnr_db() for t in layer["inputs"] if t in stats]
        wdb = None
        if layer["weight"] and layer["weight"] in f_det and layer["weight"] in q_det:
            wdb = weight_sqnr(_dequantized(f_it, f_det[layer["weight"]]), _dequantized(q_it, q_det[layer["weight"]]))
        rows.append(layer_row(layer["name"], layer["op"], [layer["name"]], out, stats[out], ins, wdb))
    return rank(rows)
