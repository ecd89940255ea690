"""``estimate(graph, boards=...)``: latency and FPS with an interval, one row per board (and accelerator).

Each row has exactly the keys of :data:`KEYS` (scripts rely on them). Where edgekit cannot estimate
honestly (an accelerator with no published timing to calibrate on, a generic host profile without a
core count or clock) the row says ``"no estimate: <why>"`` in ``method`` and its numbers are None.
A user calibration (``edgekit estimate --fit``, :mod:`edgekit.estimate.user_fit`) for a board
replaces the calibration set's scale and interval for that board.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.boards.profiles import BoardProfile, list_profiles, load_profile
from edgekit.errors import EdgekitError
from edgekit.estimate.fit import load_fitted
from edgekit.estimate.roofline import RUNTIMES, LayerArrays, Setting, predict_ms, runtime_eff
from edgekit.estimate.source import Graph

KEYS = ("board", "runtime", "precision", "threads", "latency_ms", "low_ms", "high_ms", "fps", "method", "calibrated_on")
DEFAULT_RUNTIME = "ncnn"  # the runtime most of the calibration set was measured with
UNCALIBRATED_WIDEN = 1.5  # an uncalibrated runtime's interval is this much wider on each side (an assumption)


def _row(board, runtime, precision, threads, method, calibrated_on, ms=None, lo=None, hi=None) -> dict:
    r = lambda v: None if v is None else round(v, 2)  # noqa: E731
    return {"board": board, "runtime": runtime, "precision": precision, "threads": threads, "latency_ms": r(ms),
            "low_ms": r(lo), "high_ms": r(hi), "fps": None if not ms else round(1000.0 / ms, 2), "method": method,
            "calibrated_on": calibrated_on}


def calibration_label(fitted: dict) -> str:
    """``published timings: N rows (ncnn benchmark README, XNNPACK README; see edgekit/estimate/anchors.json)``."""
    return (f"published timings: {fitted['calibration_rows']} rows of {', '.join(fitted['calibration_models'])} on "
            f"{', '.join(fitted['calibration_boards'])} (edgekit/estimate/anchors.json)")


def estimate_board(graph: Graph, profile: BoardProfile, runtime: str | None = None, precision: str | None = None,
                   threads: int | None = None, user: dict | None = None) -> list[dict]:
    """Rows for one board: its CPU (or why not), then one per accelerator (no published figure: no estimate).

    Example:
        >>> from edgekit.estimate.source import load_graph
        >>> rows = estimate_board(load_graph("yolo-lite", 224), load_profile("rpi4"))  # doctest: +SKIP
        >>> rows[0]["runtime"], rows[0]["latency_ms"] > 0  # doctest: +SKIP
        ('ncnn', True)
    """
    fitted = load_fitted()
    runtime = runtime or graph.runtime or DEFAULT_RUNTIME
    precision = precision or graph.precision
    rows = []
    if not profile.cores:
        pass
    elif any(c.count is None or c.clock_ghz is None for c in profile.cores):
        rows.append(_row(profile.name, runtime, precision, threads, f"no estimate: the {profile.name} profile has no core "
                         "count or clock (a generic host); bench it instead (edgekit bench)", None))
    else:
        try:
            rows.append(_cpu_row(graph, profile, runtime, precision, threads, fitted, user))
        except EdgekitError as exc:  # a profile without a figure the model needs (memory bandwidth): say so
            if "unknown runtime" in str(exc) or "unknown precision" in str(exc):
                raise
            rows.append(_row(profile.name, runtime, precision, threads, f"no estimate: {exc}", None))
    for acc in profile.accelerators:
        if not acc.delegate:
            continue  # a display GPU or an audio DSP that no edgekit runtime uses
        rt = acc.delegate
        rows.append(_row(profile.name, rt, precision, None, f"no estimate: {acc.name} ({acc.kind}): no published timing "
                         "to calibrate on; measure it (edgekit bench --host)", None))
    return rows


def _cpu_row(graph, profile, runtime, precision, threads, fitted, user) -> dict:
    s = Setting.resolve(profile, runtime, precision, threads)
    params = fitted["params"]
    ms = predict_ms(LayerArrays(graph.layers), s, params)
    lo_f, hi_f = fitted["interval"]
    _, calibrated = runtime_eff(params, runtime)
    cores = f"{s.cores_used}x {s.core.type} @ {s.clock_ghz:g} GHz"
    method = f"roofline per layer ({len(graph.layers)} layers, {sum(x.macs for x in graph.layers) / 1e9:.2f} GMACs) on {cores}, {s.arith} arithmetic"
    label = calibration_label(fitted)
    if not calibrated:
        lo_f, hi_f = lo_f / UNCALIBRATED_WIDEN, hi_f * UNCALIBRATED_WIDEN
        method += (f"; {runtime} is not in the calibration set: efficiency borrowed from "
                   f"{'/'.join(k[4:] for k in params if k.startswith('eff.'))}, interval widened {UNCALIBRATED_WIDEN}x")
    scale = (user or {}).get("scale", {})
    if runtime in scale or "*" in scale:
        from edgekit.estimate.user_fit import user_label

        k = scale.get(runtime, scale.get("*"))
        ms *= k
        lo_f, hi_f = user["interval"]
        label = user_label(user)
        which = runtime if runtime in scale else "all runtimes measured"
        method += f"; scaled x{k:.3g} by your measurements on this board ({which})"
    if s.notes:
        method += "; " + "; ".join(s.notes)
    return _row(profile.name, runtime, precision, s.threads, method, label, ms, ms * lo_f, ms * hi_f)


def board_profiles(boards: list[str] | None) -> list[BoardProfile]:
    """The profiles to estimate for: the named ones (or ``all``/None: every shipped profile)."""
    if not boards or boards == ["all"]:
        return list_profiles()
    return [load_profile(b) for b in boards]


def estimate(graph: Graph, boards: list[str] | None = None, runtime: str | None = None, precision: str | None = None,
             threads: int | None = None, user_dir: str | Path | None = None, user_file: str | Path | None = None) -> list[dict]:
    """Estimate rows (:data:`KEYS`) for ``boards`` (None: every shipped profile).

    ``user_file`` (or, per board, ``<user_dir>/<board>.json``, default the user config folder) is a
    calibration written by ``edgekit estimate --fit``.

    Example:
        >>> from edgekit.estimate.source import load_graph
        >>> estimate(load_graph("yolo-lite", 224), ["rpi4"])[0]["latency_ms"]  # doctest: +SKIP
    """
    from edgekit.estimate.user_fit import find_user_calibration

    if runtime is not None and runtime not in RUNTIMES:
        raise EdgekitError(f"unknown runtime '{runtime}': use one of {', '.join(RUNTIMES)}")
    rows = []
    for profile in board_profiles(boards):
        user = find_user_calibration(profile.name, user_dir, user_file)
        rows += estimate_board(graph, profile, runtime, precision, threads, user)
    return rows
