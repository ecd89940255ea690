"""Backend registry: one file per interpreter, found by name or by the artifact's suffix.

A backend is a class with the protocol below (onnx's ``Backend.prepare(...).run(...)`` in
spirit). It runs *raw* tensors: the caller quantizes inputs and dequantizes outputs with
the scales the backend reports (``inputs``/``outputs``), so pre/post-processing is written
once in numpy (:mod:`edgekit.runtime.preprocess`, :mod:`edgekit.runtime.decode`).

Protocol::

    class MyBackend:
        name = "mine"                      # registry key
        suffixes = (".xyz",)               # artifacts it opens
        def __init__(self, path, threads=None, delegate=None, device=None, precision=None): ...
        inputs: list[TensorInfo]           # name, shape, dtype, quant
        outputs: list[TensorInfo]
        def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...
        def describe(self) -> dict: ...    # what really runs: backend + version, threads, delegate, precision

Each backend module defines ``is_available() -> bool`` and registers itself with
:func:`register_backend`. numpy only here: the interpreters are imported inside the backends.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from pathlib import Path

from edgekit.errors import EdgekitError

# module name -> backend name; imported lazily so a missing interpreter costs nothing
_MODULES = {
    "onnxruntime": "edgekit.runtime.onnxruntime_backend",
    "litert": "edgekit.runtime.litert_backend",
    "openvino": "edgekit.runtime.openvino_backend",
    "ncnn": "edgekit.runtime.ncnn_backend",
    "torch": "edgekit.runtime.torch_backend",  # host-only reference
}
_REGISTRY: dict[str, type] = {}


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of an artifact as its interpreter sees it.

    ``quant`` is ``(scale, zero_point)`` for a quantized tensor, else None.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: tuple[float, int] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["quant"] = list(self.quant) if self.quant else None
        return d


def register_backend(cls: type) -> type:
    """Class decorator adding a backend to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def backend_module(name: str):
    """The module implementing backend ``name`` (imports it, which registers the class)."""
    if name not in _MODULES:
        raise EdgekitError(f"unknown backend '{name}': choose one of {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name])


def available_backends() -> dict[str, bool]:
    """``{backend name: is its interpreter installed}`` without importing any interpreter.

    Example:
        >>> "onnxruntime" in available_backends()
        True
    """
    return {name: backend_module(name).is_available() for name in _MODULES}


def backend_for(path: str | Path) -> str:
    """The backend that opens an artifact, from its suffix (``.onnx``, ``.tflite``, ``.xml``, ``.param``)."""
    suffix = Path(path).suffix.lower()
    for name in _MODULES:
        if suffix in backend_module(name).SUFFIXES:
            return name
    raise EdgekitError(f"{path}: no backend opens '{suffix}' files: give a .onnx, .tflite, OpenVINO .xml or ncnn .param")


def open_backend(path: str | Path, backend: str | None = None, **options):
    """Open an artifact in a backend (chosen from the suffix when not given).

    Example:
        >>> b = open_backend("model.onnx", threads=2)  # doctest: +SKIP
        >>> outs = b.run([x])  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise EdgekitError(f"{path} does not exist: give the path to an exported artifact")
    name = backend or backend_for(path)
    module = backend_module(name)
    if not module.is_available():
        raise EdgekitError(f"backend '{name}' is not installed: {module.INSTALL_HINT}")
    return _REGISTRY[name](path, **options)
