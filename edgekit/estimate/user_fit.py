"""``edgekit estimate --fit BENCH.json``: adapt the estimator to the user's own board from a few measurements.

In the spirit of HELP (Lee et al., NeurIPS 2021: a latency predictor adapted to a new device from
~10 measurements), the calibration set's model stays as it is and only a per-board, per-runtime
scale is learnt from the user's ``edgekit bench --json`` results on that board: the mean log ratio
measured / predicted, shrunk toward 1 by ``n / (n + SHRINK)`` (one measurement moves it 80 % of the
way, ten nearly all of it). The interval becomes the residuals left after scaling, never narrower
than the calibration set's leave-one-out interval shrunk by ``1 / sqrt(1 + n)``.

The result is a small JSON in the user's config folder (``$EDGEKIT_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/edgekit``, else ``~/.config/edgekit``): ``estimates/<board>.json``, which every
later ``edgekit estimate`` for that board applies and names in ``calibrated_on``.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

from edgekit.errors import EdgekitError

SHRINK = 0.25  # (measurement noise / prior spread)^2 with ~10 % noise and the calibration set's ~20 % spread
FORMAT = "edgekit-estimate-calibration-1"
BACKEND_RUNTIME = {"onnxruntime": "onnxruntime", "litert": "litert", "openvino": "openvino", "ncnn": "ncnn"}


def config_dir() -> Path:
    """The user's edgekit config folder (read at call time, never at import).

    Example:
        >>> os.environ["EDGEKIT_CONFIG_DIR"] = "/tmp/ek"; str(config_dir())
        '/tmp/ek'
        >>> del os.environ["EDGEKIT_CONFIG_DIR"]
    """
    if os.environ.get("EDGEKIT_CONFIG_DIR"):
        return Path(os.environ["EDGEKIT_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgekit"


def user_label(user: dict) -> str:
    """``calibrated_on`` of an estimate that used a user calibration."""
    return (f"your measurements on {user['board']}: {user['rows']} bench rows from {user['source']} "
            f"(fitted {user['created'][:10]}, {user.get('path', '')})")


def find_user_calibration(board: str, user_dir: str | Path | None = None, user_file: str | Path | None = None) -> dict | None:
    """The user calibration for ``board``: ``user_file`` if given (it must be for that board), else
    ``<user_dir or config_dir()/estimates>/<board>.json`` when it exists; None otherwise."""
    if user_file is not None:
        data = _read(Path(user_file))
        return data if data["board"] == board else None
    path = Path(user_dir or config_dir() / "estimates") / f"{board}.json"
    return _read(path) if path.is_file() else None


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EdgekitError(f"{path} is not a readable estimate calibration ({exc}): refit with edgekit estimate --fit") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EdgekitError(f"{path} is not an edgekit estimate calibration: refit with edgekit estimate --fit")
    return {**data, "path": str(path)}


def _artifact_path(row: dict, bench_file: Path, artifacts_dir: Path | None) -> Path | None:
    for cand in (Path(row.get("path") or ""), bench_file.parent / str(row.get("artifact")),
                 (artifacts_dir / str(row.get("artifact"))) if artifacts_dir else None):
        if cand is not None and str(cand) not in ("", ".") and cand.is_file():
            return cand
    return None


def row_board(row: dict, local: str | None) -> str | None:
    """The board a bench row was measured on: the remote board it came back from, else the JSON's host."""
    return (row.get("remote") or {}).get("board") or (None if row.get("remote") else local)


def measured_rows(bench: dict, bench_file: Path, artifacts_dir: Path | None = None) -> list[dict]:
    """The usable results of a bench JSON: ``[{artifact, runtime, precision, threads, measured_ms}]``.

    ``measured_ms`` is the inference time (``infer_ms``) where the backend reported it, else p50
    (which includes pre/post-processing).
    """
    from edgekit.estimate.source import PRECISION_WORDS

    out, missing = [], []
    for row in bench.get("results") or []:
        runtime = BACKEND_RUNTIME.get(str(row.get("backend")))
        ms = row.get("infer_ms") or row.get("p50_ms")
        if row.get("error") or runtime is None or not ms or row.get("fell_back") or row.get("delegate") or row.get("device"):
            continue  # accelerators and failures are not CPU measurements
        path = _artifact_path(row, bench_file, artifacts_dir)
        if path is None:
            missing.append(str(row.get("artifact")))
            continue
        precision = PRECISION_WORDS.get(str(row.get("artifact_precision") or "fp32").lower(), "fp32")
        out.append({"artifact": path, "runtime": runtime, "precision": precision, "threads": row.get("threads"),
                    "measured_ms": float(ms)})
    if not out:
        hint = f" (artifacts not found: {', '.join(missing[:3])}; give --artifacts DIR)" if missing else ""
        raise EdgekitError(f"{bench_file} has no CPU bench result to fit on{hint}: run edgekit bench --json on the board")
    return out


def fit_user(bench_file: str | Path, board: str | None = None, artifacts_dir: str | Path | None = None) -> dict:
    """Fit the per-runtime scale for the board of ``bench_file``; the calibration dict (not yet written).

    Example:
        >>> cal = fit_user("bench-rpi4.json")  # doctest: +SKIP
        >>> cal["board"], cal["scale"]  # doctest: +SKIP
        ('rpi4', {'onnxruntime': 1.21, '*': 1.21})
    """
    import numpy as np

    from edgekit.boards.profiles import load_profile
    from edgekit.estimate.fit import load_fitted
    from edgekit.estimate.roofline import LayerArrays, Setting, predict_ms
    from edgekit.estimate.source import load_graph

    bench_file = Path(bench_file)
    try:
        bench = json.loads(bench_file.read_text())
    except (OSError, ValueError) as exc:
        raise EdgekitError(f"{bench_file} is not a readable bench JSON ({exc}): give the output of edgekit bench --json") from None
    if not isinstance(bench, dict) or "results" not in bench:
        raise EdgekitError(f"{bench_file} is not an edgekit bench JSON (no 'results'): give the output of edgekit bench --json")
    local = (bench.get("host") or {}).get("board")
    boards = sorted({str(row_board(r, local)) for r in bench["results"] if not r.get("error")})
    if board is None:
        if len(boards) > 1:
            raise EdgekitError(f"{bench_file} has rows from several boards ({', '.join(boards)}): give --board")
        board = boards[0] if boards and boards[0] != "None" else None
    if not board:
        raise EdgekitError(f"{bench_file} does not say which board it ran on (host.board is empty): give --board")
    profile = load_profile(board)
    fitted = load_fitted()
    # rows measured on that board: the local ones when the JSON's host is it (or --board says so for a
    # JSON without remote rows), else the rows `edgekit bench --host` brought back from it
    mine = [r for r in bench["results"] if row_board(r, local) in (board, profile.name)]
    if not mine and not any(r.get("remote") for r in bench["results"]):
        mine = [r for r in bench["results"]]  # --board names the board a plain bench JSON was made on
    rows = measured_rows({"results": mine}, bench_file, Path(artifacts_dir) if artifacts_dir else None)
    graphs: dict = {}
    points = []
    for r in rows:
        key = str(r["artifact"])
        if key not in graphs:
            graphs[key] = LayerArrays(load_graph(key).layers)
        pred = predict_ms(graphs[key], Setting.resolve(profile, r["runtime"], r["precision"], r["threads"]), fitted["params"])
        points.append({**r, "artifact": r["artifact"].name, "predicted_ms": round(pred, 3),
                       "log_ratio": math.log(r["measured_ms"] / pred)})
    scale, resid = {}, []
    for rt in sorted({p["runtime"] for p in points}):
        lr = [p["log_ratio"] for p in points if p["runtime"] == rt]
        s = sum(lr) / (len(lr) + SHRINK)
        scale[rt] = round(math.exp(s), 4)
        resid += [v - s for v in lr]
    pooled = [p["log_ratio"] for p in points]
    scale["*"] = round(math.exp(sum(pooled) / (len(pooled) + SHRINK)), 4)
    g_lo, g_hi = (math.log(v) for v in fitted["interval"])
    floor = 1.0 / math.sqrt(1 + len(points))
    lo = min(min(resid) - 0.05, g_lo * floor)
    hi = max(max(resid) + 0.05, g_hi * floor)
    return {"format": FORMAT, "board": profile.name, "scale": scale,
            "interval": [round(float(np.exp(lo)), 3), round(float(np.exp(hi)), 3)], "rows": len(points),
            "source": bench_file.name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "method": f"per-runtime scale = exp(mean log(measured/predicted) x n/(n+{SHRINK})), HELP-style adaptation "
                      "of the calibration-set model; interval from the residuals after scaling",
            "points": [{k: v for k, v in p.items() if k != "log_ratio"} for p in points]}


def write_user_calibration(cal: dict, out: str | Path | None = None) -> Path:
    """Write ``cal`` atomically to ``out`` (default ``<config_dir>/estimates/<board>.json``)."""
    from edgekit.io import atomic_write_text

    path = Path(out) if out else config_dir() / "estimates" / f"{cal['board']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(cal, indent=1) + "\n")
