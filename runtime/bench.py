"""Latency, throughput, memory and thermal state of one artifact in one configuration.

:func:`bench_artifact` is what ``edgekit bench`` runs per (artifact, backend, threads,
delegate). What it measures, and how:

- ``import_ms``: importing the interpreter package (onnxruntime, LiteRT, ...), timed apart so
  that the order artifacts are benched in does not move their cold start;
- ``cold_start_ms`` = ``load_ms`` + ``first_ms``: ``edgekit.runtime.load`` and the first
  ``predict`` in this process (first inference allocates and packs weights in most runtimes).
  :func:`cold_start_subprocess` measures a fresh Python process instead (imports included);
- ``warmup`` frames run untimed, then ``frames`` frames are timed one by one with
  ``time.perf_counter_ns`` around ``predict`` of real images, cycled: p50/p90/p99/mean/std/min/max,
  ``fps`` = 1000 / mean, and the pre/inference/post split from the model's ``last_timing``;
- ``rss_mb``: peak resident memory of this process while the artifact was loaded and run
  (``VmHWM`` after resetting it through ``/proc/self/clear_refs``); ``rss_model_mb`` is that
  peak minus the resident memory just before ``load``. Where the reset is refused it is the
  process lifetime peak (``rss_scope`` says which);
- ``cpu_util_pct``: process CPU time (user + system, all threads) / wall time over the timed
  frames: 100 = one core busy;
- ``system``: temperature, clocks, governor and throttling before and after
  (:func:`edgekit.boards.sysstate.system_state`).

numpy only at module level.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit.boards.cpu import cpu_info
from edgekit.boards.detect import detect_board
from edgekit.boards.sysstate import cpu_clocks, system_state
from edgekit.errors import EdgekitError
from edgekit.runtime.backends import artifact_suffixes, get_backend, list_backends
from edgekit.runtime.loader import choose_backend, load, source_backend
from edgekit.runtime.model import read_image
from edgekit.runtime.runner import find_manifest

MAX_IMAGES = 64  # distinct images decoded up front and cycled; decoding is never timed


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and taskset narrow).

    Example:
        >>> usable_cores() >= 1
        True
    """
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_images(paths, limit: int = MAX_IMAGES) -> list[np.ndarray]:
    """Decode up to ``limit`` images (evenly chosen from ``paths``) into BGR arrays.

    Example:
        >>> load_images([])
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: no images to benchmark with: give --data DATA.yaml or --images
    """
    paths = list(paths)
    if not paths:
        raise EdgekitError("no images to benchmark with: give --data DATA.yaml or --images")
    if len(paths) > limit:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, limit)]
    return [read_image(p) for p in paths]


def memory_status() -> dict:
    """``{"rss_mb", "hwm_mb"}`` of this process from /proc/self/status (None where absent)."""
    out = {"rss_mb": None, "hwm_mb": None}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss_mb" if key == "VmRSS" else "hwm_mb"] = round(int(value.split()[0]) / 1024.0, 1)
    return out


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS counter (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _lifetime_peak_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0, 1)


def import_interpreter(backend: str) -> float:
    """Import ``backend``'s interpreter package; the milliseconds it took (~0 when already imported)."""
    cls = get_backend(backend)
    t0 = time.perf_counter()
    try:
        cls.import_interpreter()
    except EdgekitError:
        pass  # load() raises the error naming the extra
    return (time.perf_counter() - t0) * 1e3


def artifact_info(path: str | Path) -> dict:
    """Target, model, precision, size on disk (main file + companions) of an artifact, from its manifest.

    Example:
        >>> artifact_info("model-tflite-int8.tflite")["target"]  # doctest: +SKIP
        'tflite-int8'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    man = (find_manifest(path) if suffix in artifact_suffixes() else None) or {}
    files = [path.parent / f for f in man.get("files") or []] or [path]
    for backend in list_backends(builtin_only=True):  # OpenVINO and ncnn weights travel beside the graph file
        if suffix in backend.suffixes:
            files += [path.with_suffix(c) for c in backend.companions if path.with_suffix(c) not in files]
    size = sum(f.stat().st_size for f in files if f.is_file())
    return {"target": man.get("target") or path.suffix.lstrip("."), "model": man.get("model"),
            "task": man.get("task"), "artifact_precision": man.get("precision"),
            "manifest_backend": man.get("backend"), "size_mb": round(size / 1e6, 3)}


def latency_stats(samples_ms) -> dict:
    """p50/p90/p99/mean/std/min/max and fps (= 1000 / mean) of per-frame latencies in ms.

    Example:
        >>> latency_stats([10.0, 10.0, 10.0, 20.0])["fps"]
        80.0
    """
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise EdgekitError("no frames were timed: give --frames 1 or more")
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    mean = float(a.mean())
    return {"p50_ms": round(float(p50), 4), "p90_ms": round(float(p90), 4), "p99_ms": round(float(p99), 4),
            "mean_ms": round(mean, 4), "std_ms": round(float(a.std()), 4), "min_ms": round(float(a.min()), 4),
            "max_ms": round(float(a.max()), 4), "fps": round(1000.0 / mean, 3) if mean > 0 else None}


def _resolve_backend(path: Path, backend: str | None) -> str | None:
    if backend:
        return backend
    if (source := source_backend(path)) is not None:
        return source
    man = find_manifest(path)
    return choose_backend(path, man) if man is not None else None


def bench_artifact(path: str | Path, images: list[np.ndarray], threads: int | None = None, backend: str | None = None,
                   delegate: str | None = None, device: str | None = None, precision: str | None = None,
                   frames: int = 300, warmup: int = 20, score: Callable[[object], dict] | None = None,
                   zones: list[str] | None = None, predict_options: dict | None = None, fallback: bool = False) -> dict:
    """Benchmark one artifact in one configuration on real images; one result row.

    Args:
        path: the artifact (anything ``edgekit.runtime.load`` opens).
        images: decoded BGR images (:func:`load_images`), cycled over the frames.
        threads, backend, delegate, device, precision: passed to ``load`` (backend None: the manifest's).
        frames: timed frames (>= 1); warmup: untimed frames before them.
        score: called with the loaded model after the timing; its dict joins the row (the host's
            ``edgekit.validate_runtime.score_map`` adds ``map50``/``map50_95`` on a labelled split).
        zones: thermal zone files to read (the board profile's), None for all.
        predict_options: passed to every ``predict`` (default: the model's, e.g. conf 0.25).
        fallback: run on the CPU when the delegate/device is absent (``load``'s warning lands in ``warnings``).

    Returns:
        A dict in the ``edgekit bench --json`` schema (see the module docstring).

    Example:
        >>> imgs = load_images(sorted(Path("fish/test/images").glob("*.jpg")))  # doctest: +SKIP
        >>> r = bench_artifact("fish-onnx.onnx", imgs, threads=2, frames=100)  # doctest: +SKIP
        >>> r["p50_ms"], r["fps"]  # doctest: +SKIP
    """
    path = Path(path)
    if frames < 1 or warmup < 0:
        raise EdgekitError(f"--frames must be >= 1 and --warmup >= 0 (got {frames} and {warmup})")
    if not images:
        raise EdgekitError("no images to benchmark with: give --data DATA.yaml or --images")
    if not path.exists():
        raise EdgekitError(f"{path} does not exist: give the path to an exported model")
    options = predict_options or {}
    backend = _resolve_backend(path, backend)
    import_ms = import_interpreter(backend) if backend else 0.0
    before = system_state(zones)
    gc.collect()
    scope = "artifact" if reset_peak_rss() else "process"
    base_rss = memory_status()["rss_mb"]

    t0 = time.perf_counter_ns()
    model = load(path, backend=backend, threads=threads, delegate=delegate, device=device, precision=precision,
                 fallback=fallback)
    t1 = time.perf_counter_ns()
    model.predict(images[0], **options)
    t2 = time.perf_counter_ns()
    for i in range(warmup):
        model.predict(images[(i + 1) % len(images)], **options)

    samples = np.empty(frames, dtype=np.int64)
    split = np.zeros((frames, 3), dtype=np.float64)
    has_timing = hasattr(model, "last_timing")
    cpu0, w0 = os.times(), time.perf_counter_ns()
    for i in range(frames):
        img = images[(warmup + 1 + i) % len(images)]
        s = time.perf_counter_ns()
        model.predict(img, **options)
        samples[i] = time.perf_counter_ns() - s
        if has_timing:
            t = model.last_timing
            split[i] = (t.get("pre_ms", np.nan), t.get("infer_ms", np.nan), t.get("post_ms", np.nan))
    wall = (time.perf_counter_ns() - w0) / 1e9
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    mem = memory_status()
    after = system_state(zones)

    info = artifact_info(path)
    desc = model.describe() if hasattr(model, "describe") else {}
    lat = samples / 1e6
    row = {"artifact": path.name, "path": str(path), **info,
           "backend": desc.get("backend", backend), "backend_version": desc.get("version"),
           "threads": threads if threads is not None else desc.get("threads"),
           "delegate": delegate, "device": device, "precision": precision,
           "frames": frames, "warmup": warmup, "images": len(images),
           "import_ms": round(import_ms, 3), "load_ms": round((t1 - t0) / 1e6, 3), "first_ms": round((t2 - t1) / 1e6, 3),
           "cold_start_ms": round((t2 - t0) / 1e6, 3), **latency_stats(lat)}
    if has_timing:
        pre, infer, post = (float(np.nanmean(split[:, k])) if np.isfinite(split[:, k]).any() else None for k in range(3))
        row.update({"pre_ms": _r(pre), "infer_ms": _r(infer), "post_ms": _r(post)})
    else:
        row.update({"pre_ms": None, "infer_ms": None, "post_ms": None})
    peak = mem["hwm_mb"] if scope == "artifact" and mem["hwm_mb"] is not None else _lifetime_peak_mb()
    row.update({"rss_mb": peak, "rss_model_mb": round(peak - base_rss, 1) if base_rss is not None else None,
                "rss_scope": scope if mem["hwm_mb"] is not None else "process",
                "cpu_util_pct": round(100.0 * cpu / wall, 1) if wall > 0 else None,
                "system": {"before": before, "after": after},
                "describe": {k: v for k, v in desc.items() if k not in ("inputs", "outputs", "input")},
                "warnings": list(desc.get("warnings") or []),
                # with fallback, a backend warns only when it left the delegate/device for the CPU
                "fell_back": bool(fallback and desc.get("warnings")),
                "samples_ms": [round(float(v), 4) for v in lat]})
    if score is not None:
        row.update(score(model))
    del model
    gc.collect()
    return row


def _r(v):
    return None if v is None else round(v, 4)


_CHILD = """
import json, sys, time
t0 = time.perf_counter()
a = json.loads(sys.argv[1])
from edgekit.runtime import load
from edgekit.runtime.model import read_image
img = read_image(a.pop("image"))
t1 = time.perf_counter()
m = load(a.pop("path"), **a)
t2 = time.perf_counter()
m.predict(img)
t3 = time.perf_counter()
hwm = [int(l.split()[1]) / 1024.0 for l in open("/proc/self/status") if l.startswith("VmHWM")] if sys.platform == "linux" else []
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "load_ms": (t2 - t1) * 1e3, "first_ms": (t3 - t2) * 1e3,
                  "rss_mb": hwm[0] if hwm else None}))
"""


def cold_start_subprocess(path: str | Path, image: str | Path, backend: str | None = None, threads: int | None = None,
                          delegate: str | None = None, device: str | None = None, precision: str | None = None,
                          fallback: bool = False, timeout: float = 300.0) -> dict:
    """Cold start in a fresh Python process: start, imports, load, first predict, as a user meets it.

    Returns ``{"process_ms", "import_ms", "load_ms", "first_ms", "rss_mb"}``: ``process_ms`` is the
    wall time from spawning the interpreter to its exit; the others are timed inside it;
    ``rss_mb`` is that process's peak resident memory (only this artifact's runtime imported),
    None off Linux. The OS file cache is not dropped (that needs root and disturbs other work).

    Example:
        >>> cold_start_subprocess("fish-onnx.onnx", "fish.jpg", threads=1)["load_ms"]  # doctest: +SKIP
    """
    args = {"path": str(path), "image": str(image), "backend": backend, "threads": threads, "delegate": delegate,
            "device": device, "precision": precision, "fallback": fallback}
    t0 = time.perf_counter()
    try:
        res = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"{path}: the cold-start process took over {timeout:.0f} s: run without --cold-subprocess") from None
    wall = (time.perf_counter() - t0) * 1e3
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise EdgekitError(f"{path}: the cold-start process failed ({last[:200]})")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {"process_ms": round(wall, 3), **{k: None if v is None else round(v, 3) for k, v in out.items()}}


def host_info() -> dict:
    """What every benchmark result records about where it ran: versions, board or host, governor, cores.

    Example:
        >>> h = host_info()
        >>> {"edgekit", "board", "governor", "runtimes", "usable_cores"} <= set(h)
        True
    """
    import platform
    from importlib import metadata

    from edgekit import __version__

    def dist_version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    det = detect_board()
    profile = det.profile
    runtimes = {b.name: v for b in list_backends() if not b.host_only and (v := b.version())}
    return {"edgekit": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "machine": platform.machine(), "cpu": cpu_info(), "usable_cores": usable_cores(),
            "board": det.name, "board_title": profile.title if profile else None, "board_confidence": det.confidence,
            "board_reason": det.reason, "accelerators": list(det.accelerators),
            "thermal_zones": list(profile.thermal.zones) if profile else [],
            "governor": cpu_clocks()["governor"], "runtimes": runtimes,
            "numpy": dist_version("numpy"), "opencv": dist_version("opencv-python-headless"),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
