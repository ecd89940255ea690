"""Board latency estimates: how fast a model will run on a board before it is flashed (host side).

``estimate(load_graph(MODEL), boards=["rpi4"])`` -> rows of ``{"board", "runtime", "precision",
"threads", "latency_ms", "low_ms", "high_ms", "fps", "method", "calibrated_on"}``. The model is a
per-layer roofline (:mod:`edgekit.estimate.roofline`) over the graph's fused layers
(:mod:`edgekit.estimate.torch_graph`, :mod:`edgekit.estimate.onnx_graph`) against the board
profile's compute and memory figures, with efficiencies fitted on published board timings
(``anchors.json``, :mod:`edgekit.estimate.fit`) and, optionally, the user's own measurements
(:mod:`edgekit.estimate.user_fit`). The interval is the leave-one-out error on the calibration set.

Example:
    >>> from edgekit.estimate import estimate, load_graph
    >>> rows = estimate(load_graph("yolo-lite", 224), ["rpi4"])  # doctest: +SKIP
"""

from edgekit.estimate.estimator import KEYS, estimate, estimate_board
from edgekit.estimate.source import Graph, load_graph

__all__ = ["KEYS", "estimate", "estimate_board", "Graph", "load_graph"]
