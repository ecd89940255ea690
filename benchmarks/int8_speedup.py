"""INT8 vs float latency of the seed detectors, per backend, one thread, through ``edgekit.runtime.load``.

For each model: export ``onnx``/``onnx-int8``, ``tflite``/``tflite-int8``, ``openvino``/``openvino-int8``
with edgekit's export (INT8 calibrated on ``--calib``, every artifact verified: with a folder and
no labels that is the parity gate on held-out images of the folder), load each artifact with
``edgekit.runtime.load(path, threads=1)`` and time its backend's ``run`` on one prepared real
image, all six interleaved round by round (this host is shared: compare ratios within one run).
Per model per backend: fp32 and INT8 p50/p90 ms, ``speedup`` = fp32 p50 / INT8 p50 with the
spread of the per-round ratios; per model the best backend and whether it reaches ``--goal``
(issue 17: 1.8x). For a model below the goal, ``--profile`` adds where the time goes: the
onnxruntime and OpenVINO per-op profiles of ``benchmarks/int8_profile.py`` (which kernels ran
int8, which stayed float) and the INT8 ``.tflite``'s op census (ops and their input types,
which partitions XNNPACK takes).

A model is a checkpoint or ``.cfg`` path, or ``NAME@IMGSZ``: a registry model built with the
tests' realistic random init (``tests/export/export_helpers.py``; latency does not depend on
training) with the data's class count. Writes ``benchmarks/results/int8-speedup-t1.json``
(one row per model, replaced on rerun, the others kept)::

    python benchmarks/int8_speedup.py --calib ../shared/data/fish4knowledge/train/images --profile
    python benchmarks/int8_speedup.py --calib DIR --model tiny-yolov3@320 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
import peer_runners as pr  # noqa: E402

WEIGHTS = ROOT / "edgekit" / "assets" / "weights"
# the five seed detectors; yolo-lite at 416, the size it was trained at (train-yolo-lite-fish4knowledge-416.json)
SEEDS = [str(WEIGHTS / "mobilenetv2_050-yolo-fish4knowledge-320.pt"),
         str(WEIGHTS / "mobilenetv2_050-yolo-p3-fish4knowledge-320.pt"),
         "tiny-yolov2@320", "tiny-yolov3@320", "yolo-lite@416"]
PAIRS = {"onnxruntime": ("onnx", "onnx-int8"), "litert": ("tflite", "tflite-int8"),
         "openvino": ("openvino", "openvino-int8")}
OUT = HERE / "results" / "int8-speedup-t1.json"


def build_source(spec: str, tmp: Path, classes: int) -> tuple[str, str, dict]:
    """``(path, name, how)`` of a model spec: a file as is, ``NAME@IMGSZ`` as a random-init checkpoint."""
    if Path(spec).is_file():
        return spec, Path(spec).stem.replace("-fish4knowledge-320", ""), {"weights": "trained", "path": spec}
    name, _, size = spec.partition("@")
    if not size.isdigit():
        raise SystemExit(f"{spec}: give a checkpoint/.cfg path or NAME@IMGSZ (e.g. tiny-yolov3@320)")
    from tests.export.export_helpers import make_checkpoint

    path = make_checkpoint(tmp / f"{name}-{size}.pt", name, int(size), num_classes=classes)
    return str(path), f"{name}-{size}", {"weights": "random (realistic_init_, seed 0): latency does not depend on "
                                         "training", "imgsz": int(size), "classes": classes}


def tflite_census(path: Path) -> dict:
    """Ops of a ``.tflite`` by ``op:input dtype`` (which stay float), and how many partitions XNNPACK takes."""
    from edgekit.runtime.litert_backend import LiteRTBackend

    (mod, _), out = LiteRTBackend.interpreter(), {}
    plain = mod.Interpreter(model_path=str(path), num_threads=1,
                            experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    plain.allocate_tensors()
    dtype = {t["index"]: np.dtype(t["dtype"]).name for t in plain.get_tensor_details()}
    ops: dict[str, int] = {}
    for o in plain._get_ops_details():  # a private API, the only per-op view LiteRT's Python package has
        ins = [i for i in o["inputs"] if i >= 0]
        key = f"{o['op_name']}:{dtype.get(ins[0], '?') if ins else '-'}"
        ops[key] = ops.get(key, 0) + 1
    out["ops_by_input_dtype"] = dict(sorted(ops.items(), key=lambda kv: -kv[1]))
    xnn = mod.Interpreter(model_path=str(path), num_threads=1)
    xnn.allocate_tensors()
    # one DELEGATE node per graph partition XNNPACK took: 1 = it runs the whole graph (the Python API does
    # not expose the execution plan, so the ops it left out cannot be named from here)
    out["xnnpack_partitions"] = [o["op_name"] for o in xnn._get_ops_details()].count("DELEGATE")
    return out


def profiles(paths: dict[str, Path], runs: int, log) -> dict:
    """Per-op profiles of each exported pair (int8_profile.py's functions) and the INT8 .tflite census."""
    import int8_profile as ip

    out = {}
    for target, path in paths.items():
        log(f"profiling {target} ...")
        if target.startswith("onnx"):
            out[target] = ip.profile_onnxruntime(path, runs)
        elif target.startswith("openvino"):
            out[target] = ip.profile_openvino(path, runs)
        elif target == "tflite-int8":
            out[target] = tflite_census(path)
    return out


def measure(spec: str, a, tmp: Path, log) -> dict:
    """Export, verify and time one model; the results row."""
    import cv2

    from edgekit.export import export

    src, name, how = build_source(spec, tmp, a.classes)
    targets = [t for pair in PAIRS.values() for t in pair]
    report = tmp / name / "export_report.json"
    t0 = time.perf_counter()
    if a.keep and report.is_file():  # --keep: the artifacts of an earlier run (same source, same calibration)
        doc, export_s = json.loads(report.read_text()), "reused"
        log(f"{name}: reusing the artifacts in {tmp / name}")
    else:
        doc = export(src, targets, calib=a.calib, out=tmp / name, log=log).to_dict()
        export_s = round(time.perf_counter() - t0, 1)
    rows = [r for r in doc["targets"] if r["target"] in targets]  # a reused folder may hold other targets too
    arts = {r["target"]: Path(r["path"]) for r in rows if r["status"] == "ok"}
    status = {r["target"]: {k: r.get(k) for k in ("status", "reason", "parity", "size_mb", "convert_s")} for r in rows}
    if a.export_only:
        return {"model": name, "export": status}
    image = cv2.imread(str(sorted(Path(a.calib).iterdir())[0]))
    engines, info = [], {}
    for target, path in arts.items():
        e, _, _ = pr.edgekit_engine(path, 1, image, target, key=target)
        engines.append(e)
        info[target] = e.info
    load0 = os.getloadavg()
    times = pr.interleave(engines, a.rounds, a.iters, log=log)
    load1 = os.getloadavg()
    lat = {k: {"p50_ms": round(pr.p50(v), 3), "p90_ms": round(float(np.percentile(np.concatenate(v), 90)), 3)}
           for k, v in times.items()}
    backends = {}
    for be, (flt, q) in PAIRS.items():
        row = {"fp32_target": flt, "int8_target": q, "fp32_status": status[flt]["status"],
               "int8_status": status[q]["status"]}
        if flt in times and q in times:
            r = pr.ratio(times[flt], times[q])
            row.update({"fp32_ms": lat[flt]["p50_ms"], "fp32_p90_ms": lat[flt]["p90_ms"], "int8_ms": lat[q]["p50_ms"],
                        "int8_p90_ms": lat[q]["p90_ms"], "speedup": r["ratio"],
                        "speedup_per_round": {k: v for k, v in r.items() if k != "ratio"},
                        "int8_runtime": {k: info[q].get(k) for k in ("precision", "delegate", "version")}})
        backends[be] = row
    best = max((b for b in backends if backends[b].get("speedup")), key=lambda b: backends[b]["speedup"], default=None)
    best_x = backends[best]["speedup"] if best else None
    from edgekit.runtime.runner import find_manifest

    size = (find_manifest(next(iter(arts.values()))) or {}).get("preprocess", {}).get("imgsz") if arts else None
    row = {"model": name, "source": how, "imgsz": size, "rounds": a.rounds, "iters": a.iters,
           "backends": backends, "best_backend": best, "best_speedup": best_x,
           "reaches_goal": bool(best_x and best_x >= a.goal), "goal": a.goal,
           "load_average_1min": {"before": round(load0[0], 2), "after": round(load1[0], 2)},
           "export": {"seconds": export_s, "calibration": doc["calibration"], "targets": status}}
    if a.profile and not row["reaches_goal"]:
        row["profile"] = profiles(arts, a.profile_runs, log)
    return row


def merge(out: Path, rows: list[dict], doc_extra: dict) -> dict:
    """The results file ``out`` with ``rows`` replacing the same models' rows, the others kept."""
    from edgekit.io import atomic_write_text

    doc = json.loads(out.read_text()) if out.exists() else {}
    keep = [r for r in doc.get("models", []) if r["model"] not in {x["model"] for x in rows}]
    doc = {**doc, **doc_extra, "models": keep + rows}
    doc["summary"] = {r["model"]: {"best_backend": r["best_backend"], "best_speedup": r["best_speedup"],
                                   "reaches_goal": r["reaches_goal"],
                                   **{b: v.get("speedup") for b, v in r["backends"].items()}} for r in doc["models"]}
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", required=True, help="folder of calibration images (real ones)")
    ap.add_argument("--model", action="append", help="a checkpoint/.cfg path or NAME@IMGSZ (default: the 5 seeds)")
    ap.add_argument("--classes", type=int, default=7, help="class count of the random-init models (Fish4Knowledge: 7)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=20, help="timed inferences per artifact per round")
    ap.add_argument("--goal", type=float, default=1.8)
    ap.add_argument("--profile", action="store_true", help="per-op profiles for a model below --goal")
    ap.add_argument("--profile-runs", type=int, default=20)
    ap.add_argument("--keep", help="export into this folder and reuse what an earlier run exported there")
    ap.add_argument("--export-only", action="store_true", help="export (into --keep) and time nothing")
    ap.add_argument("--out", default=str(OUT), help="results file (default benchmarks/results/int8-speedup-t1.json)")
    a = ap.parse_args(argv)
    if not Path(a.calib).is_dir():
        print(f"--calib {a.calib} is not a folder: give a folder of calibration images", file=sys.stderr)
        return 1

    from edgekit import __version__
    from edgekit.boards.cpu import cpu_info
    from edgekit.export.manifest import versions

    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    cpu = cpu_info()
    flags = next((ln.split(":", 1)[1].split() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("flags")), []) if Path("/proc/cpuinfo").exists() else []
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16") if f in flags]
    extra = {"edgekit": __version__, "threads": 1, "host": {"cpu": cpu.get("model"), "cores": cpu.get("cores"), "isa": isa},
             "versions": versions(), "timing": "edgekit.runtime.load(path, threads=1) then the backend's run on one "
             "prepared real image; each row's rounds x iters inferences, the six artifacts interleaved "
             "(rotating order), p50/p90 over all timed inferences; speedup = fp32 p50 / int8 p50"}
    if a.export_only and not a.keep:
        print("--export-only needs --keep DIR (where the artifacts stay for the timed run)", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-speedup-") as tmp:
        work = Path(a.keep).resolve() if a.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for spec in a.model or SEEDS:
            row = measure(spec, a, work, log)
            if a.export_only:
                log(f"{row['model']}: " + ", ".join(f"{t} {v['status']}" for t, v in row["export"].items()))
                continue
            row["command"] = "python benchmarks/int8_speedup.py " + " ".join(argv if argv is not None else sys.argv[1:])
            rows.append(row)
            merge(Path(a.out), [row], extra)  # after each model: a long run keeps what it finished
            log(f"{row['model']}: " + ", ".join(f"{b} {v.get('speedup')}x" for b, v in row["backends"].items()))
    print(json.dumps({r["model"]: {b: v.get("speedup") for b, v in r["backends"].items()} for r in rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
