"""``edgekit.runtime.load``: one call from an artifact path to a ready ``Detector``/``Classifier``.

What opens what:

- an edgekit artifact (``.onnx``, ``.tflite``, OpenVINO ``.xml``, ncnn ``.param``) with its
  manifest (sidecar ``<artifact>.json`` or embedded): a :class:`Detector` or
  :class:`Classifier` by the manifest's task;
- an edgekit checkpoint (``.pt``) or Darknet ``.cfg``: the same, run by the host-only torch
  reference backend;
- anything else (a TFLite SSD, an ONNX described by a model YAML, raw mode):
  :func:`edgekit.runtime.foreign.open_foreign`.

Backend choice when none is given (and no threads/delegate/device/precision either): a
``deploy.json`` beside the artifact written by ``edgekit bench --auto`` on this kind of CPU;
else the manifest's backend when installed (the one the
export was verified in), else another installed backend that reads the file (OpenVINO reads
``.onnx``) in the order the detected board profile lists its runtimes, else an error naming
the extra to install. Delegates and devices are never guessed: a requested one that is absent is
an error unless ``fallback=True``, which runs on the CPU and records the warning in
``describe()["warnings"]``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import backend_for, backend_module

# other backends that can read a suffix, in preference order after the manifest's own
ALTERNATIVES = {".onnx": ["onnxruntime", "openvino"]}
REFERENCE_SUFFIXES = (".pt", ".pth", ".cfg")


def choose_backend(path: str | Path, manifest: dict | None = None) -> str:
    """The backend to run ``path`` with when the user names none.

    Example:
        >>> choose_backend("model.tflite")
        'litert'
    """
    suffix = Path(path).suffix.lower()
    preferred = (manifest or {}).get("backend") or backend_for(path)
    if backend_module(preferred).is_available():
        return preferred
    rank = board_runtime_rank()
    alternatives = sorted(ALTERNATIVES.get(suffix, []), key=lambda b: rank.get(b, len(rank)))
    candidates = [preferred] + [b for b in alternatives if b != preferred]
    for name in candidates:
        if backend_module(name).is_available():
            return name
    raise EdgekitError(f"{path} needs the '{preferred}' runtime, which is not installed: "
                       f"{backend_module(preferred).INSTALL_HINT}")


@functools.lru_cache(maxsize=1)
def board_runtime_rank() -> dict[str, int]:
    """``{backend: rank}`` from the detected board profile's runtimes (best first); empty when unknown.

    Consulted only when the manifest's own backend is not installed, to pick among the others.
    """
    try:
        from edgekit.boards.detect import detect_board

        profile = detect_board().profile
    except Exception:  # detection must never stop a model from loading
        return {}
    names = [r.split("+")[0] for r in (profile.runtimes if profile else ())]
    return {"litert" if n in ("tflite", "litert") else n: k for k, n in enumerate(names)}


def load(path: str | Path, backend: str | None = None, threads: int | None = None, delegate: str | None = None,
         device: str | None = None, precision: str | None = None, fallback: bool = False, spec: str | Path | None = None,
         raw: bool = False, **backend_options):
    """Open a model for inference on this machine.

    Args:
        path: an exported artifact, an edgekit checkpoint / Darknet cfg (host reference), a
            foreign model, or a model YAML.
        backend: ``onnxruntime``, ``litert``, ``openvino``, ``ncnn`` or ``torch``; None chooses.
        threads: CPU threads of the interpreter (None: its default).
        delegate: LiteRT external delegate (``edgetpu``, ``vx``, or a ``.so`` path) or an
            onnxruntime execution provider name.
        device: OpenVINO device (CPU, GPU, NPU, AUTO) or ncnn ``vulkan``.
        precision: OpenVINO ``f32``/``f16``/``bf16`` inference precision; ncnn ``fp32``/``fp16`` arithmetic.
        fallback: run on the CPU with a recorded warning when the delegate/device is absent.
        spec: a model YAML describing a model without a manifest.
        raw: return the model's outputs as arrays, no decoding.

    Returns:
        A ``Detector``, ``Classifier`` or foreign/raw model with ``predict`` and ``describe``.

    Example:
        >>> det = load("mobilenetv2_050-yolo-tflite-int8.tflite", threads=4)  # doctest: +SKIP
        >>> det.predict("fish.jpg").to_json()  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise EdgekitError(f"{path} does not exist: give the path to an exported model")
    options = {"threads": threads, "delegate": delegate, "device": device, "precision": precision,
               "fallback": fallback, **backend_options}
    if backend is None and threads is None and delegate is None and device is None and precision is None:
        from edgekit.runtime.deploy import deploy_options  # `edgekit bench --auto`'s choice for this board

        if tuned := deploy_options(path):
            backend = tuned.pop("backend")
            options.update(tuned)
    if spec is not None or raw or path.suffix.lower() in (".yaml", ".yml"):
        return _foreign(path, spec, raw, backend, options)
    if path.suffix.lower() in REFERENCE_SUFFIXES:
        return _reference(path, backend, options)
    from edgekit.runtime.runner import ArtifactRunner, find_manifest

    manifest = find_manifest(path)
    if manifest is None:
        return _foreign(path, None, False, backend, options)
    runner = ArtifactRunner(path, manifest, backend or choose_backend(path, manifest), **options)
    return _model(runner)


def _model(runner):
    from edgekit.runtime.detector import Classifier, Detector

    task = runner.manifest.get("task")
    if task == "detect":
        return Detector(runner)
    if task == "classify":
        return Classifier(runner)
    raise EdgekitError(f"{runner.path}: manifest task '{task}' is not detect or classify: re-export the model")


def _reference(path: Path, backend: str | None, options: dict):
    if backend not in (None, "torch"):
        raise EdgekitError(f"{path} is a training checkpoint, which only the torch backend runs: "
                           "export it (`edgekit export`) to run it with another backend")
    from edgekit.runtime.backends import open_backend
    from edgekit.runtime.runner import ArtifactRunner
    from edgekit.runtime.torch_backend import source_manifest

    ref = open_backend(path, "torch", **options)
    return _model(ArtifactRunner(path, source_manifest(ref), ref))


def _foreign(path: Path, spec, raw: bool, backend: str | None, options: dict):
    from edgekit.runtime.foreign import open_foreign

    return open_foreign(path, spec=spec, raw=raw, backend=backend, **options)
