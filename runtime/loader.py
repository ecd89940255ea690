"""``edgekit.runtime.load``: one call from an artifact path to a ready ``Detector``/``Classifier``.

What opens what:

- an edgekit artifact (``.onnx``, ``.tflite``, OpenVINO ``.xml``, ncnn ``.param``) with its
  manifest (sidecar ``<artifact>.json`` or embedded): a :class:`Detector` or
  :class:`Classifier` by the manifest's task;
- an edgekit checkpoint (``.pt``) or Darknet ``.cfg``: the same, run by the host-only torch
  reference backend (any backend that builds its own manifest from a source model; it is
  registered by the host side, see :mod:`edgekit.runtime.backends`);
- anything else (a TFLite SSD, an ONNX described by a model YAML, raw mode):
  :func:`edgekit.runtime.foreign.open_foreign`.

Backend choice when none is given (and no threads/delegate/device/precision either): a
``deploy.json`` beside the artifact written by ``edgekit bench --auto`` on this kind of CPU;
else the manifest's backend when installed (the one the
export was verified in), else another installed backend that reads the file (a backend's
``also_reads``: OpenVINO reads ``.onnx``) in the order the detected board profile lists its runtimes, else an error naming
the extra to install. Delegates and devices are never guessed: a requested one that is absent is
an error unless ``fallback=True``, which runs on the CPU and records the warning in
``describe()["warnings"]``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from edgekit.boards.detect import detect_board
from edgekit.errors import EdgekitError
from edgekit.runtime.backends import backend_for, get_backend, open_backend, readers
from edgekit.runtime.deploy import deploy_options
from edgekit.runtime.detector import Classifier, Detector
from edgekit.runtime.foreign import open_foreign
from edgekit.runtime.runner import ArtifactRunner, find_manifest


def choose_backend(path: str | Path, manifest: dict | None = None) -> str:
    """The backend to run ``path`` with when the user names none.

    Example:
        >>> choose_backend("model.tflite")
        'litert'
    """
    preferred = get_backend((manifest or {}).get("backend") or backend_for(path).name)
    if preferred.is_available():
        return preferred.name
    rank = board_runtime_rank()
    alternatives = sorted((b.name for b in readers(Path(path).suffix)), key=lambda b: rank.get(b, len(rank)))
    for name in alternatives:
        if get_backend(name).is_available():
            return name
    raise EdgekitError(f"{path} needs the '{preferred.name}' runtime, which is not installed: {preferred.install_hint()}")


@functools.lru_cache(maxsize=1)
def board_runtime_rank() -> dict[str, int]:
    """``{backend: rank}`` from the detected board profile's runtimes (best first); empty when unknown.

    Consulted only when the manifest's own backend is not installed, to pick among the others.
    """
    try:
        profile = detect_board().profile
    except Exception:  # detection must never stop a model from loading
        return {}
    names = [r.split("+")[0] for r in (profile.runtimes if profile else ())]  # runtime[+delegate]: backend names
    return {n: k for k, n in reversed(list(enumerate(names)))}  # a backend's first mention is its rank


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
        if tuned := deploy_options(path):
            backend = tuned.pop("backend")
            options.update(tuned)
    if spec is not None or raw or path.suffix.lower() in (".yaml", ".yml"):
        return _foreign(path, spec, raw, backend, options)
    if (source := source_backend(path)) is not None:
        return _reference(path, source, backend, options)
    manifest = find_manifest(path)
    if manifest is None:
        return _foreign(path, None, False, backend, options)
    runner = ArtifactRunner(path, manifest, backend or choose_backend(path, manifest), **options)
    return _model(runner)


def _model(runner):
    task = runner.manifest.get("task")
    if task == "detect":
        return Detector(runner)
    if task == "classify":
        return Classifier(runner)
    raise EdgekitError(f"{runner.path}: manifest task '{task}' is not detect or classify: re-export the model")


def source_backend(path: str | Path) -> str | None:
    """The host backend that runs ``path`` as a source model (a checkpoint or Darknet cfg), else None.

    Example:
        >>> source_backend("model.tflite") is None
        True
    """
    try:
        cls = backend_for(path)
    except EdgekitError:
        return None
    return cls.name if cls.host_only else None


def _reference(path: Path, source: str, backend: str | None, options: dict):
    if backend not in (None, source):
        raise EdgekitError(f"{path} is a source model, which only the {source} backend runs: "
                           "export it (`edgekit export`) to run it with another backend")
    ref = open_backend(path, source, **options)
    return _model(ArtifactRunner(path, ref.manifest(), ref))


def _foreign(path: Path, spec, raw: bool, backend: str | None, options: dict):
    return open_foreign(path, spec=spec, raw=raw, backend=backend, **options)
