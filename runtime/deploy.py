"""``deploy.json``: the configuration ``edgekit bench --auto`` found fastest on a board.

``edgekit bench --auto ARTIFACT_DIR`` sweeps every artifact there x every installed backend
that reads it x thread counts x the delegates/devices present (:func:`sweep_configs`),
picks the best median latency (:func:`choose_best`) and writes ``ARTIFACT_DIR/deploy.json``::

    {"artifact": "fish-tflite-int8.tflite", "backend": "litert", "threads": 4, "delegate": null,
     "device": null, "precision": null, "p50_ms": 21.3, "fps": 46.1, "board": "rpi4", ...}

``edgekit.runtime.load(path)`` with no backend/threads/delegate/device/precision given applies
it (:func:`deploy_options`) when the file names that artifact and was made on this kind of
machine (same architecture, CPU model and core count): a deploy.json tuned on a workstation
and copied to a Pi with the artifacts is ignored there, with a warning. numpy only.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

from edgekit.errors import EdgekitError

DEPLOY_NAME = "deploy.json"
CREATED_BY = "edgekit bench --auto"
# key -> allowed types; "artifact" and "backend" are required
SCHEMA = {"artifact": (str,), "backend": (str,), "threads": (int, type(None)), "delegate": (str, type(None)),
          "device": (str, type(None)), "precision": (str, type(None)), "p50_ms": (int, float), "fps": (int, float),
          "board": (str, type(None)), "host": (dict,), "swept": (int,), "created_by": (str,), "edgekit": (str,)}
REQUIRED = ("artifact", "backend")
TIE = 0.02  # p50 within 2 % of the best counts as a tie: fewer threads, then the smaller file wins


def deploy_path(artifact: str | Path) -> Path:
    """Where the deploy.json of an artifact (or of a folder of artifacts) lives.

    Example:
        >>> deploy_path("runs/export/fish/fish-onnx.onnx").as_posix()
        'runs/export/fish/deploy.json'
    """
    p = Path(artifact)
    return (p if p.is_dir() else p.parent) / DEPLOY_NAME


def validate_deploy(data, src: str | Path = DEPLOY_NAME) -> dict:
    """Check a deploy dict's keys and types; one EdgekitError line naming the file, key and fix.

    Example:
        >>> validate_deploy({"artifact": "m.onnx", "backend": "onnxruntime", "threads": "two"})
        Traceback (most recent call last):
        ...
        edgekit.errors.EdgekitError: deploy.json: 'threads' must be int or null, not str: run `edgekit bench --auto` again or fix the file
    """
    fix = "run `edgekit bench --auto` again or fix the file"
    if not isinstance(data, dict):
        raise EdgekitError(f"{src}: must hold a JSON object, not {type(data).__name__}: {fix}")
    for key in REQUIRED:
        if key not in data:
            raise EdgekitError(f"{src}: '{key}' is missing: {fix}")
    for key, types in SCHEMA.items():
        if key in data and (not isinstance(data[key], types) or isinstance(data[key], bool)):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise EdgekitError(f"{src}: '{key}' must be {names}, not {type(data[key]).__name__}: {fix}")
    if data.get("threads") is not None and data["threads"] < 1:
        raise EdgekitError(f"{src}: 'threads' must be 1 or more, not {data['threads']}: {fix}")
    if Path(data["artifact"]).name != data["artifact"]:
        raise EdgekitError(f"{src}: 'artifact' must be a file name beside deploy.json, not a path: {fix}")
    return data


def read_deploy(artifact_path: str | Path) -> dict | None:
    """The deploy.json beside ``artifact_path`` when it names that file; None when there is none or it names another.

    A deploy.json that exists but is malformed is one EdgekitError line.

    Example:
        >>> read_deploy("runs/export/fish/fish-tflite-int8.tflite")  # doctest: +SKIP
        {'artifact': 'fish-tflite-int8.tflite', 'backend': 'litert', 'threads': 4, ...}
    """
    artifact_path = Path(artifact_path)
    path = artifact_path.parent / DEPLOY_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EdgekitError(f"{path} is not valid JSON ({str(exc).splitlines()[0][:120]}): "
                           "run `edgekit bench --auto` again or delete it") from None
    data = validate_deploy(data, path)
    return data if data["artifact"] == artifact_path.name else None


def host_fingerprint() -> dict:
    """What must match for a deploy.json to apply here: architecture, CPU model and parts, core count.

    Example:
        >>> sorted(host_fingerprint())
        ['cores', 'cpu_model', 'cpu_parts', 'machine']
    """
    from edgekit.boards.cpu import cpu_info

    cpu = cpu_info()
    return {"machine": cpu["arch"], "cpu_model": cpu["model"], "cpu_parts": cpu["cpu_parts"], "cores": cpu["cores"]}


def deploy_options(artifact_path: str | Path) -> dict | None:
    """``load`` options from the artifact's deploy.json (backend, threads, delegate, device, precision), or None.

    None when there is no deploy.json for this file, when it was tuned on another kind of
    machine, or when its backend is not installed here (those two warn).

    Example:
        >>> deploy_options("runs/export/fish/fish-tflite-int8.tflite")  # doctest: +SKIP
        {'backend': 'litert', 'threads': 4, 'delegate': None, 'device': None, 'precision': None}
    """
    data = read_deploy(artifact_path)
    if data is None:
        return None
    where = deploy_path(artifact_path)
    tuned_on = data.get("host", {}).get("fingerprint")
    if tuned_on is not None and tuned_on != host_fingerprint():
        warnings.warn(f"{where} was tuned on another machine ({tuned_on.get('cpu_model') or tuned_on.get('machine')}, "
                      f"{tuned_on.get('cores')} cores): ignored; run `edgekit bench --auto` here", RuntimeWarning,
                      stacklevel=3)
        return None
    from edgekit.runtime.backends import backend_module

    if not backend_module(data["backend"]).is_available():
        warnings.warn(f"{where} names backend '{data['backend']}', which is not installed here: ignored",
                      RuntimeWarning, stacklevel=3)
        return None
    return {k: data.get(k) for k in ("backend", "threads", "delegate", "device", "precision")}


def make_deploy(chosen: dict, host: dict, swept: int, verify: dict | None = None, extra: dict | None = None) -> dict:
    """The deploy.json content for a chosen bench row (``edgekit bench --json`` schema).

    Example:
        >>> row = {"artifact": "m.onnx", "backend": "onnxruntime", "threads": 2, "p50_ms": 5.0, "fps": 190.0}
        >>> d = make_deploy(row, {"board": "x86-64", "edgekit": "0.1.0"}, swept=4)
        >>> d["artifact"], d["threads"], d["created_by"]
        ('m.onnx', 2, 'edgekit bench --auto')
    """
    keep = ("edgekit", "board", "board_title", "machine", "usable_cores", "governor", "runtimes")
    data = {"artifact": chosen["artifact"], "backend": chosen["backend"], "threads": chosen.get("threads"),
            "delegate": chosen.get("delegate"), "device": chosen.get("device"), "precision": chosen.get("precision"),
            "target": chosen.get("target"), "size_mb": chosen.get("size_mb"),
            "p50_ms": chosen["p50_ms"], "fps": chosen["fps"], "board": host.get("board"),
            "host": {**{k: host.get(k) for k in keep}, "fingerprint": host.get("fingerprint") or host_fingerprint()},
            "swept": swept, "verify": verify, "created_by": CREATED_BY, "edgekit": host.get("edgekit") or ""}
    data.update(extra or {})
    return validate_deploy(data)


def write_deploy(artifact_dir: str | Path, data: dict) -> Path:
    """Validate and write ``ARTIFACT_DIR/deploy.json`` atomically; its path."""
    from edgekit.io import atomic_write_text

    path = deploy_path(artifact_dir)
    validate_deploy(data, path)
    if not (path.parent / data["artifact"]).exists():
        raise EdgekitError(f"{path}: names {data['artifact']}, which is not in {path.parent}")
    return atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def choose_best(rows: list[dict], tie: float = TIE) -> tuple[dict, dict]:
    """(chosen row, fastest row) of a sweep: the lowest p50; within ``tie`` of it, fewer threads, then the smaller file.

    A row with an ``error`` (a delegate that refused the model) is never chosen.

    Example:
        >>> rows = [{"p50_ms": 10.0, "threads": 4, "size_mb": 1.0}, {"p50_ms": 10.1, "threads": 2, "size_mb": 1.0},
        ...         {"p50_ms": 12.0, "threads": 1, "size_mb": 0.5}]
        >>> chosen, best = choose_best(rows)
        >>> chosen["threads"], best["threads"]
        (2, 4)
    """
    ok = [r for r in rows if not r.get("error") and r.get("p50_ms") is not None]
    if not ok:
        raise EdgekitError("no configuration of the sweep ran: see the errors above (missing runtimes or delegates)")
    best = min(ok, key=lambda r: r["p50_ms"])
    near = [r for r in ok if r["p50_ms"] <= best["p50_ms"] * (1.0 + tie)]
    chosen = min(near, key=lambda r: (r.get("threads") or 0, r.get("size_mb") or 0.0, r["p50_ms"]))
    return chosen, best


@functools.lru_cache(maxsize=None)
def _accelerators(backend: str) -> tuple:
    return tuple(accelerators(backend))


def accelerators(backend: str) -> list[dict]:
    """The delegate/device options of ``backend`` present here, CPU first: ``[{"delegate": None, "device": None}, ...]``.

    LiteRT: the named delegates whose library loads (``edgetpu``, ``vx``); onnxruntime: execution
    providers beyond the CPU ones it picks by itself; OpenVINO: devices besides the CPU; ncnn:
    ``vulkan`` when it sees a GPU. Probing never fails: a broken interpreter gives the CPU only.

    Example:
        >>> accelerators("onnxruntime")[0]
        {'delegate': None, 'device': None}
    """
    cpu = [{"delegate": None, "device": None}]
    try:
        if backend == "litert":
            import ctypes

            from edgekit.runtime.litert_backend import DELEGATES

            found = []
            for name, (libs, _) in DELEGATES.items():
                for lib in libs:
                    try:
                        ctypes.CDLL(lib)
                    except OSError:
                        continue
                    found.append({"delegate": name, "device": None})
                    break
            return cpu + found
        if backend == "onnxruntime":
            import onnxruntime as ort

            from edgekit.runtime.onnxruntime_backend import PREFERRED_PROVIDERS

            skip = set(PREFERRED_PROVIDERS) | {"AzureExecutionProvider"}
            return cpu + [{"delegate": p, "device": None} for p in ort.get_available_providers() if p not in skip]
        if backend == "openvino":
            import openvino as ov

            return cpu + [{"delegate": None, "device": d} for d in ov.Core().available_devices if d != "CPU"]
        if backend == "ncnn":
            import ncnn

            return cpu + ([{"delegate": None, "device": "vulkan"}] if ncnn.get_gpu_count() > 0 else [])
    except Exception:  # a half-installed interpreter: the CPU path will report its own error
        return cpu
    return cpu


def sweep_configs(artifact: str | Path, threads: list[int], backends: list[str] | None = None) -> list[dict]:
    """Every (backend, threads, delegate, device) to try for one artifact on this machine.

    Backends: the manifest's and every other installed one that reads the suffix (onnxruntime
    and OpenVINO both read ``.onnx``), or ``backends`` when given.

    Example:
        >>> [c["backend"] for c in sweep_configs("fish-onnx.onnx", [1])]  # doctest: +SKIP
        ['onnxruntime', 'openvino']
    """
    from edgekit.runtime.backends import available_backends, backend_for
    from edgekit.runtime.loader import ALTERNATIVES
    from edgekit.runtime.runner import find_manifest

    artifact = Path(artifact)
    man = find_manifest(artifact) or {}
    have = available_backends()
    names = backends or list(dict.fromkeys([man.get("backend") or backend_for(artifact),
                                            *ALTERNATIVES.get(artifact.suffix.lower(), [])]))
    out = []
    for backend in (b for b in names if have.get(b)):
        for acc in _accelerators(backend):  # probed once per process (ncnn prints its Vulkan search)
            out += [{"backend": backend, "threads": t, **acc} for t in threads]
    return out


FINALISTS = 4  # configurations the sweep hands to the race (all loaded at once: keep memory small)
FINAL_BAND = 0.25  # ... those within 25 % of the sweep's best p50 (one block of frames is that noisy on a busy host)


def finalists(rows: list[dict], band: float = FINAL_BAND, limit: int = FINALISTS) -> list[dict]:
    """The sweep rows worth a rematch: the fastest, and up to ``limit - 1`` others within ``band`` of its p50.

    One timed block per configuration decides little on a busy board (the minimum of noisy
    numbers is biased low); the finalists are measured again, interleaved (:func:`race`).

    Example:
        >>> [r["p50_ms"] for r in finalists([{"p50_ms": 10.0}, {"p50_ms": 11.0}, {"p50_ms": 20.0}])]
        [10.0, 11.0]
    """
    ok = sorted((r for r in rows if not r.get("error") and r.get("p50_ms") is not None), key=lambda r: r["p50_ms"])
    return [r for r in ok if r["p50_ms"] <= ok[0]["p50_ms"] * (1.0 + band)][:limit] if ok else []


def race(candidates: list[tuple[str | Path, dict]], images: list, frames: int, rounds: int = 3, warmup: int = 5,
         predict_options: dict | None = None) -> list[dict]:
    """Measure configurations interleaved: all loaded at once, ``rounds`` rounds, each a block per configuration.

    The order rotates every round and each block starts with ``warmup`` untimed frames (caches
    and thread pools settle after a switch), so background load and clock changes fall on every
    configuration alike. Returns per candidate :func:`edgekit.runtime.bench.latency_stats` of the
    pooled ``rounds x frames`` samples, plus ``rounds`` and ``frames``.

    Example:
        >>> race([("fish-onnx.onnx", {"backend": "onnxruntime", "threads": 1})], imgs, frames=50)  # doctest: +SKIP
        [{'p50_ms': 7.1, 'p90_ms': ..., 'fps': ..., 'rounds': 3, 'frames': 150}]
    """
    import time

    import numpy as np

    from edgekit.runtime import load
    from edgekit.runtime.bench import latency_stats

    options = predict_options or {}
    models = [load(path, **{k: cfg.get(k) for k in ("backend", "threads", "delegate", "device", "precision")})
              for path, cfg in candidates]
    samples: list[list[int]] = [[] for _ in models]
    n = len(models)
    for r in range(rounds):
        for k in [(r + j) % n for j in range(n)]:
            for i in range(warmup):
                models[k].predict(images[i % len(images)], **options)
            for i in range(frames):
                img = images[(r * frames + i) % len(images)]
                t0 = time.perf_counter_ns()
                models[k].predict(img, **options)
                samples[k].append(time.perf_counter_ns() - t0)
    return [{**latency_stats(np.asarray(s) / 1e6), "rounds": rounds, "frames": len(s)} for s in samples]
