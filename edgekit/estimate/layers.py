"""The estimator's view of a network: a list of :class:`Layer` rows (op kind, MACs, bytes moved).

Both graph readers (:mod:`edgekit.estimate.torch_graph` for checkpoints, Darknet ``.cfg`` files and
registry models; :mod:`edgekit.estimate.onnx_graph` for ``.onnx`` artifacts) produce these rows, so
the latency model never sees where a graph came from. Standard library only.

Op kinds (what runtimes implement with different kernels, hence different efficiency):

- ``conv``: dense convolution with a spatial kernel (grouped but not depthwise);
- ``conv3x3s1``: dense 3x3 stride-1 convolution with 16+ input and output channels, the shape ncnn
  computes with Winograd transforms (fewer multiplies than MACs);
- ``pointwise``: 1x1 convolution and fully connected layers (GEMM);
- ``depthwise``: one filter per channel (groups == channels);
- ``pool``: max/average pooling;
- ``elementwise``: add, multiply, activations that no convolution absorbed;
- ``memory``: concat, resize/upsample, transpose/shuffle copies (data movement only).

Activations and batch norm that directly follow a convolution are *fused* into it (every runtime
edgekit targets fuses them), so they add no row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

COMPUTE_KINDS = ("conv", "conv3x3s1", "pointwise", "depthwise")
KINDS = COMPUTE_KINDS + ("pool", "elementwise", "memory")


@dataclass(frozen=True)
class Layer:
    """One op after fusion: kind, multiply-accumulates, and elements read and written.

    ``weights`` counts parameters; ``inputs``/``outputs`` count activation elements. Bytes moved
    depend on the precision the runtime stores them in (:meth:`bytes_moved`).

    Example:
        >>> Layer("conv", macs=27648, weights=448, inputs=192, outputs=1024).bytes_moved(4)
        6656
    """

    kind: str
    macs: int = 0
    weights: int = 0
    inputs: int = 0
    outputs: int = 0
    name: str = ""

    def bytes_moved(self, bytes_per_element: float) -> float:
        """Weights + input and output activations, in bytes, at ``bytes_per_element``."""
        return (self.weights + self.inputs + self.outputs) * bytes_per_element


def conv_kind(in_channels: int, groups: int, kernel: tuple[int, ...], stride: tuple[int, ...] = (1, 1),
              out_channels: int = 0, dilation: tuple[int, ...] = (1, 1)) -> str:
    """``depthwise``, ``pointwise``, ``conv3x3s1`` or ``conv`` for a convolution's shape.

    Example:
        >>> conv_kind(32, 32, (3, 3)), conv_kind(32, 1, (1, 1)), conv_kind(3, 1, (3, 3)), conv_kind(32, 1, (3, 3), (1, 1), 64)
        ('depthwise', 'pointwise', 'conv', 'conv3x3s1')
    """
    if groups > 1 and groups == in_channels:
        return "depthwise"
    if all(k == 1 for k in kernel):
        return "pointwise"
    if (groups == 1 and tuple(kernel) == (3, 3) and all(v == 1 for v in stride) and all(v == 1 for v in dilation)
            and in_channels >= 16 and out_channels >= 16):
        return "conv3x3s1"
    return "conv"


def summarize(layers: list[Layer]) -> dict:
    """Totals per kind: ``{"macs", "weights", "layers", "by_kind": {kind: {"macs", "layers"}}}``.

    Example:
        >>> summarize([Layer("conv", macs=10), Layer("pool", inputs=4, outputs=1)])["by_kind"]["conv"]
        {'macs': 10, 'layers': 1}
    """
    by_kind = {k: {"macs": 0, "layers": 0} for k in KINDS}
    for layer in layers:
        by_kind[layer.kind]["macs"] += layer.macs
        by_kind[layer.kind]["layers"] += 1
    return {"macs": sum(x.macs for x in layers), "weights": sum(x.weights for x in layers), "layers": len(layers),
            "by_kind": {k: v for k, v in by_kind.items() if v["layers"]}}


def layers_to_json(layers: list[Layer]) -> list[dict]:
    """Plain dicts (for caching a graph's features as data)."""
    return [asdict(x) for x in layers]


def layers_from_json(rows: list[dict]) -> list[Layer]:
    """The inverse of :func:`layers_to_json`."""
    return [Layer(**r) for r in rows]
