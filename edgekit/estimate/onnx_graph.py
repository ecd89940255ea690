"""Per-op features of an ONNX graph (``.onnx`` artifacts, and any export whose ONNX source is at hand).

The graph's shapes come from ONNX's own shape inference; a graph with a dynamic height/width
needs ``imgsz``. Convolutions, GEMMs, pooling, concat/resize/transpose and element-wise nodes
become :class:`~edgekit.estimate.layers.Layer` rows; element-wise nodes whose activation inputs
all come from the current convolution group (bias, batch norm, activation, SiLU) fuse into it, and
Quantize/DequantizeLinear, Cast and Identity pass through (an int8 runtime fuses them into its
kernels). Needs the ``onnx`` package (the ``export`` extra).
"""

from __future__ import annotations

import math
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.estimate.layers import Layer, conv_kind

_CONV = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose"}
_GEMM = {"Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"}
_POOL = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "LpPool"}
_MEMORY = {"Concat", "Resize", "Upsample", "Transpose", "Pad", "Tile", "DepthToSpace", "SpaceToDepth", "Split",
           "Expand"}
_PASS = {"QuantizeLinear", "DequantizeLinear", "Cast", "Identity", "Dropout"}
_ELEMENTWISE = {"Add", "Mul", "Sub", "Div", "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
                "Exp", "BatchNormalization", "Softmax", "PRelu", "Max", "Min", "Pow", "Sqrt", "Erf", "Where", "Mish",
                "Softplus", "Elu", "Gelu", "Neg", "Abs", "Log", "Sum"}
_INT8 = {"QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QuantizeLinear", "DequantizeLinear"}


def _dims(value_info) -> list | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _numel(dims) -> int:
    return math.prod(d or 1 for d in dims) if dims else 0


def _fix_input_size(model, imgsz: tuple[int, int] | None) -> None:
    """Give dynamic batch (1) and, when asked, height/width (``imgsz``) to the first 4-D graph input."""
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        if len(dims) != 4:
            continue
        if not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
        layout_hw = (2, 3) if (dims[1].HasField("dim_value") and dims[1].dim_value in (1, 3, 4)) else (1, 2)
        for axis, size in zip(layout_hw, imgsz or (None, None)):
            if size is not None:
                dims[axis].dim_value = size
        if any(not dims[a].HasField("dim_value") for a in layout_hw):
            raise EdgekitError(f"input '{inp.name}' has a dynamic height/width: give --imgsz")
        return


def _run_shapes(model, names: list[str], path: Path) -> dict:
    """Shapes of ``names`` from one onnxruntime run on zeros (for what static inference leaves unknown)."""
    import numpy as np
    import onnx

    try:
        import onnxruntime as ort
    except ImportError:
        raise EdgekitError(f"{path} has shapes only known at run time; reading them needs onnxruntime: "
                           "pip install 'edgekit[onnx]'") from None
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend([onnx.ValueInfoProto(name=n) for n in dict.fromkeys(names) if n not in have])
    inits = {i.name for i in probe.graph.initializer}
    types = {1: np.float32, 10: np.float16, 2: np.uint8, 3: np.int8, 7: np.int64, 6: np.int32}
    feeds = {}
    for inp in probe.graph.input:
        if inp.name not in inits:
            t = inp.type.tensor_type
            feeds[inp.name] = np.zeros([d.dim_value or 1 for d in t.shape.dim], types.get(t.elem_type, np.float32))
    try:
        so = ort.SessionOptions()
        so.log_severity_level = 3  # exporters' harmless warnings (initializers listed as inputs) are not the user's concern
        sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
    except Exception as exc:
        raise EdgekitError(f"{path}: could not run the graph to read its shapes ({str(exc).splitlines()[0][:120]})") from None
    return {o.name: list(np.shape(v)) for o, v in zip(sess.get_outputs(), outs)}


def onnx_layers(path: str | Path, imgsz: int | tuple[int, int] | None = None) -> tuple[list[Layer], dict]:
    """(fused :class:`Layer` list, info) of an ONNX file; info has ``precision`` (fp32/fp16/int8) and ``imgsz``.

    Example:
        >>> layers, info = onnx_layers("yolo-lite-onnx.onnx")  # doctest: +SKIP
        >>> info["precision"], sum(x.macs for x in layers)  # doctest: +SKIP
        ('fp32', 240004352)
    """
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        raise EdgekitError("reading an ONNX graph needs the onnx package: pip install 'edgekit[export]'") from None
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf decode errors and truncated files
        raise EdgekitError(f"{path} is not a readable ONNX model ({type(exc).__name__}): re-export it") from None
    size = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    _fix_input_size(model, size)
    try:
        model = shape_inference.infer_shapes(model)
    except Exception as exc:
        raise EdgekitError(f"{path}: ONNX shape inference failed ({str(exc).splitlines()[0][:120]})") from None
    g = model.graph
    shapes = {v.name: _dims(v) for v in list(g.input) + list(g.value_info) + list(g.output)}
    inits = {i.name: list(i.dims) for i in g.initializer}
    shapes.update(inits)
    unknown = [o for n in g.node for o in n.output if o and (shapes.get(o) is None or None in shapes[o])]
    if unknown:  # shapes computed at run time (Shape -> Slice chains): run the graph once to read them
        shapes.update(_run_shapes(model, unknown, path))
    consts = set(inits) | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    ops = {n.op_type for n in g.node}
    half = sum(i.data_type == onnx.TensorProto.FLOAT16 for i in g.initializer)
    precision = "int8" if ops & _INT8 else "fp16" if half > len(g.initializer) // 2 else "fp32"

    layers: list[Layer] = []
    group: set[str] = set()
    static: set[str] = set(consts)  # weights and what is computed from weights only (DequantizeLinear of a weight)

    def act_inputs(node):
        return [i for i in node.input if i and i not in static and (shapes.get(i) is None or len(shapes[i]) > 1)]

    for node in g.node:
        op, out = node.op_type, node.output[0] if node.output else ""
        ins = act_inputs(node)
        if not ins and op not in ("Constant",):
            static.update(node.output)
            continue
        out_elems = _numel(shapes.get(out))
        if op in _CONV:
            w_name = node.input[3] if op == "QLinearConv" else node.input[1]
            w = shapes.get(w_name) or []
            x = shapes.get(node.input[0]) or []
            if len(w) < 3 or not out_elems:
                raise EdgekitError(f"{path}: node {node.name or op} has no known shape: re-export with static shapes")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            groups = int(attrs.get("group", 1))
            k = math.prod(w[2:])
            macs = (_numel(x) * w[1] * k) if op == "ConvTranspose" else out_elems * w[1] * k
            c_in = x[1] if len(x) > 1 and x[1] else w[1] * groups
            kind = conv_kind(c_in, groups, tuple(w[2:]), tuple(attrs.get("strides", (1, 1))), w[0],
                             tuple(attrs.get("dilations", (1, 1))))
            layers.append(Layer(kind, int(macs), _numel(w), _numel(x), out_elems, op))
            group = set(node.output)
        elif op in _GEMM:
            a = shapes.get(node.input[0]) or []
            b_name = node.input[3] if op == "QLinearMatMul" else node.input[1]
            b = shapes.get(b_name) or []
            k_dim = (b[1] if op == "Gemm" and any(at.name == "transB" and at.i for at in node.attribute) else b[0]) \
                if len(b) == 2 else (a[-1] if a else 0)
            layers.append(Layer("pointwise", int(out_elems * (k_dim or 0)), _numel(b) if b_name in static else 0,
                                _numel(a), out_elems, op))
            group = set(node.output)
        elif op in _PASS:
            if set(ins) <= group:
                group.update(node.output)
        elif op in _ELEMENTWISE:
            if set(ins) <= group:
                group.update(node.output)
            else:
                layers.append(Layer("elementwise", 0, 0, sum(_numel(shapes.get(i)) for i in ins), out_elems, op))
                group = set()
        elif op in _POOL:
            layers.append(Layer("pool", 0, 0, _numel(shapes.get(node.input[0])), out_elems, op))
            group = set()
        elif op in _MEMORY:
            layers.append(Layer("memory", 0, 0, sum(_numel(shapes.get(i)) for i in ins), out_elems, op))
            group = set()
    inp = next((shapes[i.name] for i in g.input if i.name not in inits and len(shapes.get(i.name) or []) == 4), None)
    hw = (inp[2], inp[3]) if inp and inp[1] in (1, 3, 4) else (inp[1], inp[2]) if inp else None
    return layers, {"precision": precision, "imgsz": hw, "opset": model.opset_import[0].version if model.opset_import else None}
