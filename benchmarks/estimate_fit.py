"""Fit the board latency estimator on the calibration set and measure its leave-one-out error.

    .venv/bin/python benchmarks/estimate_fit.py

Reads edgekit/estimate/anchors.json (published timings from ../shared/ANCHORS.md), builds the
calibration networks (edgekit.estimate.reference_nets), fits the roofline's parameters
(edgekit.estimate.fit), refits once per row without it (leave-one-out) and writes:

- edgekit/estimate/fitted.json: what `edgekit estimate` uses (parameters, interval, LOO summary);
- benchmarks/results/estimate-fit.json: the same plus the per-row fitted and LOO predictions.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from edgekit.estimate.fit import (INTERVAL_QUANTILES, RIDGE, error_summary, fit_params, interval_factors,
                                      leave_one_out, load_anchors, predict_rows, reference_arrays)
    from edgekit.estimate.layers import summarize
    from edgekit.estimate.reference_nets import reference_net
    from edgekit.estimate.roofline import PRIORS
    from edgekit.estimate.torch_graph import torch_layers
    from edgekit.io import atomic_write_text

    t0 = time.perf_counter()
    anchors = load_anchors()
    rows = anchors["rows"]
    arrays = reference_arrays(rows)
    params = fit_params(rows, arrays)
    fitted_ms = predict_rows(rows, arrays, params)
    loo = leave_one_out(rows, arrays)
    summary = error_summary(loo)
    interval = interval_factors(loo)
    models = sorted({r["model"] for r in rows})
    nets = {f"{m} {s}": {k: v for k, v in summarize(torch_layers(reference_net(m), s)).items() if k != "by_kind"}
            for m, s in sorted({(r["model"], r["imgsz"]) for r in rows})}
    fitted = {"about": "edgekit estimate's fitted roofline parameters; written by benchmarks/estimate_fit.py",
              "params": {k: round(v, 5) for k, v in params.items()},
              "priors": {k: list(v) for k, v in PRIORS.items()}, "ridge": RIDGE,
              "interval": list(interval), "interval_quantiles": list(INTERVAL_QUANTILES), "loo": summary,
              "calibration_rows": len(rows), "calibration_models": models,
              "calibration_boards": sorted({r["board"] for r in rows})}
    atomic_write_text(ROOT / "edgekit" / "estimate" / "fitted.json", json.dumps(fitted, indent=1) + "\n")
    per_row = [{k: r[k] for k in ("model", "imgsz", "board", "runtime", "precision", "threads", "latency_ms")}
               | {"fitted_ms": round(f, 2), "fitted_error_pct": round(100 * (f - r["latency_ms"]) / r["latency_ms"], 1),
                  "loo_ms": r["loo_ms"], "loo_error_pct": r["loo_error_pct"]} for r, f in zip(loo, fitted_ms)]
    result = {**fitted, "networks": nets, "rows": per_row, "seconds": round(time.perf_counter() - t0, 1),
              "command": "python benchmarks/estimate_fit.py"}
    out = ROOT / "benchmarks" / "results" / "estimate-fit.json"
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(f"{'model':14} {'board':10} {'rt':6} {'prec':5} {'thr':>3} {'published':>9} {'LOO':>8} {'err %':>6}")
    for r in per_row:
        print(f"{r['model']:14} {r['board']:10} {r['runtime']:6} {r['precision']:5} {r['threads']:>3} "
              f"{r['latency_ms']:>9.1f} {r['loo_ms']:>8.1f} {r['loo_error_pct']:>+6.1f}")
    print(f"LOO: median {summary['median_abs_pct']} %, max {summary['max_abs_pct']} %, "
          f"{summary['within_20_pct']}/{summary['rows']} within 20 %; interval x{interval[0]}-x{interval[1]}")
    print("params: " + ", ".join(f"{k}={v:.4g}" for k, v in params.items()), flush=True)
    print(f"wrote {out.relative_to(ROOT)} and edgekit/estimate/fitted.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
