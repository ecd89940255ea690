"""The latency model: a per-layer roofline with fitted efficiencies and overheads.

For one board, runtime, precision and thread count, each fused layer (:class:`~edgekit.estimate.layers.Layer`)
takes ``max(compute, memory) + overhead`` and the network takes the sum:

- compute = MACs / (rate of one core x efficiency x thread speed-up), where the core's rate is its
  clock x multiply-accumulates per cycle at the arithmetic precision (board profile:
  ``fp32_flops_per_cycle``, ``fp16_flops_per_cycle``, ``int8_ops_per_cycle``); the efficiency is
  ``eff[runtime] x prec[precision] x kind[op kind] x (inorder if the core is in-order)`` (x ``winograd[runtime]``
  for dense 3x3 stride-1 convolutions on runtimes that use Winograd); T threads
  run ``1 + (T - 1) x thread_gain`` times faster;
- memory = (weights + input + output elements) x bytes per element / (board bandwidth x ``bw_frac``
  x ``(T / cores) ** bw_exp``): one core cannot draw the whole bus, four share it;
- overhead = ``layer_cycles`` / clock: kernel dispatch, thread wake-up and sync per layer. (A separate
  multi-thread sync term was tried: it let a leave-one-out fit make 4 threads slower than 1, and
  the error without it was no worse; see README "Latency estimate".)

The max is a smooth one (p-norm, p = 4) so that the fit has gradients. Parameters are fitted in
log space by :mod:`edgekit.estimate.fit`; their values, with the leave-one-out interval, live in
``fitted.json``. numpy and the board profiles only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.boards.profiles import BoardProfile, Core
from edgekit.errors import EdgekitError
from edgekit.estimate.layers import KINDS, Layer

# runtime names accepted by --runtime -> the name board profiles list it under
RUNTIMES = {"ncnn": "ncnn", "litert": "litert+xnnpack", "onnxruntime": "onnxruntime", "openvino": "openvino"}
PRECISIONS = ("fp32", "fp16", "int8")
BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
SMOOTH_P = 4.0

# parameter -> (prior value, prior spread as a factor): the fit's log-space ridge pulls toward these
# (figures from ANCHORS.md: runtimes reach 35-60 % of FP32 peak; depthwise and in-order cores less)
PRIORS = {
    "eff.ncnn": (0.5, 3.0), "eff.litert": (0.5, 3.0),
    "prec.fp16": (1.0, 2.0), "prec.int8": (0.7, 2.0),
    "kind.depthwise": (0.3, 3.0), "kind.conv": (1.0, 2.0),
    "inorder": (0.7, 2.0), "thread_gain": (0.8, 2.0),
    "bw_frac": (0.5, 4.0), "bw_exp": (0.5, 3.0),
    "layer_cycles": (2e4, 10.0),
    # ncnn runs dense 3x3 stride-1 convolutions as Winograd F(6x6,3x3)/F(4x4,3x3) (conv3x3s1_winograd63/43,
    # fp32, fp16 and int8): 4-5x fewer multiplies than MACs, about half of that left after the transforms.
    # Only the two approximate YOLOv2 rows of the calibration set have such layers.
    "winograd.ncnn": (2.0, 2.0),
}


@dataclass(frozen=True)
class Setting:
    """Where a model runs: board, runtime, precision asked for, threads; and what that resolves to.

    Example:
        >>> from edgekit.boards.profiles import load_profile
        >>> s = Setting.resolve(load_profile("rpi5"), "ncnn", "fp32", 4)
        >>> s.arith, s.cores_used
        ('fp16', 4)
    """

    board: str
    runtime: str
    precision: str  # as asked
    arith: str  # the arithmetic that runs (ncnn uses fp16 where the core has it)
    threads: int
    cores_used: int
    core: Core  # the slowest core among those used (a static split waits for it)
    clock_ghz: float
    macs_per_s: float  # one core, at `arith`, before efficiency
    bandwidth_gbs: float
    cores_total: int
    notes: tuple[str, ...] = ()

    @staticmethod
    def resolve(profile: BoardProfile, runtime: str, precision: str, threads: int | None) -> "Setting":
        """Resolve a request against a board profile; EdgekitError where it has no CPU figures."""
        if runtime not in RUNTIMES:
            raise EdgekitError(f"unknown runtime '{runtime}': use one of {', '.join(RUNTIMES)}")
        if precision not in PRECISIONS:
            raise EdgekitError(f"unknown precision '{precision}': use one of {', '.join(PRECISIONS)}")
        cores = [c for c in profile.cores for _ in range(c.count or 0)]
        if not cores or any(c.clock_ghz is None or c.fp32_flops_per_cycle is None for c in cores):
            raise EdgekitError(f"{profile.name} has no CPU core count, clock or FLOP/cycle in its profile")
        notes = []
        fp16_everywhere = all(c.fp16_flops_per_cycle for c in cores)
        arith = precision
        if precision == "fp32" and runtime == "ncnn" and fp16_everywhere:
            arith = "fp16"
            notes.append("ncnn computes in fp16 on this core (its default use_fp16_arithmetic)")
        if precision == "fp16" and not fp16_everywhere:
            arith = "fp32"
            notes.append("no fp16 arithmetic on this core: fp16 weights are computed in fp32")
        cores.sort(key=lambda c: -_core_rate(c, arith))
        threads = threads or sum(1 for c in cores if _core_rate(c, arith) == _core_rate(cores[0], arith))
        used = min(threads, len(cores))
        if threads > len(cores):
            notes.append(f"{threads} threads on {len(cores)} cores: estimated as {len(cores)}")
        slowest = cores[used - 1]
        bw = profile.memory.bandwidth_gbs if profile.memory and profile.memory.bandwidth_gbs else None
        if bw is None:
            raise EdgekitError(f"{profile.name} has no memory bandwidth_gbs in its profile")
        return Setting(profile.name, runtime, precision, arith, threads, used, slowest, slowest.clock_ghz,
                       _core_rate(slowest, arith), bw, len(cores), tuple(notes))


def _core_rate(core: Core, arith: str) -> float:
    """Multiply-accumulates per second of one core at ``arith`` (2 FLOPs or 2 int8 ops per MAC)."""
    per_cycle = {"fp32": core.fp32_flops_per_cycle, "fp16": core.fp16_flops_per_cycle or core.fp32_flops_per_cycle,
                 "int8": core.int8_ops_per_cycle or 2 * core.fp32_flops_per_cycle}[arith]
    return core.clock_ghz * 1e9 * per_cycle / 2.0


class LayerArrays:
    """A layer list as numpy columns, so a prediction is a few vector operations (the fit makes thousands)."""

    def __init__(self, layers: list[Layer]):
        if not layers:
            raise EdgekitError("the model has no layers to estimate: is the graph empty?")
        self.macs = np.array([x.macs for x in layers], dtype=np.float64)
        self.elements = np.array([x.weights + x.inputs + x.outputs for x in layers], dtype=np.float64)
        self.kind = np.array([KINDS.index(x.kind) for x in layers])
        self.n = len(layers)


def runtime_eff(params: dict, runtime: str) -> tuple[float, bool]:
    """(efficiency, calibrated?): an uncalibrated runtime borrows the geometric mean of the calibrated ones."""
    key = f"eff.{runtime}"
    if key in params:
        return params[key], True
    effs = [v for k, v in params.items() if k.startswith("eff.")]
    return float(np.exp(np.mean(np.log(effs)))), False


def predict_ms(arrays: LayerArrays, s: Setting, params: dict) -> float:
    """Predicted inference latency in ms of a network (its :class:`LayerArrays`) in setting ``s``.

    Example:
        >>> from edgekit.boards.profiles import load_profile
        >>> from edgekit.estimate.fit import load_fitted
        >>> s = Setting.resolve(load_profile("rpi4"), "ncnn", "fp32", 4)
        >>> predict_ms(LayerArrays([Layer("pointwise", macs=10**9, weights=10**6)]), s, load_fitted()["params"]) > 10
        True
    """
    p = params
    eff, _ = runtime_eff(p, s.runtime)
    eff *= p.get(f"prec.{s.arith}", 1.0)
    if s.core.pipeline == "in-order":
        eff *= p["inorder"]
    per_kind = {k: p.get(f"kind.{k}", 1.0) for k in KINDS}
    per_kind["conv3x3s1"] = per_kind["conv"] * p.get(f"winograd.{s.runtime}", 1.0)
    kind_f = np.array([per_kind[k] for k in KINDS])[arrays.kind]
    speedup = 1.0 + (s.cores_used - 1) * p["thread_gain"]
    compute = arrays.macs / (s.macs_per_s * eff * kind_f * speedup)
    bw = s.bandwidth_gbs * 1e9 * p["bw_frac"] * (s.cores_used / s.cores_total) ** p["bw_exp"]
    memory = arrays.elements * BYTES[s.arith] / bw
    core = (compute ** SMOOTH_P + memory ** SMOOTH_P) ** (1.0 / SMOOTH_P)
    overhead = p["layer_cycles"] / (s.clock_ghz * 1e9)
    return float((core.sum() + overhead * arrays.n) * 1e3)
