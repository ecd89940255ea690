"""``deploy.json``: the configuration ``edgekit bench --auto`` found fastest on a board.

``edgekit bench --auto ARTIFACT_DIR`` sweeps every artifact there x every installed backend
that reads it x thread counts x the delegates/devices present and picks the best median
latency (:mod:`edgekit.runtime.autotune`), then writes ``ARTIFACT_DIR/deploy.json``::

    {"artifact": "fish-tflite-int8.tflite", "backend": "litert", "threads": 4, "delegate": null,
     "device": null, "precision": null, "p50_ms": 21.3, "fps": 46.1, "board": "rpi4", ...}

``edgekit.runtime.load(path)`` with no backend/threads/delegate/device/precision given applies
it (:func:`deploy_options`) when the file names that artifact and was made on this kind of
machine (same architecture, CPU model and core count): a deploy.json tuned on a workstation
and copied to a Pi with the artifacts is ignored there, with a warning. numpy only.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from edgekit.boards.cpu import cpu_info
from edgekit.errors import EdgekitError
from edgekit.io import atomic_write_text
from edgekit.runtime.backends import get_backend

DEPLOY_NAME = "deploy.json"
CREATED_BY = "edgekit bench --auto"
# key -> allowed types; "artifact" and "backend" are required
SCHEMA = {"artifact": (str,), "backend": (str,), "threads": (int, type(None)), "delegate": (str, type(None)),
          "device": (str, type(None)), "precision": (str, type(None)), "p50_ms": (int, float), "fps": (int, float),
          "board": (str, type(None)), "host": (dict,), "swept": (int,), "created_by": (str,), "edgekit": (str,)}
REQUIRED = ("artifact", "backend")
# how --auto chooses (edgekit.runtime.autotune); standard library here, so the CLI quotes them cheaply
TIE = 0.02  # p50 within 2 % of the best counts as a tie: fewer threads, then the smaller file wins
FINALISTS = 4  # configurations the sweep hands to the race (all loaded at once: keep memory small)
FINAL_BAND = 0.25  # ... those within 25 % of the sweep's best p50 (one block of frames is that noisy on a busy host)


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

    if not get_backend(data["backend"]).is_available():
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
    path = deploy_path(artifact_dir)
    validate_deploy(data, path)
    if not (path.parent / data["artifact"]).exists():
        raise EdgekitError(f"{path}: names {data['artifact']}, which is not in {path.parent}")
    return atomic_write_text(path, json.dumps(data, indent=1) + "\n")
