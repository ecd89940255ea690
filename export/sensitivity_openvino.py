"""Per-layer INT8 sensitivity of an OpenVINO IR quantized by NNCF, against the float IR.

NNCF's IR keeps the float graph's node names and adds ``FakeQuantize`` nodes (activations)
and int8 constants with their scales (weights). A *layer* here is an op NNCF quantized (one
that reads FakeQuantized activations or int8 weights: Convolution, GroupConvolution, MatMul,
Add, Concat, ...) followed by its single-consumer elementwise tail (bias Add, PRelu/Clamp/
Swish...): what the CPU plugin runs as one int8 kernel. Its output is measured as the next
layer reads it (after the FakeQuantize when there is one), its inputs likewise, and the
columns are those of :func:`edgekit.export.sensitivity.onnx_sensitivity`.

Both IRs get every measured tensor added as an output and run in the CPU plugin at
``INFERENCE_PRECISION_HINT=f32``. The row's ``nodes`` are the names NNCF's ``ignored_scope``
takes (``--keep-float``): ignoring them leaves the layer's weights and inputs in float.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.export.sensitivity import INPUT_DB, TensorStats, layer_row, rank, weight_sqnr

HEADS = {"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData", "Add", "Multiply", "Subtract",
         "Concat", "Interpolate", "AvgPool", "ReduceMean"}
WEIGHTED = {"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"}
TAIL = {"Add", "Multiply", "Subtract", "PRelu", "Relu", "Clamp", "Swish", "HSwish", "HSigmoid", "Sigmoid", "Tanh",
        "Elu", "Gelu", "Mish"}
CONSTANT_OPS = {"Constant", "Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze"}


def _src(port):
    return port.get_source_output().get_node()


def _is_constant(node) -> bool:
    """True when a node computes only from constants (weights and their decompression)."""
    t = node.get_type_name()
    if t == "Constant":
        return True
    return t in CONSTANT_OPS and all(_is_constant(_src(i)) for i in node.inputs())


def _const_value(node) -> np.ndarray | None:
    """The value of a constant subgraph (Constant/Convert/Subtract/Multiply), None for anything else."""
    t = node.get_type_name()
    if t == "Constant":
        return np.asarray(node.get_data(), np.float64)
    ins = [_const_value(_src(i)) for i in node.inputs()]
    if any(v is None for v in ins):
        return None
    if t == "Convert":
        return ins[0]
    if t == "Subtract":
        return ins[0] - ins[1]
    if t == "Multiply":
        return ins[0] * ins[1]
    return None


def openvino_layers(qmodel) -> list[dict]:
    """The quantized layers of an NNCF IR: head, tail nodes, measured inputs and output.

    Each measured point is ``(float node name, quantized output port)``: the value the next
    layer reads, whose float counterpart is the node before the FakeQuantize.
    """
    layers = []
    for op in qmodel.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in HEADS:
            continue
        act_ports = [i for i in op.inputs() if not _is_constant(_src(i))]
        weighted = kind in WEIGHTED and len(op.inputs()) > 1 and _is_constant(_src(op.input(1))) \
            and _src(op.input(1)).get_type_name() != "Constant"
        if not act_ports or not (weighted or any(_src(i).get_type_name() == "FakeQuantize" for i in act_ports)):
            continue
        inputs = []
        for i in act_ports:
            s = _src(i)
            base = _src(s.input(0)) if s.get_type_name() == "FakeQuantize" else s
            inputs.append(None if base.get_type_name() == "Parameter" else (base.get_friendly_name(), i.get_source_output()))
        nodes, end = [op], op
        while True:
            users = list(end.output(0).get_target_inputs())
            if len(users) != 1:
                break
            nxt = users[0].get_node()
            if nxt.get_type_name() not in TAIL or nxt.get_type_name() in HEADS and any(
                    _src(i).get_type_name() == "FakeQuantize" for i in nxt.inputs()):
                break
            nodes.append(nxt)
            end = nxt
        fq = next((u.get_node() for u in end.output(0).get_target_inputs()
                   if u.get_node().get_type_name() == "FakeQuantize"), None)
        layers.append({"name": op.get_friendly_name(), "op": "+".join(n.get_type_name() for n in nodes),
                       "nodes": [n.get_friendly_name() for n in nodes],
                       "output": (end.get_friendly_name(), (fq or end).output(0)), "inputs": inputs,
                       "weight": _const_value(_src(op.input(1))) if weighted else None})
    return layers


def _with_outputs(core, model, ports: list):
    """Compile ``model`` with ``ports`` added as outputs; returns (an infer request, index of each port)."""
    model.add_outputs(ports)  # a port that already is an output is not added twice
    key = lambda o: (o.get_node().get_friendly_name(), o.get_index())  # noqa: E731
    where = {key(r.input_value(0)): k for k, r in enumerate(model.get_results())}  # results in output order
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2})
    return compiled.create_infer_request(), [where[key(p)] for p in ports]


def openvino_sensitivity(float_onnx: Path, int8_xml: Path, images: list[np.ndarray]) -> list[dict]:
    """Per-layer rows of the NNCF IR against the float model converted from ``float_onnx``, worst first.

    Example:
        >>> rows = openvino_sensitivity(Path("fp32.onnx"), Path("m_openvino/m.xml"), [x])  # doctest: +SKIP
        >>> rows[0]["name"]  # doctest: +SKIP
        '/inner/head/convs.1/Conv/WithoutBiases'
    """
    import openvino as ov

    core = ov.Core()
    fmodel, qmodel = ov.convert_model(str(float_onnx)), core.read_model(str(int8_xml))
    layers = openvino_layers(qmodel)
    fops = {op.get_friendly_name(): op for op in fmodel.get_ordered_ops()}
    points = {}  # float node name -> quantized port
    for layer in layers:
        for p in [layer["output"], *(p for p in layer["inputs"] if p is not None)]:
            if p[0] in fops:
                points.setdefault(p[0], p[1])
    names = list(points)
    fcomp, fidx = _with_outputs(core, fmodel, [fops[n].output(0) for n in names])
    qcomp, qidx = _with_outputs(core, qmodel, [points[n] for n in names])
    stats = {n: TensorStats() for n in names}
    for x in images:
        fcomp.infer({0: x})
        qcomp.infer({0: x})
        for n, fi, qi in zip(names, fidx, qidx):  # by index: outputs that share a tensor are one key in a result dict
            stats[n].add(fcomp.get_output_tensor(fi).data, qcomp.get_output_tensor(qi).data)
    rows = []
    for layer in layers:
        out = layer["output"][0]
        if out not in stats:
            continue
        ins = [INPUT_DB if p is None else stats[p[0]].sqnr_db() for p in layer["inputs"] if p is None or p[0] in stats]
        wdb = None
        head = fops.get(layer["name"])
        if layer["weight"] is not None and head is not None:
            ref = _const_value(_src(head.input(1)))
            if ref is not None and ref.shape == layer["weight"].shape:
                wdb = weight_sqnr(ref, layer["weight"])
        rows.append(layer_row(layer["name"], layer["op"], layer["nodes"], out, stats[out], ins, wdb))
    return rank(rows)
