"""INT8 plain vs ``--keep-float auto`` vs float, per target: mAP@0.5 and host latency in one run.

Writes ``benchmarks/results/quant-<name>.json`` in the schema of issue 17::

    {"model", "targets": [{"target", "map50_fp32", "map50_int8_plain", "map50_int8_best", "kept_float": [...],
                           "calib_method", "latency_fp32_ms", "latency_int8_plain_ms", "latency_int8_best_ms",
                           "command", ...}]}

``plain`` is ``edgekit export --target T`` (the quantizer's default calibration); ``best`` is
``edgekit export --target T --keep-float auto --max-map-drop DROP`` (plus ``--calib-method M``
when given; ``auto`` first picks the method with the best held-out mAP): plain INT8 when it
already passes, else the fewest worst layers (by ``edgekit quant-report --target T``'s ranking)
left in float that pass.
The file is rewritten after each target, so a long run keeps what it finished. Latencies are measured at the end, the three artifacts interleaved round by round
on one thread (this host is shared and noisy: compare them as ratios within the run).

    python benchmarks/quant_seed.py edgekit/assets/weights/mobilenetv2_050-yolo-p3-fish4knowledge-320.pt \\
        --data ../shared/data/fish4knowledge/data.yaml --max-map-drop 0.01 \\
        --target onnx-int8 --target tflite-int8 --target openvino-int8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FLOAT_OF = {"onnx-int8": "onnx", "tflite-int8": "tflite", "openvino-int8": "openvino"}


def interleaved_latency(paths: dict[str, Path], image: np.ndarray, rounds: int = 7, runs: int = 20) -> dict:
    """Median ms per inference of each artifact, measured round-robin so drift hits all alike."""
    from edgekit.runtime.runner import ArtifactRunner

    runners = {k: ArtifactRunner(p, threads=1) for k, p in paths.items()}
    inputs = {k: r.prepare(image)[0] for k, r in runners.items()}
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            for _ in range(3):
                r.backend.run([inputs[k]])
            t0 = time.perf_counter()
            for _ in range(runs):
                r.backend.run([inputs[k]])
            times[k].append((time.perf_counter() - t0) / runs * 1000)
    return {k: round(float(np.median(v)), 3) for k, v in times.items()}


def _merge(out: Path, name: str, data: str, row: dict, command: str) -> None:
    """Write ``row`` into the results file, replacing that target's row and keeping the others.

    After each target, so a long run keeps what it finished; one run per target can go in
    parallel (the file is locked while it is read and rewritten). Each row keeps its command.
    """
    import fcntl
    import os

    fd = os.open(out.parent, os.O_RDONLY)  # the folder is the lock: no lock file left behind
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        doc = json.loads(out.read_text()) if out.exists() else {}
        rows = [r for r in doc.get("targets", []) if r["target"] != row["target"] and r.get("command")]
        doc = {"model": name, "data": data, "targets": sorted(rows + [{**row, "command": command}],
                                                               key=lambda r: r["target"])}
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, out)
    finally:
        os.close(fd)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--target", action="append", default=None, help="INT8 target(s) (default onnx-int8)")
    ap.add_argument("--max-map-drop", type=float, default=0.01, help="the gate --keep-float auto must pass")
    ap.add_argument("--name", help="results file name part (default: the model's)")
    ap.add_argument("--calib-method", help="the best try's --calib-method (default: the quantizer's own; auto tries "
                                           "every method the target has, one full verification each)")
    a = ap.parse_args(argv)

    import cv2

    from edgekit.export import export
    from edgekit.export.calib_method import METHODS
    from edgekit.export.verify import labelled_records

    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    rows = []
    with tempfile.TemporaryDirectory(prefix="quant-seed-") as tmp:
        tmp = Path(tmp)
        for target in a.target or ["onnx-int8"]:
            flt = FLOAT_OF[target]
            # the float artifact needs no gate (its mAP is the source's within 0.005): parity only, for the latency
            (fp32_row,) = export(a.model, [flt], out=tmp / "fp32", log=log).results
            plain = export(a.model, [target], data=a.data, out=tmp / "plain", max_map_drop=1.0, log=log)
            (int8_row,) = plain.results
            if a.calib_method is None and int8_row.ok and -int8_row.to_dict()["map50_delta"] <= a.max_map_drop:
                # plain already passes: --keep-float auto would stop at its first try, this same artifact
                best_row, best_dir = int8_row, tmp / "plain"
                best_row.kept_float = {"nodes": [], "layers": 0, "tries": 1, "plain_int8": None}
            else:
                best = export(a.model, [target], data=a.data, out=tmp / "best", max_map_drop=a.max_map_drop,
                              keep_float="auto", calib_method=a.calib_method, log=log)
                (best_row,), best_dir = best.results, tmp / "best"
            paths = {"fp32": tmp / "fp32" / fp32_row.file}
            if int8_row.ok:  # plain INT8 rejected on parity (the gate is open) has no artifact to time
                paths["plain"] = tmp / "plain" / int8_row.file
            if best_row.ok:
                paths["best"] = best_dir / best_row.file
            records, _, _ = labelled_records(a.data, None)
            lat = interleaved_latency(paths, cv2.imread(str(records[0].path)))
            rows.append({"target": target, "map50_fp32": int8_row.map["source_map50"],
                         "map50_int8_plain": int8_row.map["map50"],
                         "map50_int8_best": best_row.map["map50"] if best_row.ok else None,
                         "kept_float": best_row.kept_float["nodes"] if best_row.kept_float else [],
                         "kept_float_tries": best_row.kept_float["tries"] if best_row.kept_float else None,
                         "best_status": best_row.status, "best_reason": best_row.reason,
                         "kept_float_layers": best_row.kept_float["layers"] if best_row.kept_float else 0,
                         "max_map_drop": a.max_map_drop,
                         "calib_method": (best_row.calib_method or {}).get("method") or METHODS[target][0],
                         "calib_method_plain": METHODS[target][0],
                         "calib_method_tries": (best_row.calib_method or {}).get("tries"),
                         "calib_images": plain.calibration["images"],
                         "latency_fp32_ms": lat["fp32"], "latency_int8_plain_ms": lat.get("plain"),
                         "plain_status": int8_row.status, "plain_reason": int8_row.reason,
                         "latency_int8_best_ms": lat.get("best"), "latency": "median of 7 interleaved rounds x 20 "
                         "inferences, 1 thread, this host", "load_average_1min": round(__import__("os").getloadavg()[0], 1),
                         "images": int8_row.map["images"]})
            name = a.name or plain.to_dict()["model"]
            _merge(ROOT / "benchmarks" / "results" / f"quant-{name}.json", name, a.data, rows[-1],
                   "python benchmarks/quant_seed.py " + " ".join(argv or sys.argv[1:]))
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
