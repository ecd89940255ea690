"""``edgekit bench --auto``'s search: which backend, threads and delegate run an artifact fastest here.

:func:`sweep_configs` lists every (backend, threads, delegate, device) to try for an artifact
(the installed backends that read it, each backend's :meth:`~edgekit.runtime.backends.Backend.accelerators`),
:func:`finalists` keeps the ones worth a rematch, :func:`race` measures them interleaved, and
:func:`choose_best` picks the winner that :mod:`edgekit.runtime.deploy` writes to deploy.json.
numpy only at module level.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import backend_for, get_backend, readers
from edgekit.runtime.bench import latency_stats
from edgekit.runtime.deploy import FINAL_BAND, FINALISTS, TIE
from edgekit.runtime.loader import load
from edgekit.runtime.runner import find_manifest


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
    return tuple(get_backend(backend).accelerators())


def sweep_configs(artifact: str | Path, threads: list[int], backends: list[str] | None = None) -> list[dict]:
    """Every (backend, threads, delegate, device) to try for one artifact on this machine.

    Backends: the manifest's and every other installed one that reads the suffix (onnxruntime
    and OpenVINO both read ``.onnx``), or ``backends`` when given.

    Example:
        >>> [c["backend"] for c in sweep_configs("fish-onnx.onnx", [1])]  # doctest: +SKIP
        ['onnxruntime', 'openvino']
    """
    artifact = Path(artifact)
    man = find_manifest(artifact) or {}
    names = backends or list(dict.fromkeys([man.get("backend") or backend_for(artifact).name,
                                            *(b.name for b in readers(artifact.suffix))]))
    out = []
    for backend in (b for b in names if get_backend(b).is_available()):
        for acc in _accelerators(backend):  # probed once per process (ncnn prints its Vulkan search)
            out += [{"backend": backend, "threads": t, **acc} for t in threads]
    return out


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
