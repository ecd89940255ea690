"""The ops of a ``.tflite`` graph as edgekit names them: for the INT8 analysis and ``--keep-float``.

A layer is named after the torch modules litert-torch records in its output tensor name
(``inner.backbone.features.3.block.1.conv:CONV_2D``): short, stable across conversions of the
same model, and what ``--keep-float`` takes. Its ``scope`` is the op's output tensor names,
which is what ai-edge-quantizer's recipe ``regex`` matches (``no_quantize`` keeps it float).
"""

from __future__ import annotations

import re

from edgekit.errors import EdgekitError


def op_names(model) -> list[list[str]]:
    """Builtin op names per subgraph of a ``ModelT``."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools.flatbuffer_utils import get_builtin_code_from_operator_code

    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    codes = [names.get(get_builtin_code_from_operator_code(c), "CUSTOM") for c in model.operatorCodes]
    return [[codes[op.opcodeIndex] for op in sg.operators] for sg in model.subgraphs]


def is_const(model, tensor) -> bool:
    """True when the tensor has data in the flatbuffer (weights, biases, constants)."""
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


SKIP = {"QUANTIZE", "DEQUANTIZE", "TRANSPOSE", "RESHAPE"}  # carry values, add no arithmetic of their own
WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}


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

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(fp32))
    sg, ops = model.subgraphs[0], op_names(model)[0]
    name_of = lambda i: sg.tensors[i].name.decode() if isinstance(sg.tensors[i].name, bytes) else sg.tensors[i].name  # noqa: E731
    layers, seen = [], {}
    for op, kind in zip(sg.operators, ops):
        if kind in SKIP or not op.outputs:
            continue
        ins = [i for i in op.inputs if i >= 0 and not is_const(model, sg.tensors[i])]
        weight = op.inputs[1] if kind in WEIGHTED and len(op.inputs) > 1 and is_const(model, sg.tensors[op.inputs[1]]) else None
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
