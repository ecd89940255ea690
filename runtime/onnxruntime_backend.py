"""onnxruntime backend: tuned session options, the ``Pad_Fusion`` trap disabled.

onnxruntime 1.31.1's ``Pad_Fusion`` folds ``Pad(0)`` + ``MaxPool`` into a MaxPool that pads
with -inf, which changes Tiny-YOLO's output (see ``tests/export/test_pad_fusion.py``); every
session edgekit opens disables it. Execution providers are taken in preference order when
present: XNNPACK, ACL, OpenVINO, then CPU.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import TensorInfo, register_backend

SUFFIXES = (".onnx",)
INSTALL_HINT = 'pip install "edgekit[onnx]"'
DISABLED_OPTIMIZERS = ["Pad_Fusion"]
PREFERRED_PROVIDERS = ["XnnpackExecutionProvider", "ACLExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider"]
_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
           "tensor(int32)": "int32", "tensor(int64)": "int64"}


def is_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def session_options(threads: int | None = None):
    """SessionOptions edgekit uses everywhere (also for INT8 calibration and verification)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return so


def make_session(path: str | Path, threads: int | None = None, providers: list[str] | None = None):
    """An ``InferenceSession`` with the Pad_Fusion optimizer disabled.

    Example:
        >>> sess = make_session("model.onnx", threads=2)  # doctest: +SKIP
    """
    import onnxruntime as ort

    providers = providers or [p for p in PREFERRED_PROVIDERS if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(threads), providers=providers,
                                    disabled_optimizers=DISABLED_OPTIMIZERS)
    except Exception as exc:
        raise EdgekitError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:160]})") from None


@register_backend
class OnnxRuntimeBackend:
    """Run an ``.onnx`` file in onnxruntime.

    Example:
        >>> b = OnnxRuntimeBackend("model.onnx", threads=2)  # doctest: +SKIP
        >>> [o.shape for o in b.run([np.zeros(b.inputs[0].shape, np.float32)])]  # doctest: +SKIP
    """

    name = "onnxruntime"

    def __init__(self, path, threads: int | None = None, delegate: str | None = None, device: str | None = None,
                 precision: str | None = None):
        import onnxruntime as ort

        providers = None
        if delegate or device:
            want = delegate or device
            have = ort.get_available_providers()
            match = [p for p in have if p.lower().startswith(want.lower())]
            if not match:
                raise EdgekitError(f"onnxruntime has no execution provider '{want}' here (it has {', '.join(have)}): "
                                   "install the onnxruntime build that ships it, or drop --delegate")
            providers = [match[0], "CPUExecutionProvider"]
        self.path = Path(path)
        self.threads = threads
        self.session = make_session(path, threads, providers)
        self.inputs = [self._info(i) for i in self.session.get_inputs()]
        self.outputs = [self._info(o) for o in self.session.get_outputs()]
        self._version = ort.__version__

    @staticmethod
    def _info(node) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) else 1 for d in node.shape)
        return TensorInfo(node.name, shape, _DTYPES.get(node.type, node.type))

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        feed = {info.name: x for info, x in zip(self.inputs, inputs)}
        return self.session.run(None, feed)

    def describe(self) -> dict:
        return {"backend": self.name, "version": self._version, "providers": self.session.get_providers(),
                "threads": self.threads, "disabled_optimizers": DISABLED_OPTIMIZERS,
                "inputs": [i.to_dict() for i in self.inputs], "outputs": [o.to_dict() for o in self.outputs]}
