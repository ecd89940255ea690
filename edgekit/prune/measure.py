"""Before/after figures of a pruning run: test mAP with its paired bootstrap, and artifact latency.

Both models are exported by :func:`edgekit.export.export` (converted, verified, gated) and
benchmarked by :func:`edgekit.runtime.bench.bench_artifact` in one process, in interleaved
rounds (before, after, before, after...), so a busy host slows both alike. ``latency_ms`` of a
target is the median over rounds of the bench's p50 per-frame time (letterbox + inference +
decode/NMS, what ``edgekit bench`` reports); ``infer_ms`` the median over rounds of the mean
inference-only time (the part pruning changes; a mean, so busier-host spikes weigh in).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.prune.options import PruneOptions

ROUNDS = 5


def export_targets(weights: Path, targets, opts: PruneOptions, out: Path, log: Callable[[str], None],
                   data: str | None = None, gates: dict | None = None) -> dict[str, Path | str]:
    """Export ``weights`` to ``targets`` into ``out``; ``{target: artifact path, or the reason it failed}``.

    With ``data``, the artifacts are timed whatever their mAP: the gate is opened (``max_map_drop``
    1.0) because a before/after latency must not vanish when one INT8 export of the parent loses
    0.021 mAP. Parity still rejects. ``gates`` (when given) receives each target's mAP change
    against its own checkpoint and whether it passes edgekit export's default gate, so the report
    says which timed artifact would ship.

    Example:
        >>> export_targets(Path("pruned.pt"), ["onnx"], opts, Path("exp"), print)  # doctest: +SKIP
        {'onnx': PosixPath('exp/pruned-onnx.onnx')}
    """
    from edgekit.export import export

    rep = export(str(weights), list(targets), data=data, out=str(out), max_map_drop=1.0 if data else None,
                 log=lambda s: log(f"  export: {s}"))
    if gates is not None:
        gates.update(gate_verdicts([r.to_dict() for r in rep.results]))
    return {r.target: (out / r.file if r.ok and r.file else f"{r.status}: {r.reason}") for r in rep.results}


def gate_verdicts(rows: list[dict]) -> dict:
    """``{target: gate_verdict}`` of an export report's rows (``ExportResult.to_dict``, or ``export_report.json``'s
    ``targets``) that were scored on mAP and kept.

    Example:
        >>> gate_verdicts([{"target": "onnx", "status": "ok", "map50_delta": 0.0, "map50_delta_ci95": [0.0, 0.0]}])
        {'onnx': {'map50_delta': 0.0, 'default_gate': -0.005, 'passes_default_gate': True, 'map50_delta_ci95': [0.0, 0.0]}}
    """
    return {t["target"]: gate_verdict(t["target"], t["map50_delta"], t.get("map50_delta_ci95"))
            for t in rows if t["status"] == "ok" and t.get("map50_delta") is not None}


def gate_verdict(target: str, delta: float, ci95: list | None = None) -> dict:
    """An artifact's mAP@0.5 change (its paired-bootstrap interval when given) and whether ``edgekit
    export``'s default gate for its precision passes it.

    Example:
        >>> gate_verdict("tflite-int8", -0.0228)
        {'map50_delta': -0.0228, 'default_gate': -0.02, 'passes_default_gate': False}
    """
    from edgekit.export.targets import get_target
    from edgekit.export.verify import DEFAULT_MAX_MAP_DROP

    limit = DEFAULT_MAX_MAP_DROP[get_target(target).precision]
    return {"map50_delta": round(delta, 6), "default_gate": -limit, "passes_default_gate": delta >= -limit,
            **({"map50_delta_ci95": [round(float(c), 6) for c in ci95]} if ci95 else {})}


def _images(data: str, split: str, limit: int = 32):
    from edgekit.data import load_dataset
    from edgekit.runtime.bench import load_images

    return load_images([r.path for r in load_dataset(data).split(split)], limit=limit)


def _bench(path: Path, images, opts: PruneOptions) -> dict:
    from edgekit.runtime.bench import bench_artifact

    row = bench_artifact(path, images, threads=opts.threads, frames=opts.bench_frames, warmup=10)
    return {"infer_ms": row.get("infer_ms"), "p50_ms": row.get("p50_ms")}


def board_estimate(weights: str | Path, opts: PruneOptions, imgsz: int) -> dict:
    """The estimator's CPU row for ``weights`` on ``opts.board`` (``--target-latency MS --board NAME``).

    Raises:
        EdgekitError: an unknown board, or one the estimator cannot estimate (it says why).

    Example:
        >>> board_estimate("best.pt", PruneOptions("best.pt", "d.yaml", target_latency_ms=80, board="rpi4"), 320)  # doctest: +SKIP
        {'board': 'rpi4', 'runtime': 'ncnn', 'precision': 'fp32', 'latency_ms': 95.3, 'low_ms': 71.2, ...}
    """
    from edgekit.estimate import estimate
    from edgekit.estimate.source import load_graph

    rows = estimate(load_graph(str(weights), imgsz), [opts.board], runtime=opts.board_runtime,
                    precision=opts.board_precision, threads=opts.threads)
    cpu = next((r for r in rows if r["latency_ms"] is not None), None)
    if cpu is None:
        why = rows[0]["method"] if rows else f"the {opts.board} profile has no CPU to estimate"
        raise EdgekitError(f"--board {opts.board}: {why}; prune with --target-latency on this host (no --board), "
                           "--ratio or --target-macs")
    return cpu


def latency_of(weights: str | Path, opts: PruneOptions, out: Path, imgsz: int, log: Callable[[str], None]) -> float:
    """Latency (ms) that ``--target-latency`` steers by: with ``opts.board``, the estimate on that board;
    else the median per-frame latency (the bench's p50) of ``weights`` exported to ONNX, on this host.

    Example:
        >>> latency_of("best.pt", opts, Path("runs/prune/x/latency/step0"), 320, print)  # doctest: +SKIP
        6.9
    """
    if opts.board:
        row = board_estimate(weights, opts, imgsz)
        log(f"estimate on {row['board']} ({row['runtime']}, {row['precision']}, {row['threads']} threads): "
            f"{row['latency_ms']} ms [{row['low_ms']}, {row['high_ms']}] ({row['method']})")
        return float(row["latency_ms"])
    art = export_targets(Path(weights), ["onnx"], opts, out, log)["onnx"]
    if not isinstance(art, Path):
        raise EdgekitError(f"the ONNX export for --target-latency failed ({art}): prune with --ratio or --target-macs")
    images = _images(opts.data, "val", 16)
    return statistics.median(_bench(art, images, opts)["p50_ms"] for _ in range(3))


def test_split(data: str) -> str:
    """``test`` when the dataset has one, else ``val``."""
    from edgekit.data import load_dataset

    return "test" if "test" in load_dataset(data).splits else "val"


def map_with_interval(before: Path, after: Path, data: str, imgsz: int) -> dict:
    """mAP@0.5 and @0.5:0.95 of both checkpoints on the test split, and the paired bootstrap of the difference.

    Example:
        >>> map_with_interval(Path("best.pt"), Path("pruned.pt"), "data.yaml", 320)["delta_map50_ci95"]  # doctest: +SKIP
        [-0.031, 0.012]
    """
    from edgekit.data import load_dataset
    from edgekit.metrics import evaluate_detections
    from edgekit.metrics.bootstrap import paired_bootstrap_map50
    from edgekit.models.checkpoint import load_checkpoint
    from edgekit.validate import predict_records

    ds = load_dataset(data)
    split = test_split(data)
    recs = ds.split(split)
    gts = [r.truth() for r in recs]
    preds, res = [], {}
    for key, path in (("before", before), ("after", after)):
        model, _ = load_checkpoint(path)
        p, _ = predict_records(model, recs, imgsz)
        m = evaluate_detections(gts, p, ds.names).to_dict()
        res[key] = {"map50": round(m["map50"], 5), "map50_95": round(m["map50_95"], 5)}
        preds.append(p)
    boot = paired_bootstrap_map50(gts, preds[0], preds[1], ds.names, resamples=200)
    return {**res, "split": split, "images": len(recs), "delta_map50": boot["delta"],
            "delta_map50_ci95": boot["ci95"], "bootstrap_resamples": boot["resamples"]}


def artifact_latency(arts: dict, images, opts: PruneOptions, log: Callable[[str], None], rounds: int = ROUNDS) -> dict:
    """``{key: {"latency_ms": {target: ms}, "infer_ms": {target: ms}}}`` of ``arts`` (``{key: {target: path}}``),
    benchmarked in interleaved rounds (a busy host slows every artifact alike); medians over the rounds.

    Example:
        >>> artifact_latency({"before": {"onnx": Path("b.onnx")}, "after": {"onnx": Path("a.onnx")}}, imgs, opts, print)  # doctest: +SKIP
        {'before': {'latency_ms': {'onnx': 7.9}, 'infer_ms': {'onnx': 7.2}}, 'after': {...}}
    """
    targets = list(opts.latency_targets)
    lat: dict = {k: {t: [] for t in targets} for k in arts}
    for r in range(rounds):
        for t in targets:
            for key in arts:
                if isinstance(arts[key].get(t), Path):
                    lat[key][t].append(_bench(arts[key][t], images, opts))
        log(f"latency round {r + 1}/{rounds} done")
    med = lambda rows, k: round(statistics.median(v[k] for v in rows), 3) if rows else None  # noqa: E731
    return {key: {"latency_ms": {t: med(lat[key][t], "p50_ms") for t in targets},
                  "infer_ms": {t: med(lat[key][t], "infer_ms") for t in targets}} for key in arts}


def measure_before_after(result: dict, before: Path, after: Path, opts: PruneOptions, out: Path, imgsz: int,
                         log: Callable[[str], None]) -> dict:
    """Test mAP (+ bootstrap) and artifact latency of ``before`` and ``after``; ``result``'s before/after updated.

    Example:
        >>> measure_before_after(result, Path("best.pt"), Path("out/pruned.pt"), opts, Path("out"), 320, print)  # doctest: +SKIP
    """
    log(f"measuring mAP on the {test_split(opts.data)} split")
    maps = map_with_interval(before, after, opts.data, imgsz)
    arts, gates = {}, {}
    for key, path in (("before", before), ("after", after)):
        log(f"exporting the {key} model to {', '.join(opts.latency_targets)}")
        gates[key] = {}
        arts[key] = export_targets(path, opts.latency_targets, opts, out / "export" / key, log, data=opts.data,
                                   gates=gates[key])
    images = _images(opts.data, maps["split"])
    lat = artifact_latency(arts, images, opts, log)
    upd = {}
    for key in arts:
        row = dict(result[key])
        row.update({"map50": maps[key]["map50"], "map50_95": maps[key]["map50_95"], "val_map50": result[key]["map50"],
                    "val_map50_95": result[key]["map50_95"]})
        row.update(lat[key])
        row["artifacts"] = {t: str(a) for t, a in arts[key].items()}
        row["artifacts_gate"] = gates[key]
        upd[key] = row
    upd["map_split"] = maps["split"]
    upd["map50_delta"], upd["map50_delta_ci95"] = maps["delta_map50"], maps["delta_map50_ci95"]
    upd["bootstrap"] = {"resamples": maps["bootstrap_resamples"], "images": maps["images"]}
    upd["latency_setup"] = {"rounds": ROUNDS, "frames": opts.bench_frames, "threads": opts.threads,
                            "statistic": "latency_ms: median over rounds of the p50 per-frame predict time "
                                         "(letterbox + inference + decode/NMS, as `edgekit bench`); infer_ms: "
                                         "median over rounds of the mean inference-only time",
                            "images": len(images)}
    return upd
