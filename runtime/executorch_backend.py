"""ExecuTorch backend: a ``.pte`` program run by ExecuTorch's C++ runtime through its Python bindings.

**This backend needs torch on the board.** The ``executorch`` wheel's bindings
(``executorch.extension.pybindings._C``, 1.5.1) are linked against ``libtorch``, ``libtorch_cpu``,
``libc10`` and ``libtorch_python`` from the torch wheel, and take and return ``torch.Tensor``
only (a numpy array is refused: "Unsupported python type"). So unlike every other backend,
running a ``.pte`` from Python imports torch: it is the one host package this backend is
allowed (:attr:`ExecuTorchBackend.host_imports`, which the lean-runtime tests honour). What it
does *not* need is the exporter: it imports the bindings' ``_C`` module directly, not
``portable_lib``, whose import also pulls in the exporter (``executorch.exir``) and torchao,
which a board does not need (``tests/runtime/test_executorch_backend.py`` holds it to torch
alone). A torch-free board runs ExecuTorch from C++
(``executor_runner`` or an app linking the runtime), which edgekit does not build.

XNNPACK's thread pool is process-wide (``_unsafe_reset_threadpool``): ``threads`` sets it for
every ``.pte`` in the process, as ``torch.set_num_threads`` would.

A ``.pte`` has no free metadata slot: the manifest is the sidecar ``<file>.pte.json`` written by
``edgekit export``, as for ncnn and MNN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import Backend, TensorInfo, _found, register_backend

# ExecuTorch's ScalarType codes (TensorInfo.dtype()) of the dtypes an edgekit program can have
_DTYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 15: "bfloat16"}


def _bindings():
    """``(torch, executorch.extension.pybindings._C)``; the bindings need torch's libraries loaded first."""
    import torch

    try:
        from executorch.extension.pybindings import _C
    except ImportError:  # a build without the private module name: the public wrapper (slower to import)
        from executorch.extension.pybindings import portable_lib as _C
    return torch, _C


@register_backend
class ExecuTorchBackend(Backend):
    """Run an ExecuTorch ``.pte`` (XNNPACK-delegated fp32 or PT2E INT8) on the CPU.

    Args:
        path: the ``.pte``.
        threads: XNNPACK's thread pool size (process-wide; None: ExecuTorch's default, one per core).
        delegate: ``xnnpack`` or None (the delegates are fixed in the file at export).
        device: ``cpu``.
        precision: unused (the file fixes its precision); must be None.
        fallback: unused.

    Example:
        >>> b = ExecuTorchBackend("model.pte", threads=1)  # doctest: +SKIP
        >>> [o.shape for o in b.run([np.zeros(b.inputs[0].shape, np.float32)])]  # doctest: +SKIP
        [(1, 36, 40, 40), (1, 36, 20, 20)]
    """

    name = "executorch"
    suffixes = (".pte",)
    extra = "executorch"
    packages = (("executorch", "executorch"),)
    host_imports = ("torch",)

    @classmethod
    def installed(cls) -> list[str]:
        """``["executorch"]`` when both executorch and the torch its bindings link are installed."""
        return [m for m, _ in cls.packages if _found(m) and _found("torch")]

    @classmethod
    def import_interpreter(cls):
        if not cls.is_available():
            raise EdgekitError(f"backend '{cls.name}' is not installed (it needs executorch and torch): "
                               f"{cls.install_hint()}")
        try:
            return _bindings()[1]
        except ImportError as exc:
            raise EdgekitError(f"ExecuTorch's runtime does not import ({exc}): reinstall it with "
                               f"{cls.install_hint()} (its torch must be the one it was tested with)") from None

    def __init__(self, path, threads: int | None = None, delegate: str | None = None, device: str | None = None,
                 precision: str | None = None, fallback: bool = False):
        bindings = self.import_interpreter()
        self._torch = _bindings()[0]
        if delegate and delegate.lower() != "xnnpack":
            raise EdgekitError(f"ExecuTorch has no delegate '{delegate}' here: the .pte fixes its delegates "
                               "(edgekit lowers to XNNPACK); drop --delegate")
        if (device or "cpu").lower() != "cpu":
            raise EdgekitError(f"ExecuTorch device '{device}' is not offered: edgekit's .pte runs on the CPU; use --device cpu")
        if precision:
            raise EdgekitError("an ExecuTorch .pte fixes its own precision: drop --precision")
        self.path, self.threads, self.warnings = Path(path), threads, []
        if not self.path.is_file():
            raise EdgekitError(f"{self.path} does not exist: give the path to an exported .pte")
        try:
            self.module = bindings._load_for_executorch(str(self.path))
            meta = self.module.method_meta("forward")
        except Exception as exc:  # the bindings raise RuntimeError with ExecuTorch's error code
            said = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise EdgekitError(f"{self.path}: ExecuTorch cannot open it ({said}): re-export it with edgekit "
                               "(edgekit export --target executorch)") from None
        if threads:
            bindings._unsafe_reset_threadpool(int(threads))
        self._threadpool = bindings._threadpool_get_thread_count()
        if meta.num_inputs() != 1:
            raise EdgekitError(f"{self.path}: {meta.num_inputs()} inputs; edgekit runs single-input models")
        self.inputs = [self._info("input", meta.input_tensor_meta(0))]
        self.outputs = [self._info(f"output{k}", meta.output_tensor_meta(k)) for k in range(meta.num_outputs())]
        if self.inputs[0].dtype != "float32":
            raise EdgekitError(f"{self.path}: input dtype {self.inputs[0].dtype}; edgekit's .pte takes float32")

    @staticmethod
    def _info(name: str, meta) -> TensorInfo:
        return TensorInfo(name, tuple(int(d) for d in meta.sizes()), _DTYPES.get(int(meta.dtype()), str(meta.dtype())))

    def _run_one(self, x: np.ndarray) -> list[np.ndarray]:
        outs = self.module.forward([self._torch.from_numpy(x)])
        return [o.numpy() for o in outs]  # the bindings return clones: safe to keep

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = np.ascontiguousarray(inputs[0], dtype=np.float32)
        want = self.inputs[0].shape
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(want[1:]):
            raise EdgekitError(f"ExecuTorch input must have shape (N, {', '.join(map(str, want[1:]))}), got {x.shape}")
        if x.shape[0] == 1:
            return self._run_one(x)
        per_image = [self._run_one(np.ascontiguousarray(img[None])) for img in x]  # the program's batch is 1
        return [np.concatenate([r[k] for r in per_image]) for k in range(len(self.outputs))]

    def details(self) -> dict:
        return {"device": "cpu", "delegate": "xnnpack (fixed in the .pte at export)",
                "threadpool": f"{self._threadpool} threads (process-wide)",
                "needs": "executorch + torch (the bindings link libtorch)"}
