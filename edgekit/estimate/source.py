"""What ``edgekit estimate MODEL`` reads: a checkpoint, a Darknet ``.cfg``, a registry model, or an artifact.

Every form ends as a :class:`Graph`: the fused layer list plus what the file says about how it
runs (input size, precision, the runtime its format belongs to). Checkpoints, ``.cfg`` files and
registry names are built in torch and traced (:mod:`edgekit.estimate.torch_graph`); ``.onnx``
artifacts are read as ONNX graphs; other artifacts (``.tflite``, OpenVINO ``.xml``, ncnn ``.param``)
are estimated from the ONNX export of the same model in the same folder, since their own graphs
hold the same layers (their precision and runtime still come from their manifest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.estimate.layers import Layer

# artifact suffix -> the runtime that format runs on (--runtime overrides)
SUFFIX_RUNTIME = {".onnx": "onnxruntime", ".tflite": "litert", ".xml": "openvino", ".param": "ncnn"}
PRECISION_WORDS = {"fp32": "fp32", "f32": "fp32", "fp16": "fp16", "f16": "fp16", "int8": "int8", "uint8": "int8"}


@dataclass
class Graph:
    """A model's fused layers and how it runs by default."""

    name: str
    layers: list[Layer]
    imgsz: tuple[int, int]
    precision: str = "fp32"
    runtime: str | None = None  # None: the estimator's default (the board's calibrated runtime)
    source: str = ""
    notes: list[str] = field(default_factory=list)


def _imgsz(value) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[-1]))


def load_graph(model: str, imgsz: int | None = None) -> Graph:
    """Resolve ``MODEL`` (path or registry name) into a :class:`Graph` at ``imgsz`` (default: the model's own).

    Raises:
        EdgekitError: a missing file, an unknown name, or a format with no graph to read.

    Example:
        >>> g = load_graph("yolo-lite", imgsz=224)  # doctest: +SKIP
        >>> round(sum(x.macs for x in g.layers) / 1e6)  # doctest: +SKIP
        240
    """
    path = Path(model)
    suffix = path.suffix.lower()
    if suffix == ".onnx" or (suffix in SUFFIX_RUNTIME and path.is_file()):
        if not path.is_file():
            raise EdgekitError(f"{path} does not exist: give an exported artifact, a checkpoint or a Darknet .cfg")
        return _artifact(path, imgsz)
    if suffix == ".cfg":
        return _darknet(path, imgsz)
    if suffix in (".pt", ".pth"):
        return _checkpoint(path, imgsz)
    if path.exists():
        raise EdgekitError(f"{path}: cannot estimate a '{suffix or 'folder'}': give a checkpoint (.pt), a Darknet .cfg, "
                           f"or an artifact ({', '.join(SUFFIX_RUNTIME)})")
    return _registry(model, imgsz)


def _torch_graph(name: str, module, size: tuple[int, int], source: str) -> Graph:
    from edgekit.estimate.torch_graph import torch_layers

    return Graph(name, torch_layers(module, size), size, source=source)


def _darknet(path: Path, imgsz: int | None) -> Graph:
    from edgekit.models import load_darknet

    if not path.is_file():
        raise EdgekitError(f"{path} does not exist: give the path to a Darknet .cfg")
    model = load_darknet(path)
    size = _imgsz(imgsz) or tuple(model.head_spec["imgsz"])
    return _torch_graph(path.stem, model, size, f"Darknet cfg {path.name}")


def _checkpoint(path: Path, imgsz: int | None) -> Graph:
    from edgekit.models.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(path)
    size = _imgsz(imgsz) or _imgsz(ckpt.get("imgsz")) or _imgsz(model.head_spec.get("imgsz"))
    if size is None:
        raise EdgekitError(f"{path} does not record its input size: give --imgsz")
    return _torch_graph(ckpt.get("model", path.stem), model, size, f"checkpoint {path.name}")


def _registry(name: str, imgsz: int | None) -> Graph:
    from edgekit.models import create_model, list_models, model_task

    if name not in list_models():
        raise EdgekitError(f"{name} is neither a file nor a registry model: give a checkpoint, a Darknet .cfg, an "
                           f"artifact, or one of {', '.join(list_models())}")
    kwargs = {} if model_task(name) == "classify" else {"num_classes": 80}
    model = create_model(name, **kwargs)
    size = _imgsz(imgsz) or _imgsz(getattr(model, "head_spec", {}).get("imgsz")) or (320, 320)
    return _torch_graph(name, model, size, f"registry model {name} (80 classes)")


def _artifact(path: Path, imgsz: int | None) -> Graph:
    from edgekit.estimate.onnx_graph import onnx_layers
    from edgekit.runtime.runner import find_manifest

    suffix = path.suffix.lower()
    man = find_manifest(path) or {}
    onnx_path, notes = path, []
    if suffix != ".onnx":
        onnx_path = _sibling_onnx(path, man)
        notes.append(f"layers read from {onnx_path.name}, the ONNX export of the same model")
    layers, info = onnx_layers(onnx_path, imgsz)
    precision = PRECISION_WORDS.get(str(man.get("precision") or "").lower()) or info["precision"]
    if suffix != ".onnx" and not man.get("precision"):
        precision = "fp32"
    return Graph(man.get("model") or path.stem, layers, tuple(info["imgsz"]), precision, SUFFIX_RUNTIME[suffix],
                 f"artifact {path.name}", notes)


def _sibling_onnx(path: Path, man: dict) -> Path:
    from edgekit.runtime.runner import find_manifest

    model = man.get("model")
    for cand in sorted(path.parent.glob("*.onnx")):
        other = find_manifest(cand) or {}
        if model and other.get("model") == model and other.get("precision") in (None, "fp32"):
            return cand
    raise EdgekitError(f"{path}: estimating a {path.suffix} reads the ONNX export of the same model, and none is beside "
                       f"it: export it too (edgekit export MODEL --target onnx --out {path.parent}) or give the checkpoint")
