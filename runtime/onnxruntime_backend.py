"""onnxruntime backend: tuned session options, the ``Pad_Fusion`` trap disabled.

onnxruntime 1.31.1's ``Pad_Fusion`` folds ``Pad(0)`` + ``MaxPool`` into a MaxPool that pads
with -inf, which changes Tiny-YOLO's output (see ``tests/export/test_pad_fusion.py``); every
session edgekit opens disables it. Execution providers are taken in preference order when
present: XNNPACK, ACL, OpenVINO, then CPU.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import Backend, TensorInfo, register_backend

MANIFEST_KEY = "edgekit_manifest"  # the metadata_props entry edgekit.export.onnx writes
DISABLED_OPTIMIZERS = ["Pad_Fusion"]
PREFERRED_PROVIDERS = ["XnnpackExecutionProvider", "ACLExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider"]
_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
           "tensor(int32)": "int32", "tensor(int64)": "int64"}


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
class OnnxRuntimeBackend(Backend):
    """Run an ``.onnx`` file in onnxruntime.

    ``delegate`` (or ``device``) names an execution provider (``XnnpackExecutionProvider``,
    ``CUDA``...): a prefix is enough.

    Example:
        >>> b = OnnxRuntimeBackend("model.onnx", threads=2)  # doctest: +SKIP
        >>> [o.shape for o in b.run([np.zeros(b.inputs[0].shape, np.float32)])]  # doctest: +SKIP
    """

    name = "onnxruntime"
    suffixes = (".onnx",)
    extra = "onnx"
    packages = (("onnxruntime", "onnxruntime"),)

    @classmethod
    def read_manifest(cls, path: str | Path) -> dict | None:
        """The manifest in the file's ``metadata_props`` (stdlib protobuf walk: no onnx import), or None.

        Example:
            >>> OnnxRuntimeBackend.read_manifest("yolo-lite-onnx.onnx")["task"]  # doctest: +SKIP
            'detect'
        """
        meta = metadata_props(path).get(MANIFEST_KEY)
        if meta is None:
            return None
        try:
            return json.loads(meta)
        except ValueError as exc:
            raise EdgekitError(f"{path}: its embedded edgekit manifest is not valid JSON ({exc}): re-export it") from None

    @classmethod
    def accelerators(cls) -> list[dict]:
        """Execution providers beyond the CPU ones edgekit picks by itself (CUDA, TensorRT, ...)."""
        try:
            import onnxruntime as ort

            skip = set(PREFERRED_PROVIDERS) | {"AzureExecutionProvider"}
            return super().accelerators() + [{"delegate": p, "device": None} for p in ort.get_available_providers()
                                             if p not in skip]
        except Exception:  # a half-installed interpreter: the CPU path reports its own error
            return super().accelerators()

    def __init__(self, path, threads: int | None = None, delegate: str | None = None, device: str | None = None,
                 precision: str | None = None, fallback: bool = False):
        import onnxruntime as ort

        providers = None
        self.warnings: list[str] = []
        if delegate or device:
            want = delegate or device
            have = ort.get_available_providers()
            match = [p for p in have if p.lower().startswith(want.lower())]
            if match:
                providers = [match[0], "CPUExecutionProvider"]
            else:
                msg = f"onnxruntime has no execution provider '{want}' here (it has {', '.join(have)})"
                if not fallback:
                    raise EdgekitError(f"{msg}: install the onnxruntime build that ships it, drop --delegate, "
                                       "or allow the CPU fallback (--fallback)")
                self.warnings.append(f"{msg}; running on the CPU instead")
                warnings.warn(self.warnings[-1], RuntimeWarning, stacklevel=2)
        self.path = Path(path)
        self.threads = threads
        self.session = make_session(path, threads, providers)
        self.inputs = [self._info(i) for i in self.session.get_inputs()]
        self.outputs = [self._info(o) for o in self.session.get_outputs()]

    @staticmethod
    def _info(node) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) else 1 for d in node.shape)
        return TensorInfo(node.name, shape, _DTYPES.get(node.type, node.type))

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        feed = {info.name: x for info, x in zip(self.inputs, inputs)}
        return self.session.run(None, feed)

    def details(self) -> dict:
        return {"providers": self.session.get_providers(), "precision": "as stored (ORT runs each op in its file dtype)",
                "disabled_optimizers": DISABLED_OPTIMIZERS}


def _varint(buf, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """(field number, wire type, value or (start, end) of a length-delimited payload) of one message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = (pos, pos + size), pos + size
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def metadata_props(path: str | Path) -> dict[str, str]:
    """The ONNX model's ``metadata_props`` as a dict, read with the standard library.

    Walks only the top level of the ModelProto (field 14 holds the key/value entries) and
    skips the graph by its length, so no onnx or onnxruntime import and no session is needed.

    Example:
        >>> "edgekit_manifest" in metadata_props("yolo-lite-onnx.onnx")  # doctest: +SKIP
        True
    """
    import mmap

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        try:
            out = {}
            for number, wire, value in _fields(buf, 0, len(buf)):
                if number == 14 and wire == 2:
                    entry = {n: bytes(buf[v[0]:v[1]]).decode("utf-8") for n, w, v in _fields(buf, *value) if w == 2}
                    out[entry.get(1, "")] = entry.get(2, "")
            return out
        except (IndexError, ValueError, UnicodeDecodeError) as exc:
            raise EdgekitError(f"{path}: not a readable ONNX file ({exc}): re-export it") from None
