"""Per-layer INT8 sensitivity of a LiteRT model: the fp32 and the INT8 ``.tflite`` side by side.

Both flatbuffers run in the LiteRT interpreter with ``experimental_preserve_all_tensors=True``
and the builtin kernels (XNNPACK would keep
the tensors of its partitions to itself) on the same held-out
images; each op's output in the INT8 model is dequantized with its own scale and zero point
and compared with the same tensor of the fp32 model (ai-edge-quantizer keeps the float
tensor names; a rewired int8 op writes ``<name>_quantized``). The columns are those of
:func:`edgekit.export.sensitivity.onnx_sensitivity`.

Layers and their names come from :func:`edgekit.export.tflite_graph.tflite_layers`
(``inner.backbone.features.3.block.1.conv:CONV_2D``: what ``--keep-float`` takes).
"""

from __future__ import annotations

import numpy as np

from edgekit.export.sensitivity import INPUT_DB, TensorStats, layer_row, rank, weight_sqnr
from edgekit.export.tflite_graph import tflite_layers

QUANTIZED_SUFFIX = "_quantized"  # the name a rewired int8 op's output takes (export.tflite._fold_float_islands)


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
        # an int8 tensor is charged at least ideal 8-bit noise: the image reaches the first conv exactly
        # (pixels are multiples of the 1/255 input step), which would charge that conv with all of it
        ins = [INPUT_DB if t in layer["graph_inputs"] else min(stats[t].sqnr_db(), INPUT_DB)
               for t in layer["inputs"] if t in stats]
        wdb = None
        if layer["weight"] and layer["weight"] in f_det and layer["weight"] in q_det:
            wdb = weight_sqnr(_dequantized(f_it, f_det[layer["weight"]]), _dequantized(q_it, q_det[layer["weight"]]))
        rows.append(layer_row(layer["name"], layer["op"], [layer["name"]], out, stats[out], ins, wdb))
    return rank(rows)
