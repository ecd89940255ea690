"""Backend registry: one class per interpreter owns every fact about it; everything else asks here.

A backend is a subclass of :class:`Backend` in its own file. Its class attributes are the facts
the rest of edgekit used to repeat in nine places: the files it opens (``suffixes``) and can
also read (``also_reads``: OpenVINO runs ``.onnx``), the pip extra that installs it, the
interpreter packages it imports, its precisions, companions (``.bin`` weights). Its class
methods answer the questions asked before anything is opened: is it installed
(:meth:`Backend.is_available`), how to install it (:meth:`Backend.install_hint`), which
delegates/devices are present (:meth:`Backend.accelerators`), what manifest a file carries
(:meth:`Backend.read_manifest`). An instance runs *raw* tensors (onnx's
``Backend.prepare(...).run(...)`` in spirit): the caller quantizes inputs and dequantizes
outputs with the scales it reports (``inputs``/``outputs``), so pre/post-processing is written
once in numpy (:mod:`edgekit.runtime.preprocess`, :mod:`edgekit.runtime.decode`).

Adding a backend is its own file plus one line: its module name in :data:`BUILTIN`, or, for a
backend that lives outside the device side (the host's torch reference) or outside edgekit, an
entry point in the ``edgekit.backends`` group (``pyproject.toml``), which is read only when a
name or suffix is not a built-in one, so running a ``.tflite`` never imports host code.

Example:
    >>> [b.name for b in list_backends(builtin_only=True)]
    ['onnxruntime', 'litert', 'openvino', 'ncnn', 'mnn', 'executorch', 'rknn']
    >>> backend_for("model.tflite").name
    'litert'
    >>> [b.name for b in readers(".onnx", builtin_only=True)]
    ['onnxruntime', 'openvino']
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgekit.errors import EdgekitError

# the device-side backends, one module each (imported on first use: numpy only at their module level)
BUILTIN = ("onnxruntime_backend", "litert_backend", "openvino_backend", "ncnn_backend", "mnn_backend",
           "executorch_backend", "rknn_backend")
ENTRY_POINT_GROUP = "edgekit.backends"
_REGISTRY: dict[str, type[Backend]] = {}
_loaded = {"builtin": False, "plugins": False}


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of an artifact as its interpreter sees it.

    ``quant`` is ``(scale, zero_point)`` for a quantized tensor, else None.

    Example:
        >>> TensorInfo("x", (1, 3, 8, 8), "int8", (0.5, -1)).to_dict()["quant"]
        [0.5, -1]
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


def _found(module: str) -> bool:
    """Is ``module`` importable? False for a broken package or one an import blocker refuses."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class Backend:
    """Base class of every backend: its facts as class attributes, its protocol as methods.

    Subclasses set the class attributes, implement ``__init__(path, threads=None, delegate=None,
    device=None, precision=None, fallback=False)`` (setting ``self.inputs``/``self.outputs``,
    ``self.threads``, ``self.warnings``) and :meth:`run`, and add their own keys in
    :meth:`details`.
    """

    name: ClassVar[str]
    #: artifacts this backend is the runtime of (the first is the one edgekit exports)
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: other backends' files it can run too (OpenVINO reads .onnx), in preference after their own
    also_reads: ClassVar[tuple[str, ...]] = ()
    #: files that travel beside the main one (the weights of OpenVINO and ncnn)
    companions: ClassVar[tuple[str, ...]] = ()
    #: ``pip install "edgekit[<extra>]"`` installs the interpreter
    extra: ClassVar[str] = ""
    #: (import name, distribution) of the interpreters it can use, first installed wins
    packages: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: precision names ``precision=`` accepts (empty: the file fixes its own precision)
    precisions: ClassVar[tuple[str, ...]] = ()
    #: host-only backends (the torch reference) run sources, not board artifacts
    host_only: ClassVar[bool] = False
    #: host packages (edgekit.runtime.lean.HOST_PACKAGES) its interpreter itself imports: ExecuTorch's torch
    host_imports: ClassVar[tuple[str, ...]] = ()

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    # ---- facts asked before anything is opened ----
    @classmethod
    def install_hint(cls) -> str:
        """The command that installs this backend's interpreter.

        Example:
            >>> get_backend("litert").install_hint()
            'pip install "edgekit[tflite]"'
        """
        return f'pip install "edgekit[{cls.extra}]"'

    @classmethod
    def installed(cls) -> list[str]:
        """Import names of this backend's interpreters that are installed (nothing is imported)."""
        return [m for m, _ in cls.packages if _found(m)]

    @classmethod
    def is_available(cls) -> bool:
        """Is an interpreter of this backend installed here? (Finds it without importing it.)"""
        return bool(cls.installed())

    @classmethod
    def version(cls) -> str | None:
        """Version of the first installed interpreter from package metadata (no import), or None."""
        for module, dist in cls.packages:
            if _found(module):
                try:
                    return metadata.version(dist)
                except metadata.PackageNotFoundError:
                    return "unknown"
        return None

    @classmethod
    def import_interpreter(cls):
        """Import the interpreter package (what opening a file costs first); its module.

        Raises:
            EdgekitError: none is installed (naming the extra).
        """
        for module in cls.installed():
            try:
                return importlib.import_module(module)
            except ImportError:
                continue
        raise EdgekitError(f"backend '{cls.name}' is not installed: {cls.install_hint()}")

    @classmethod
    def read_manifest(cls, path: str | Path) -> dict | None:
        """The edgekit manifest embedded in ``path`` (read without the interpreter), or None."""
        return None

    @classmethod
    def accelerators(cls) -> list[dict]:
        """Delegate/device options present here, CPU first: ``[{"delegate": None, "device": None}, ...]``."""
        return [{"delegate": None, "device": None}]

    def manifest(self) -> dict | None:
        """A manifest built from the opened model (host backends that run sources); None for artifacts."""
        return None

    # ---- the running protocol ----
    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run raw input tensors; raw output tensors in the artifact's order."""
        raise NotImplementedError

    def details(self) -> dict:
        """This backend's own ``describe()`` keys (delegate, device, precision, providers...)."""
        return {}

    def describe(self) -> dict:
        """What really runs: backend and version, threads, the backend's details, warnings, tensors."""
        return {"backend": self.name, "version": self.version(), "threads": getattr(self, "threads", None),
                **self.details(), "warnings": list(getattr(self, "warnings", [])),
                "inputs": [i.to_dict() for i in self.inputs], "outputs": [o.to_dict() for o in self.outputs]}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator adding a backend to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    if not _loaded["builtin"]:
        for module in BUILTIN:
            importlib.import_module(f"edgekit.runtime.{module}")
        _loaded["builtin"] = True


def _load_plugins() -> None:
    """Backends declared as ``edgekit.backends`` entry points (the host's torch reference, third parties)."""
    if _loaded["plugins"]:
        return
    _loaded["plugins"] = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_backend(ep.load())
        except Exception as exc:  # a broken plugin must not stop the built-in backends
            import warnings

            warnings.warn(f"edgekit backend plugin '{ep.name}' ({ep.value}) failed to load: {exc}", RuntimeWarning,
                          stacklevel=2)


def list_backends(builtin_only: bool = False) -> list[type[Backend]]:
    """Every registered backend class, built-in first.

    Example:
        >>> "ncnn" in [b.name for b in list_backends()]
        True
    """
    _load_builtin()
    if not builtin_only:
        _load_plugins()
    # BUILTIN's order, whatever order something imported them in; plugins after
    rank = {f"edgekit.runtime.{m}": k for k, m in enumerate(BUILTIN)}
    found = sorted(_REGISTRY.values(), key=lambda b: rank.get(b.__module__, len(rank)))
    return [b for b in found if not builtin_only or b.__module__ in rank]


def get_backend(name: str) -> type[Backend]:
    """The backend class called ``name``; one clear error listing the known ones otherwise.

    Example:
        >>> get_backend("openvino").companions
        ('.bin',)
    """
    _load_builtin()
    if name not in _REGISTRY:
        _load_plugins()
    if name not in _REGISTRY:
        raise EdgekitError(f"unknown backend '{name}': choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def available_backends() -> dict[str, bool]:
    """``{backend name: is its interpreter installed}`` without importing any interpreter.

    Example:
        >>> "onnxruntime" in available_backends()
        True
    """
    return {b.name: b.is_available() for b in list_backends()}


def artifact_suffixes() -> tuple[str, ...]:
    """Suffixes of the files board backends run (``.onnx``, ``.tflite``, ``.xml``, ``.param``).

    Example:
        >>> artifact_suffixes()
        ('.onnx', '.tflite', '.xml', '.param', '.mnn', '.pte', '.rknn')
    """
    return tuple(s for b in list_backends() if not b.host_only for s in b.suffixes)


def _native(suffix: str, builtin_only: bool) -> type[Backend] | None:
    for b in list_backends(builtin_only=True):
        if suffix in b.suffixes:
            return b
    if not builtin_only:
        for b in list_backends():
            if suffix in b.suffixes:
                return b
    return None


def backend_for(path: str | Path) -> type[Backend]:
    """The backend whose own format ``path`` is, from its suffix.

    Example:
        >>> backend_for("m.param").name
        'ncnn'
    """
    suffix = Path(path).suffix.lower()
    found = _native(suffix, builtin_only=False)
    if found is None:
        raise EdgekitError(f"{path}: no backend opens '{suffix}' files: give one of "
                           f"{', '.join(s for b in list_backends() for s in b.suffixes)}")
    return found


def readers(suffix: str, builtin_only: bool = False) -> list[type[Backend]]:
    """Backends that can run ``suffix`` files: the native one first, then those that also read it.

    Example:
        >>> [b.name for b in readers(".xml")]
        ['openvino']
    """
    suffix = suffix.lower()
    native = _native(suffix, builtin_only)
    pool = list_backends(builtin_only=builtin_only)
    return ([native] if native else []) + [b for b in pool if suffix in b.also_reads and b is not native]


def read_embedded_manifest(path: str | Path) -> dict | None:
    """The manifest stored inside an artifact by its format's backend, or None (ncnn stores none).

    Example:
        >>> read_embedded_manifest("m.tflite")["task"]  # doctest: +SKIP
        'detect'
    """
    native = _native(Path(path).suffix.lower(), builtin_only=False)
    return native.read_manifest(path) if native is not None else None


def open_backend(path: str | Path, backend: str | None = None, **options) -> Backend:
    """Open an artifact in a backend (chosen from the suffix when not given).

    Example:
        >>> b = open_backend("model.onnx", threads=2)  # doctest: +SKIP
        >>> outs = b.run([x])  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise EdgekitError(f"{path} does not exist: give the path to an exported artifact")
    cls = get_backend(backend) if backend else backend_for(path)
    if not cls.is_available():
        raise EdgekitError(f"backend '{cls.name}' is not installed: {cls.install_hint()}")
    return cls(path, **options)
