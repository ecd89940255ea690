"""Where INT8 time goes: per-op profiles of fp32 vs INT8 in onnxruntime and OpenVINO, one thread.

Exports the model to ``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8`` (calibrated on the
data's train images, parity-checked, no mAP gate: this measures speed only), then runs each
artifact with the runtime's own profiler:

- onnxruntime ``SessionOptions.enable_profiling``: kernel time per node, summed by op type;
- OpenVINO ``PERF_COUNT``: real time per executed layer, by layer type and by the kernel that
  ran it (``exec_type``, e.g. ``brgconv_avx512_core_vnni_I8`` vs ``..._FP32``), which shows
  what really runs in int8.

Writes ``benchmarks/results/int8-profile-<model>-t1.json``::

    python benchmarks/int8_profile.py edgekit/assets/weights/mobilenetv2_050-yolo-p3-fish4knowledge-320.pt \\
        --calib ../shared/data/fish4knowledge/train/images

(LiteRT has no per-op profiler in its Python API; its ``benchmark_model`` tool is not on PyPI.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["onnx", "onnx-int8", "openvino", "openvino-int8"]


def _summary(by_type: dict, total: float, runs: int) -> dict:
    rows = sorted(((k, v / runs) for k, v in by_type.items()), key=lambda kv: -kv[1])
    return {"total_ms": round(total / runs, 3), "by_type_ms": {k: round(v, 3) for k, v in rows}}


def profile_onnxruntime(path: Path, runs: int) -> dict:
    """Kernel ms per inference by op type (onnxruntime's own profiler, 1 thread)."""
    import onnxruntime as ort

    from edgekit.runtime.onnxruntime_backend import make_session

    probe = make_session(path, threads=1)  # edgekit's session options (Pad_Fusion off), for the input shape
    shape = probe.get_inputs()[0].shape
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.add_session_config_entry("session.disabled_optimizers", "Pad_Fusion")
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    name = sess.get_inputs()[0].name
    for _ in range(5):  # warm-up inside the profile too: dropped below by counting only the last `runs`
        sess.run(None, {name: x})
    for _ in range(runs):
        sess.run(None, {name: x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    runs_ev = [e for e in events if e.get("name") == "model_run"]
    cutoff = runs_ev[-runs]["ts"] if len(runs_ev) >= runs else 0
    by_type, total = defaultdict(float), 0.0
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= cutoff:
            ms = e["dur"] / 1000
            by_type[e["args"].get("op_name", "?")] += ms
            total += ms
    return _summary(by_type, total, runs)


def profile_openvino(xml: Path, runs: int) -> dict:
    """Real ms per inference by layer type and by executed kernel (OpenVINO PERF_COUNT, 1 thread, f32 hint)."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(str(xml), "CPU", {"PERF_COUNT": "YES", "INFERENCE_NUM_THREADS": 1,
                                                    "INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()
    shape = list(compiled.inputs[0].get_shape())
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(5):
        req.infer({0: x})
    by_type, by_exec, total = defaultdict(float), defaultdict(float), 0.0
    for _ in range(runs):
        req.infer({0: x})
        for p in req.get_profiling_info():
            if p.status != p.Status.EXECUTED:
                continue
            ms = p.real_time.total_seconds() * 1000
            by_type[p.node_type] += ms
            by_exec[p.exec_type] += ms
            total += ms
    out = _summary(by_type, total, runs)
    out["by_kernel_ms"] = {k: round(v / runs, 3) for k, v in sorted(by_exec.items(), key=lambda kv: -kv[1])}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--calib", required=True, help="folder of calibration images")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--name", help="results file name part (default: the model's)")
    a = ap.parse_args(argv)

    from edgekit.export import export

    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="int8-profile-") as tmp:
        rep = export(a.model, TARGETS, calib=a.calib, out=tmp, log=log)
        rows = {}
        for r in rep.results:
            if not r.ok:
                rows[r.target] = {"status": r.status, "reason": r.reason}
                continue
            path = Path(tmp) / r.file
            log(f"profiling {r.target} ...")
            prof = profile_onnxruntime(path, a.runs) if r.target.startswith("onnx") else profile_openvino(path, a.runs)
            rows[r.target] = {"status": "ok", **prof}
    name = a.name or rep.to_dict()["model"]
    import os

    doc = {"model": name, "threads": 1, "runs": a.runs, "host": rep.host, "load_average_1min": os.getloadavg()[0],
           "versions": rep.versions,
           "command": "python benchmarks/int8_profile.py " + " ".join(argv or sys.argv[1:]), "artifacts": rows}
    for fam in ("onnx", "openvino"):
        f, q = rows.get(fam, {}), rows.get(f"{fam}-int8", {})
        if f.get("total_ms") and q.get("total_ms"):
            doc[f"{fam}_speedup"] = round(f["total_ms"] / q["total_ms"], 2)
    out = ROOT / "benchmarks" / "results" / f"int8-profile-{name}-t1.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
