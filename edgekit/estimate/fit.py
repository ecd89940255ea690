"""Fitting the latency model on the calibration set, its leave-one-out error, and the stored result.

:func:`fit_params` minimises the squared log error of :func:`~edgekit.estimate.roofline.predict_ms`
over the rows (scipy's ``least_squares``, parameters in log space so they stay positive), with a
weak ridge toward :data:`~edgekit.estimate.roofline.PRIORS`: 12 parameters against 22 rows need it
to stay physical where the rows say little. :func:`leave_one_out` refits without each row in turn
and predicts it: those errors are the estimator's stated error, and their 5th-95th percentiles
give every estimate its interval. ``benchmarks/estimate_fit.py`` runs both and writes
``edgekit/estimate/fitted.json`` (read by ``edgekit estimate``) and
``benchmarks/results/estimate-fit.json``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from importlib import resources

import numpy as np

from edgekit.boards.profiles import load_profile
from edgekit.errors import EdgekitError
from edgekit.estimate.roofline import PRIORS, LayerArrays, Setting, predict_ms

INTERVAL_QUANTILES = (0.05, 0.95)
RIDGE = 2.0  # weight of the prior; chosen by the leave-one-out error (1.0: max 38 %, 2.0: max 35 %)


def load_anchors() -> dict:
    """The calibration set (``anchors.json``): ``{"about", "rows": [{model, imgsz, board, ...}]}``.

    Example:
        >>> len(load_anchors()["rows"])
        22
    """
    return json.loads(resources.files("edgekit.estimate").joinpath("anchors.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def load_fitted() -> dict:
    """The stored fit (``fitted.json``): ``{"params", "interval", "loo", ...}``.

    Example:
        >>> sorted(load_fitted()["params"])[:2]
        ['bw_exp', 'bw_frac']
    """
    try:
        text = resources.files("edgekit.estimate").joinpath("fitted.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EdgekitError("edgekit/estimate/fitted.json is missing: run `python benchmarks/estimate_fit.py`") from None
    return json.loads(text)


def reference_arrays(rows: list[dict]) -> dict:
    """``{(model, imgsz): LayerArrays}`` of the calibration networks (built in torch, once each)."""
    from edgekit.estimate.reference_nets import reference_net
    from edgekit.estimate.torch_graph import torch_layers

    out = {}
    for r in rows:
        key = (r["model"], r["imgsz"])
        if key not in out:
            out[key] = LayerArrays(torch_layers(reference_net(r["model"]), r["imgsz"]))
    return out


def at_clock(profile, clock_ghz: float | None):
    """``profile`` with every core at ``clock_ghz`` (a source measured an older or slower board), or as it is."""
    if clock_ghz is None:
        return profile
    return replace(profile, cores=tuple(replace(c, clock_ghz=clock_ghz) for c in profile.cores))


def _settings(rows: list[dict]) -> list[Setting]:
    return [Setting.resolve(at_clock(load_profile(r["board"]), r.get("clock_ghz")), r["runtime"], r["precision"],
                            r["threads"]) for r in rows]


def fit_params(rows: list[dict], arrays: dict, priors: dict | None = None, ridge: float = RIDGE) -> dict:
    """Least squares in log space: the parameters that best predict ``rows`` (see the module docstring).

    Only the runtime efficiencies of runtimes present in ``rows`` are fitted.

    Example:
        >>> rows = load_anchors()["rows"]  # doctest: +SKIP
        >>> fit_params(rows, reference_arrays(rows))["eff.ncnn"]  # doctest: +SKIP
    """
    from scipy.optimize import least_squares

    priors = dict(priors or PRIORS)
    runtimes = {r["runtime"] for r in rows}
    names = [k for k in priors if not k.startswith(("eff.", "winograd.")) or k.split(".", 1)[1] in runtimes]
    x0 = np.log([priors[k][0] for k in names])
    spread = np.log([priors[k][1] for k in names])
    settings = _settings(rows)
    measured = np.log([r["latency_ms"] for r in rows])
    weight = np.sqrt([r.get("weight", 1.0) for r in rows])  # approximate figures count less
    nets = [arrays[(r["model"], r["imgsz"])] for r in rows]

    def residuals(x):
        params = dict(zip(names, np.exp(x)))
        pred = np.log([predict_ms(a, s, params) for a, s in zip(nets, settings)])
        return np.concatenate([weight * (pred - measured), ridge * (x - x0) / spread / np.sqrt(len(rows))])

    res = least_squares(residuals, x0, method="trf", x_scale=1.0, max_nfev=4000)
    return {k: float(v) for k, v in zip(names, np.exp(res.x))}


def predict_rows(rows: list[dict], arrays: dict, params: dict) -> list[float]:
    """Predicted ms of each row with ``params``."""
    return [predict_ms(arrays[(r["model"], r["imgsz"])], s, params) for r, s in zip(rows, _settings(rows))]


def leave_one_out(rows: list[dict], arrays: dict) -> list[dict]:
    """Refit without each row and predict it: ``[{**row, "loo_ms", "loo_error_pct"}]``.

    ``loo_error_pct`` = 100 x (predicted - measured) / measured.
    """
    out = []
    for i, row in enumerate(rows):
        params = fit_params(rows[:i] + rows[i + 1:], arrays)
        pred = predict_rows([row], arrays, params)[0]
        out.append({**row, "loo_ms": round(pred, 2), "loo_error_pct": round(100.0 * (pred - row["latency_ms"]) / row["latency_ms"], 1)})
    return out


def interval_factors(loo: list[dict]) -> tuple[float, float]:
    """(low, high) multipliers of an estimate from the leave-one-out ratios measured / predicted.

    Example:
        >>> interval_factors([{"latency_ms": 10, "loo_ms": 8}, {"latency_ms": 10, "loo_ms": 12.5}])
        (0.82, 1.22)
    """
    ratios = np.log([r["latency_ms"] / r["loo_ms"] for r in loo])
    lo, hi = np.quantile(ratios, INTERVAL_QUANTILES)
    return round(float(np.exp(min(lo, 0.0))), 2), round(float(np.exp(max(hi, 0.0))), 2)


def error_summary(loo: list[dict]) -> dict:
    """Median, mean and max absolute leave-one-out error in %."""
    err = np.abs([r["loo_error_pct"] for r in loo])
    return {"rows": len(loo), "median_abs_pct": round(float(np.median(err)), 1), "mean_abs_pct": round(float(err.mean()), 1),
            "max_abs_pct": round(float(err.max()), 1), "within_20_pct": int((err <= 20).sum())}
