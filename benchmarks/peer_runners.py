"""Engines for ``peer_compare.py``: each one runs pure inference on one prepared input tensor.

An :class:`Engine` is a zero-argument ``run()`` (one inference, outputs returned) plus what
it is: engine name, artifact, threads as set, and what the engine reports about itself.
Builders here open the same file in edgekit (through ``edgekit.runtime.load``, the
configuration a user gets) and in its peers (onnxruntime with no options at all, OpenCV DNN,
LiteRT without its default XNNPACK delegate), and run OpenVINO's own ``benchmark_app``.
:func:`interleave` times them in rounds (A B C, A B C, ...) so that every engine sees the
same share of the shared host's noise; ratios come from one run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass
class Engine:
    """One timed configuration: ``run()`` is one inference on the prepared input."""

    key: str                      # unique id in the results, e.g. "opencv-dnn@1t"
    engine: str                   # "edgekit", "onnxruntime-default", "opencv-dnn", ...
    artifact: str
    threads: int | None           # as set; None = the engine's own default (see info)
    run: Callable[[], list]
    info: dict = field(default_factory=dict)
    setup: Callable[[], None] | None = None  # called before each block (process-wide thread settings)
    group: str = "onnx"
    handle: object = None         # the engine's own object (OpenCV's Net, for its profile)


# --- builders ---------------------------------------------------------------------------

def edgekit_engine(artifact, threads: int | None, image: np.ndarray, group: str, backend: str | None = None,
                   key: str | None = None, **options) -> tuple[Engine, np.ndarray, object]:
    """edgekit's configuration of ``artifact``: ``load(...)`` then its backend's ``run`` on the prepared tensor.

    Returns the engine, the prepared input (the manifest's letterbox/layout/dtype of ``image``)
    and the loaded model (for end-to-end timing and output names).
    """
    from edgekit.runtime import load

    before = _threads()
    model = load(artifact, backend=backend, threads=threads, **options)
    x, _ = model.runner.prepare(image)
    be = model.runner.backend
    be.run([x])
    info = {k: v for k, v in model.describe().items() if k in (
        "backend", "version", "providers", "delegate", "device", "precision", "threads", "performance_hint",
        "disabled_optimizers", "interpreter", "target", "artifact_precision")}
    info["worker_affinity"] = _affinity(_threads() - before)
    name = key or f"edgekit-{be.name}@{threads}t"
    return Engine(name, "edgekit", Path(artifact).name, threads, lambda: be.run([x]), info, group=group), x, model


def edgekit_predict_engine(model, image: np.ndarray, threads: int | None, key: str) -> Engine:
    """End-to-end ``predict`` (letterbox + inference + decode + NMS) of an already loaded model."""
    import cv2

    def setup():
        cv2.setNumThreads(int(threads or 0))  # predict's letterbox resizes with OpenCV

    return Engine(key, "edgekit-predict", model.runner.path.name, threads, lambda: [model.predict(image)],
                  {"what": "end-to-end predict: letterbox, inference, decode, NMS (last_timing splits it)"},
                  setup=setup, group="e2e")


def ort_default_engine(path, x: np.ndarray) -> Engine:
    """onnxruntime exactly as a user opens it first: ``ort.InferenceSession(path)``, no options."""
    import os

    import onnxruntime as ort

    before = _threads()
    sess = ort.InferenceSession(str(path))
    so = sess.get_session_options()
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    info = {"version": ort.__version__, "providers": sess.get_providers(),
            "intra_op_num_threads": so.intra_op_num_threads, "inter_op_num_threads": so.inter_op_num_threads,
            "graph_optimization_level": str(so.graph_optimization_level),
            "threads_note": f"0 = onnxruntime's default: one intra-op thread per physical core "
                            f"({os.cpu_count()} logical CPUs here); Pad_Fusion enabled",
            "worker_affinity": _affinity(_threads() - before)}
    return Engine("onnxruntime-default", "onnxruntime-default", Path(path).name, None,
                  lambda: sess.run(None, {name: x}), info)


def _threads() -> set[int]:
    """Thread ids of this process (Linux; empty elsewhere)."""
    import os

    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _affinity(tids) -> list[list[int]]:
    """CPU affinity of each thread: onnxruntime's default pool pins its workers, an explicit count does not."""
    import os

    out = []
    for t in sorted(tids):
        try:
            out.append(sorted(os.sched_getaffinity(t)))
        except (OSError, AttributeError):
            continue
    return out


def opencv_engine(path, x: np.ndarray, threads: int, output_names: list[str]) -> Engine:
    """OpenCV DNN (``readNetFromONNX``, OpenCV backend, CPU target) at ``cv2.setNumThreads(threads)``."""
    import cv2

    net = cv2.dnn.readNetFromONNX(str(path))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    have = list(net.getUnconnectedOutLayersNames())
    names = output_names if all(n in have for n in output_names) else have

    def run():
        net.setInput(x)
        return list(net.forward(names))

    def setup():
        cv2.setNumThreads(int(threads))  # process-wide: set before each block

    info = {"version": cv2.__version__, "backend": "DNN_BACKEND_OPENCV", "target": "DNN_TARGET_CPU", "outputs": names}
    return Engine(f"opencv-dnn@{threads}t", "opencv-dnn", Path(path).name, threads, run, info, setup=setup, handle=net)


def litert_builtin_engine(path, x: np.ndarray, threads: int) -> Engine:
    """LiteRT with ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``: TFLite's own kernels, no XNNPACK."""
    from edgekit.runtime.litert_backend import LiteRTBackend

    (mod, modname), version = LiteRTBackend.interpreter(), LiteRTBackend.version()
    it = mod.Interpreter(model_path=str(path), num_threads=int(threads),
                         experimental_op_resolver_type=mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp, outs = it.get_input_details()[0], it.get_output_details()

    def run():
        it.set_tensor(inp["index"], x)
        it.invoke()
        return [it.get_tensor(d["index"]) for d in outs]

    info = {"interpreter": modname, "version": version, "op_resolver": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
            "delegate_nodes": delegate_nodes(it)}
    return Engine(f"litert-no-xnnpack@{threads}t", "litert-no-xnnpack", Path(path).name, threads, run, info,
                  group="tflite")


def delegate_nodes(interpreter) -> int | None:
    """How many DELEGATE nodes the execution plan has (XNNPACK took over those parts), None if unknown."""
    try:
        return sum(o["op_name"].upper() == "DELEGATE" for o in interpreter._get_ops_details())
    except Exception:  # a private API: other interpreters may lack it
        return None


# --- timing ---------------------------------------------------------------------------

def interleave(engines: list[Engine], rounds: int, iters: int, between: Callable[[int], None] | None = None,
               log: Callable[[str], None] = lambda s: None) -> dict[str, list[list[float]]]:
    """Time ``engines`` in ``rounds`` rounds of ``iters`` calls each, engine after engine.

    Each round starts one engine later than the previous one (so no engine always follows the
    same neighbour) and each block starts with one untimed call (caches, thread pools waking).
    ``between(round)`` runs after each round (``benchmark_app`` runs there).

    Returns ``{key: [[ms, ...] per round]}``.
    """
    times: dict[str, list[list[float]]] = {e.key: [] for e in engines}
    n = len(engines)
    for r in range(rounds):
        t_round = time.perf_counter()
        for k in range(n):
            e = engines[(r + k) % n]
            if e.setup:
                e.setup()
            e.run()
            block = []
            for _ in range(iters):
                t0 = time.perf_counter()
                e.run()
                block.append((time.perf_counter() - t0) * 1e3)
            times[e.key].append(block)
        if between:
            between(r)
        log(f"round {r + 1}/{rounds}: {time.perf_counter() - t_round:.1f} s")
    return times


def p50(blocks: list[list[float]]) -> float:
    return float(np.median(np.concatenate([np.asarray(b, float) for b in blocks])))


def ratio(num: list[list[float]], den: list[list[float]]) -> dict:
    """``p50(num) / p50(den)`` over all iterations, and the spread of the per-round ratios."""
    per_round = [float(np.median(a) / np.median(b)) for a, b in zip(num, den) if len(a) and len(b)]
    return {"ratio": round(p50(num) / p50(den), 3),
            "per_round_median": round(float(np.median(per_round)), 3) if per_round else None,
            "per_round_min": round(min(per_round), 3) if per_round else None,
            "per_round_max": round(max(per_round), 3) if per_round else None}


def max_abs_diff(a: list, b: list) -> float | None:
    """Largest absolute difference over outputs matched by shape (None when shapes do not match)."""
    a = [np.asarray(t, np.float32) for t in a]
    b = [np.asarray(t, np.float32) for t in b]
    if sorted(t.shape for t in a) != sorted(t.shape for t in b):
        return None
    a.sort(key=lambda t: t.shape)
    b.sort(key=lambda t: t.shape)
    return float(max(np.abs(u - v).max() for u, v in zip(a, b)))


# --- OpenVINO benchmark_app ----------------------------------------------------------

def benchmark_app_path() -> str | None:
    """The ``benchmark_app`` beside this interpreter (the venv's), else on PATH."""
    here = Path(sys.executable).parent / "benchmark_app"
    return str(here) if here.is_file() else shutil.which("benchmark_app")


_MEDIAN = re.compile(r"Median:\s+([0-9.]+)\s*(ms|us|s)\b")
_UNIT_MS = {"ms": 1.0, "us": 1e-3, "s": 1e3}
_CONFIG = re.compile(r"\[ INFO \]\s+(NUM_STREAMS|INFERENCE_NUM_THREADS|INFERENCE_PRECISION_HINT|PERFORMANCE_HINT|"
                     r"ENABLE_CPU_PINNING|OPTIMAL_NUMBER_OF_INFER_REQUESTS|EXECUTION_DEVICES):\s*(.+)")
_INPUT = re.compile(r"Configuring input of the model\s*\n.*?Model inputs:\s*\n\[ INFO \]\s+(.+?)\n", re.S)


def parse_benchmark_app(text: str) -> dict:
    """Median latency (ms), the compiled configuration it reports and the input it fed, from its log."""
    m = _MEDIAN.search(text)
    if m is None:
        tail = " | ".join(text.strip().splitlines()[-3:])
        raise RuntimeError(f"benchmark_app printed no 'Median' latency: {tail[:300]}")
    cfg = {k: v.strip() for k, v in _CONFIG.findall(text)}
    inp = _INPUT.search(text)
    return {"median_ms": float(m.group(1)) * _UNIT_MS[m.group(2)], "config": cfg,
            "input": inp.group(1).strip() if inp else None}


def benchmark_app_command(xml, threads: int | None, precision: str, npy, niter: int, config_path) -> list[str]:
    """``benchmark_app`` with edgekit's compile configuration, sync API, edgekit's input tensor.

    benchmark_app refuses ``-nthreads`` together with ``-hint latency`` (a UI rule), so the
    configuration edgekit compiles with (LATENCY hint, INFERENCE_NUM_THREADS, INFERENCE_PRECISION_HINT)
    goes in through ``-load_config``. ``-ip f32`` keeps the f32 input edgekit feeds (benchmark_app
    otherwise turns an image-like input into u8 and adds a conversion to the graph), and ``-i``
    gives it the same prepared tensor (not its random filling).
    """
    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = str(int(threads))
    Path(config_path).write_text(json.dumps({"CPU": cfg}))
    return [benchmark_app_path() or "benchmark_app", "-m", str(xml), "-d", "CPU", "-load_config", str(config_path),
            "-api", "sync", "-niter", str(int(niter)), "-ip", "f32", "-i", str(npy)]


def edgekit_ov_command(xml, threads: int | None, npy, niter: int) -> list[str]:
    """The edgekit side of the agreement check: a fresh process, as benchmark_app is (see :func:`_ov_worker`)."""
    return [sys.executable, str(Path(__file__).resolve()), "ov-worker", str(xml), str(int(threads or 0)), str(npy),
            str(int(niter))]


def run_edgekit_ov(cmd: list[str], timeout: float = 120) -> dict:
    """Run one :func:`edgekit_ov_command`; ``{"median_ms", "request_latency_ms", "back_to_back_ms", "describe"}``."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"edgekit OpenVINO worker did not run: {exc}") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"edgekit OpenVINO worker failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:300]}")
    return json.loads(lines[-1])


def _ov_worker(xml: str, threads: int, npy: str, niter: int, block: int = 10) -> None:
    """benchmark_app's measurement, through edgekit: load, one untimed call, ``niter`` timed sync calls.

    Alternating with those (blocks of ``block``), the same compiled request is also called the
    way benchmark_app calls it: input set once, ``infer()`` back to back. The difference between
    the two is edgekit's call pattern, not the compiled model.
    """
    from edgekit.runtime import load

    be = load(xml, threads=threads or None).runner.backend
    x = np.load(npy)
    be.run([x])  # benchmark_app's "first inference", also untimed
    ts, lat, b2b = [], [], []
    while len(ts) < niter:
        for _ in range(min(block, niter - len(ts))):
            t0 = time.perf_counter()
            be.run([x])
            ts.append((time.perf_counter() - t0) * 1e3)
            lat.append(be.request.latency)  # OpenVINO's own timing of this call: what benchmark_app reports
        for _ in range(min(block, niter - len(b2b))):
            be.request.infer()  # the input set by the last run() stays in the request
            b2b.append(be.request.latency)
    d = be.describe()
    print(json.dumps({"median_ms": float(np.median(ts)), "request_latency_ms": float(np.median(lat)),
                      "back_to_back_ms": float(np.median(b2b)),
                      "describe": {k: d.get(k) for k in ("version", "device", "precision", "threads",
                                                         "performance_hint")}}))


def run_benchmark_app(cmd: list[str], timeout: float = 120) -> dict:
    """Run one ``benchmark_app`` command; its parsed result (raises RuntimeError when it fails)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"benchmark_app did not run: {exc}") from None
    return parse_benchmark_app(proc.stdout + "\n" + proc.stderr)


class OvAgreement:
    """edgekit vs ``benchmark_app`` on one IR at one thread count, both in fresh processes.

    Same file, same compile configuration, same input tensor, same count of timed sync calls
    after one untimed call; the two processes alternate order every round.
    """

    def __init__(self, target: str, xml, threads: int | None, precision: str, input_name: str, x: np.ndarray,
                 niter: int, tmp: Path):
        npy = Path(tmp) / f"{target}-{threads}.npy"
        np.save(npy, x)
        self.target, self.threads, self.precision = target, threads, precision
        self.bench_cmd = benchmark_app_command(xml, threads, precision, f"{input_name}:{npy}", niter,
                                               Path(tmp) / f"{target}-{threads}.json")
        self.edgekit_cmd = edgekit_ov_command(xml, threads, npy, niter)
        self.rounds: list[dict] = []
        self.errors: list[str] = []

    def run_round(self, r: int) -> None:
        sides = [("edgekit", run_edgekit_ov, self.edgekit_cmd), ("benchmark_app", run_benchmark_app, self.bench_cmd)]
        got = {}
        for side, fn, cmd in (sides if r % 2 == 0 else sides[::-1]):
            try:
                got[side] = fn(cmd)
            except RuntimeError as exc:
                self.errors.append(f"{side}: {exc}")
        if len(got) == 2:
            self.rounds.append(got)

    def summary(self, in_process: list[list[float]] | None = None, tolerance: float = 0.10) -> dict:
        ek = [g["edgekit"]["median_ms"] for g in self.rounds]
        ba = [g["benchmark_app"]["median_ms"] for g in self.rounds]
        row = {"target": self.target, "threads": self.threads, "precision": self.precision,
               "benchmark_app_command": " ".join(self.bench_cmd), "edgekit_command": " ".join(self.edgekit_cmd),
               "errors": self.errors[:4], "rounds": len(self.rounds)}
        if not self.rounds:
            return row
        per_round = [a / b for a, b in zip(ek, ba)]
        r = float(np.median(ek) / np.median(ba))
        lat = [g["edgekit"]["request_latency_ms"] for g in self.rounds]
        b2b = [g["edgekit"]["back_to_back_ms"] for g in self.rounds]
        row.update({"edgekit_p50_ms": round(float(np.median(ek)), 3),
                    "edgekit_request_latency_p50_ms": round(float(np.median(lat)), 3),
                    "edgekit_back_to_back_p50_ms": round(float(np.median(b2b)), 3),
                    "edgekit_slower_rounds": sum(a > b for a, b in zip(ek, ba)),
                    "back_to_back_slower_rounds": sum(a > b for a, b in zip(b2b, ba)),
                    "benchmark_app_median_ms": round(float(np.median(ba)), 3),
                    "edgekit_over_benchmark_app": round(r, 3), "per_round_min": round(min(per_round), 3),
                    "per_round_max": round(max(per_round), 3), "within_10pct": abs(r - 1) <= tolerance,
                    "benchmark_app_config": self.rounds[0]["benchmark_app"]["config"],
                    "benchmark_app_input": self.rounds[0]["benchmark_app"]["input"],
                    "edgekit_config": self.rounds[0]["edgekit"]["describe"]})
        if in_process:
            row["edgekit_in_process_p50_ms"] = round(p50(in_process), 3)
        return row


# --- why OpenCV DNN is slower: each engine's own per-layer profile -----------------------

def _conv_kind(wshape) -> str:
    """``depthwise 3x3``, ``1x1``, ``3x3`` ... from a conv weight shape (out, in/groups, kh, kw)."""
    if len(wshape) != 4:
        return "conv"
    return f"{'depthwise ' if wshape[1] == 1 else ''}{wshape[2]}x{wshape[3]}"


def _rows(ms_by_layer: dict[str, float], kind_of: dict[str, str]) -> list[dict]:
    agg: dict[str, list] = {}
    for name, ms in ms_by_layer.items():
        agg.setdefault(kind_of[name], []).append(ms)
    rows = [{"kind": k, "layers": len(v), "ms": round(sum(v), 3)} for k, v in agg.items()]
    return sorted(rows, key=lambda r: -r["ms"])


def opencv_profile(net, x: np.ndarray, output_names: list[str], runs: int = 20) -> dict:
    """OpenCV DNN's ``getPerfProfile()``: per-layer medians over ``runs`` forwards, summed by layer kind."""
    import cv2

    freq = cv2.getTickFrequency() / 1e3
    names = net.getLayerNames()
    totals, per_layer = [], []
    for _ in range(runs + 1):
        net.setInput(x)
        net.forward(output_names)
        total, layers = net.getPerfProfile()
        totals.append(float(total) / freq)
        per_layer.append(np.asarray(layers, float).ravel() / freq)
    med = np.median(np.stack(per_layer[1:]), axis=0)
    kind_of = {}
    for name in names:
        layer = net.getLayer(name)
        kind_of[name] = _conv_kind(layer.blobs[0].shape) if layer.type == "Convolution" and layer.blobs else layer.type
    return {"total_p50_ms": round(float(np.median(totals[1:])), 3), "layers": len(names),
            "sum_of_layer_p50_ms": round(float(med.sum()), 3), "by_kind": _rows(dict(zip(names, med)), kind_of)}


def ort_profile(path, x: np.ndarray, threads: int, runs: int = 20) -> dict:
    """onnxruntime's own profiler (edgekit's session options): per-node medians, summed by kind."""
    import os
    import tempfile

    import onnxruntime as ort

    from edgekit.runtime.onnxruntime_backend import DISABLED_OPTIMIZERS, session_options

    so = session_options(threads)
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=DISABLED_OPTIMIZERS)
        name = sess.get_inputs()[0].name
        totals = []
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            sess.run(None, {name: x})
            totals.append((time.perf_counter() - t0) * 1e3)
        events = json.loads(Path(sess.end_profiling()).read_text())
    durs: dict[str, list[float]] = {}
    kind_of: dict[str, str] = {}
    for ev in events:
        args = ev.get("args") or {}
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            durs.setdefault(ev["name"], []).append(ev["dur"] / 1e3)
            op = args.get("op_name", "?")
            shapes = args.get("input_type_shape") or []
            w = next(iter(shapes[1].values())) if op in ("Conv", "FusedConv") and len(shapes) > 1 else None
            kind_of[ev["name"]] = _conv_kind(w) if w else op
    med = {k: float(np.median(v[1:] if len(v) > 1 else v)) for k, v in durs.items()}
    return {"total_p50_ms": round(float(np.median(totals[1:])), 3), "nodes": len(med),
            "sum_of_node_p50_ms": round(sum(med.values()), 3), "by_kind": _rows(med, kind_of)}

if __name__ == "__main__" and sys.argv[1:2] == ["ov-worker"]:
    _ov_worker(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
