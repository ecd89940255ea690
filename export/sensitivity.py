"""Per-layer INT8 sensitivity of a QDQ ONNX model: which layers lose the signal, and why.

Built on onnxruntime's own debugging facility (``onnxruntime.quantization.qdq_loss_debug``):
both the float and the quantized model are made to output every intermediate tensor, run on
the same held-out images, and matched by name. For each quantizable node:

- ``sqnr_db``: signal-to-quantization-noise ratio of its output in the INT8 model against the
  float model (the error accumulated up to here; higher is better);
- ``lost_db``: how much SQNR this node loses against the best of its inputs (the error it
  *introduces*: what ranks the layers);
- ``weight_sqnr_db``: SQNR of its quantized weights;
- ``range``, ``abs_p999``: the float activation range and its 99.9th percentile of ``|x|``;
  a range far beyond the percentile (``outlier_ratio``) is the usual reason a per-tensor
  INT8 scale wastes its steps.

The ranked names feed ``--keep-float`` (``nodes_to_exclude`` of ``quantize_static``). A row's
``keep_float`` is what its loss needs left in float: its nodes *and the layers that read its
output*. A QDQ graph quantizes a tensor wherever an INT8 node reads it, so excluding only the
producer leaves its output rounded exactly as before: on mobilenetv2_050-yolo-p3 the worst row
(the stem conv, 11.7 dB lost) kept float alone raised the model's output SQNR by 0.14 dB on
held-out images; with the conv reading its output also float, by 3.1 dB.

The LiteRT and OpenVINO reports (:mod:`edgekit.export.sensitivity_tflite`,
:mod:`edgekit.export.sensitivity_openvino`) compute the same columns with the helpers below
(:class:`TensorStats`, :func:`layer_row`), so one table reads the same across formats.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

# nodes whose outputs carry their own quantization in a QDQ graph (what keep-float can exclude)
QUANTIZABLE = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Concat", "Resize", "MaxPool",
               "AveragePool", "GlobalAveragePool", "Sigmoid", "LeakyRelu", "Clip", "Relu", "HardSigmoid")
# an exact tensor (no noise) counts as this many dB
MAX_DB = 99.0
# the graph input is quantized like any activation: count it as ideal 8-bit quantization
# (6.02 * 8 + 1.76 dB), so that the first layer is charged only with what it adds
INPUT_DB = 49.9


def onnx_sensitivity(float_onnx: Path, qdq_onnx: Path, feeds: list[dict]) -> list[dict]:
    """Per-node rows (see the module docstring), most damaging first.

    Example:
        >>> rows = onnx_sensitivity(Path("fp32.onnx"), Path("int8.onnx"), [{"images": x}])  # doctest: +SKIP
        >>> rows[0]["name"], rows[0]["lost_db"]  # doctest: +SKIP
        ('/head/convs.1/Conv', 9.7)
    """
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as qld

    with tempfile.TemporaryDirectory(prefix="edgekit-sens-") as tmp:
        fa, qa = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        qld.modify_model_output_intermediate_tensors(str(float_onnx), str(fa))
        qld.modify_model_output_intermediate_tensors(str(qdq_onnx), str(qa))
        float_acts = qld.collect_activations(str(fa), feeds)
        qdq_acts = qld.collect_activations(str(qa), feeds)
    weights = qld.compute_weight_error(qld.create_weight_matching(str(float_onnx), str(qdq_onnx)))
    graph = onnx.load(str(float_onnx), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}

    def sqnr(name: str) -> float | None:
        """SQNR of a tensor as the next layer sees it (after its DequantizeLinear when it was quantized)."""
        got = qdq_acts.get(name + qld.DEQUANT_OUTPUT_SUFFIX, qdq_acts.get(name))
        if got is None or name not in float_acts:
            return None
        return min(float(qld.compute_signal_to_quantization_noice_ratio(float_acts[name], got)), MAX_DB)

    producer = {o: n for n in graph.node for o in n.output}
    by_name = {n.name: n for n in graph.node}
    graph_inputs = {i.name for i in graph.input}

    def upstream(tensor: str, seen: list) -> float:
        """SQNR where the tensor is measured; else (fused away in the INT8 graph, as Conv into its Clip)
        the best of its producer's inputs, collecting the fused producers in ``seen``."""
        if tensor in graph_inputs:  # measured exact when both runs are fed the same floats: charge 8-bit input
            return INPUT_DB
        db = sqnr(tensor)
        if db is not None:
            return db
        node = producer.get(tensor)
        if node is None:  # the graph input
            return INPUT_DB
        seen.append(node.name)
        ins = [upstream(i, seen) for i in node.input if i and i not in inits]
        return max(ins) if ins else MAX_DB

    rows = []
    for node in graph.node:
        if node.op_type not in QUANTIZABLE or not node.output or node.output[0] not in float_acts:
            continue
        out = node.output[0]
        db = sqnr(out)
        if db is None:  # not materialized in the INT8 graph: its loss is counted at the node that is
            continue
        fused: list[str] = []
        ins = [upstream(i, fused) for i in node.input if i and i not in inits]
        lost = (max(ins) if ins else INPUT_DB) - db
        wnode = next((by_name[n] for n in fused if by_name[n].op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul")),
                     node)
        acts = np.concatenate([a.ravel() for a in float_acts[out]])
        p999 = float(np.percentile(np.abs(acts), 99.9))
        lo, hi = float(acts.min()), float(acts.max())
        wname = next((i for i in wnode.input[1:2] if i in inits), None)
        rows.append({"name": node.name, "op": "+".join([*(by_name[n].op_type for n in reversed(fused)), node.op_type]),
                     "nodes": [*reversed(fused), node.name], "output": out,
                     "sqnr_db": _round(db), "lost_db": _round(lost),
                     "weight_sqnr_db": _round(weights.get(wname)) if wname else None,
                     "range": [round(lo, 4), round(hi, 4)], "abs_p999": round(p999, 4),
                     "outlier_ratio": round(max(abs(lo), abs(hi)) / p999, 2) if p999 > 0 else None})
    _add_readers(rows, graph)
    return rank(rows)


def _add_readers(rows: list[dict], graph) -> None:
    """Each row's ``keep_float``: its nodes, then every layer reading its output (a reader's whole fused row).

    Example:
        >>> from onnx import helper
        >>> g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["a"], name="c1"),
        ...                        helper.make_node("Conv", ["a", "w"], ["b"], name="c2")], "g", [], [])
        >>> rows = [{"nodes": ["c1"], "output": "a"}, {"nodes": ["c2"], "output": "b"}]
        >>> _add_readers(rows, g); [r["keep_float"] for r in rows]
        [['c1', 'c2'], ['c2']]
    """
    row_of = {name: r for r in rows for name in r["nodes"]}
    readers: dict[str, list[str]] = {}
    for node in graph.node:
        for i in node.input:
            readers.setdefault(i, []).append(node.name)
    for r in rows:
        keep = list(r["nodes"])
        for reader in readers.get(r["output"], []):
            keep += [n for n in (row_of[reader]["nodes"] if reader in row_of else [reader]) if n not in keep]
        r["keep_float"] = keep


class TensorStats:
    """Streaming float-vs-INT8 statistics of one tensor over several images (no activation kept whole).

    Accumulates the signal and noise energy (SQNR as ``qdq_loss_debug`` computes it: over all
    images at once), the float range, and a strided sample of ``|x|`` for the 99.9th percentile.

    Example:
        >>> t = TensorStats(); t.add(np.array([1.0, -2.0]), np.array([1.0, -2.1])); round(t.sqnr_db(), 1)
        27.0
    """

    SAMPLE = 65536  # |x| values kept per image for the percentile

    def __init__(self):
        self.signal = self.noise = 0.0
        self.lo, self.hi = np.inf, -np.inf
        self.samples: list[np.ndarray] = []

    def add(self, ref: np.ndarray, got: np.ndarray | None) -> None:
        ref = np.asarray(ref, np.float64).ravel()
        self.lo, self.hi = min(self.lo, float(ref.min())), max(self.hi, float(ref.max()))
        step = max(1, ref.size // self.SAMPLE)
        self.samples.append(np.abs(ref[::step]).astype(np.float32))
        if got is not None:
            self.signal += float(np.dot(ref, ref))
            d = ref - np.asarray(got, np.float64).ravel()
            self.noise += float(np.dot(d, d))

    def sqnr_db(self) -> float:
        eps = np.finfo(float).eps
        return min(float(20 * np.log10(max(self.signal ** 0.5, eps) / max(self.noise ** 0.5, eps))), MAX_DB)

    def ranges(self) -> dict:
        p999 = float(np.percentile(np.concatenate(self.samples), 99.9)) if self.samples else 0.0
        return {"range": [round(self.lo, 4), round(self.hi, 4)], "abs_p999": round(p999, 4),
                "outlier_ratio": round(max(abs(self.lo), abs(self.hi)) / p999, 2) if p999 > 0 else None}


def weight_sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    """SQNR (dB) of dequantized weights against the float ones.

    Example:
        >>> round(weight_sqnr(np.array([1.0, 2.0]), np.array([1.0, 2.0])), 1)
        99.0
    """
    t = TensorStats()
    t.add(ref, got)
    return t.sqnr_db()


def layer_row(name: str, op: str, nodes: list[str], output: str, out: TensorStats, inputs_db: list[float],
              weight_db: float | None) -> dict:
    """One report row (the columns of :func:`onnx_sensitivity`) from a layer's measured statistics.

    ``inputs_db``: the SQNR of the layer's activation inputs as it reads them (the graph input
    counts as :data:`INPUT_DB`); ``lost_db`` is the best of them minus the output's SQNR.

    Example:
        >>> t = TensorStats(); t.add(np.array([1.0, -2.0]), np.array([1.0, -2.1]))
        >>> r = layer_row("conv", "CONV_2D", ["conv"], "t", t, [INPUT_DB], 40.0); r["lost_db"], r["range"]
        (22.91, [-2.0, 1.0])
    """
    db = out.sqnr_db()
    return {"name": name, "op": op, "nodes": list(nodes), "output": output, "sqnr_db": _round(db),
            "lost_db": _round((max(inputs_db) if inputs_db else INPUT_DB) - db),
            "weight_sqnr_db": _round(weight_db), **out.ranges()}


def keep_float_nodes(rows: list[dict], n: int) -> list[str]:
    """The node names the ``n`` worst rows need in float, each once: a row's ``keep_float`` where it has
    one (ONNX: its nodes and its output's readers), else its ``nodes`` (a fused Conv+Clip row names both).

    Example:
        >>> keep_float_nodes([{"nodes": ["c", "r"]}, {"nodes": ["a"]}], 1)
        ['c', 'r']
        >>> keep_float_nodes([{"nodes": ["c"], "keep_float": ["c", "d"]}, {"nodes": ["d"], "keep_float": ["d"]}], 2)
        ['c', 'd']
    """
    names: list[str] = []
    for r in rows[:n]:
        names += [name for name in r.get("keep_float", r["nodes"]) if name not in names]
    return names


def prefix_nodes(rows: list[dict], n: int) -> list[str]:
    """Every node from the graph's start through the deepest of the ``n`` worst rows, in graph order.

    A layer that amplifies the rounding of its *input* (batch-norm-folded filters whose taps cancel) ranks
    worst, yet keeping it alone in float changes nothing while its input stays INT8; keeping the whole
    prefix up to it in float does (``benchmarks/int8_input_noise.py``; Yolo-Fastest's depthwise layers).

    Example:
        >>> rows = [{"nodes": ["c"], "position": 2}, {"nodes": ["a"], "position": 0}, {"nodes": ["b"], "position": 1},
        ...         {"nodes": ["d"], "position": 3}]
        >>> prefix_nodes(rows, 1), prefix_nodes(rows, 3)
        (['a', 'b', 'c'], ['a', 'b', 'c'])
    """
    deepest = max(r["position"] for r in rows[:n])
    return keep_float_nodes(sorted((r for r in rows if r["position"] <= deepest), key=lambda r: r["position"]),
                            len(rows))


def rank(rows: list[dict]) -> list[dict]:
    """Most damaging first: by SQNR lost at the node, then by the lowest output SQNR. Each row keeps its
    ``position`` in the graph order the rows came in (what :func:`prefix_nodes` needs).

    Example:
        >>> [r["name"] for r in rank([{"name": "a", "lost_db": 1.0, "sqnr_db": 30}, {"name": "b", "lost_db": 6.0, "sqnr_db": 20}])]
        ['b', 'a']
    """
    placed = [r if "position" in r else {**r, "position": i} for i, r in enumerate(rows)]  # the caller's rows unchanged
    return sorted(placed, key=lambda r: (-(r["lost_db"] if r["lost_db"] is not None else -1e9),
                                       r["sqnr_db"] if r["sqnr_db"] is not None else 1e9))


def _round(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 3)
