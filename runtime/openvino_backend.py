"""OpenVINO backend: an IR (``.xml`` + ``.bin``) compiled with explicit precision and threads.

OpenVINO picks the compute precision per device when not told: on CPUs with AVX512-BF16 or
AMX it is bf16, which moved MobileNet outputs by 0.44 in TOOLCHAIN.md. Every model edgekit
compiles asks for ``INFERENCE_PRECISION_HINT`` explicitly (f32 unless the user chose f16 or
bf16), with the LATENCY performance hint (one stream: one image at a time, as on a board).

A device that is not present is an error naming the ones that are, unless ``fallback=True``,
which runs on CPU and says so in ``warnings`` (and ``describe()``).

INT8 IRs on ARM (OpenVINO 2026.4.1, measured under QEMU): the aarch64 CPU plugin's low-precision
path (LPT: FakeQuantize folded into int8 convolutions) cannot compile edgekit's NNCF INT8
MobileNetV2 detectors on the Cortex-A53/A72 (ARMv8.0, no dot product): oneDNN answers "object is
not initialized" at the first requantized 1x1 convolution fed by a zero-point activation. On the
A76 it compiles but executes ~110x the instructions of the fp32 IR. OpenVINO's maintainers call
its ARM int8 support limited (quantized models run in fp16 there; openvino_build_deploy#440).
So on aarch64, an INT8 IR compiled at f32 runs with LPT off: the FakeQuantize ops execute as
written, in fp32 (the int8 steps are reproduced, not int8 kernels), and ``describe()`` says so
(``int8_kernels: False``). ``precision="f16"`` (the A76's own choice) keeps OpenVINO's fp16 path.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import Backend, TensorInfo, register_backend

PRECISIONS = {"f32": "f32", "fp32": "f32", "f16": "f16", "fp16": "f16", "bf16": "bf16"}
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")  # they pick real devices themselves
# the CPU plugin's switch for its low-precision transformations (an internal property it accepts in config)
LP_TRANSFORMS_MODE = "LP_TRANSFORMS_MODE"


def read_ir_manifest(xml_path: str | Path) -> dict | None:
    """The edgekit manifest stored in an IR's ``rt_info`` (see ``edgekit.export.openvino``), or None.

    Parses the XML with the standard library (defusedxml when importable), so a board needs
    no OpenVINO Python API to read it.

    Example:
        >>> read_ir_manifest("model_openvino/model.xml")["head_spec"]["type"]  # doctest: +SKIP
        'yolo'
    """
    try:
        from defusedxml import ElementTree as ET
    except ImportError:  # the IR is one we wrote; defusedxml is still preferred
        from xml.etree import ElementTree as ET
    try:
        root = ET.parse(str(xml_path)).getroot()
    except (OSError, ValueError, ET.ParseError) as exc:  # defusedxml refusals are ValueErrors
        raise EdgekitError(f"{xml_path}: not a readable OpenVINO IR ({exc})") from None
    node = root.find("rt_info/edgekit/manifest")
    if node is None or node.get("value") is None:
        return None
    try:
        return json.loads(node.get("value"))
    except json.JSONDecodeError as exc:
        raise EdgekitError(f"{xml_path}: the edgekit manifest in rt_info is not valid JSON ({exc}): re-export") from None


def openvino_reason(exc: BaseException, limit: int = 300) -> str:
    """The meaningful line of an OpenVINO exception: its message without the ``Exception from
    src/...cpp:N:`` location lines that wrap every C++ error (the first line is only a location).

    Example:
        >>> openvino_reason(RuntimeError("Exception from src/inference/src/cpp/core.cpp:117:\\n"
        ...     "Exception from src/inference/src/dev/plugin.cpp:54:\\nobject is not initialized\\n"))
        'object is not initialized'
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    meaningful = [ln for ln in lines if not (ln.startswith("Exception from ") and ln.endswith(":"))]
    text = "; ".join(meaningful or lines) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_arm() -> bool:
    return platform.machine().lower() in ("aarch64", "arm64")


def _arm_hint(int8_kernels) -> str:
    if int8_kernels is None or not _is_arm():
        return ""
    return ("; OpenVINO's int8 support on ARM CPUs is limited: run this model's tflite-int8 or onnx-int8 export on "
            "this board, or the fp32 openvino one")


def _dims(partial_shape) -> tuple[int, ...]:
    # dynamic dimensions are reported as 1, as the onnxruntime backend does
    return tuple(d.get_length() if d.is_static else 1 for d in partial_shape)


def _pick_device(core, device: str | None, fallback: bool) -> tuple[str, list[str]]:
    """(device to compile for, warnings): EdgekitError for an absent device unless ``fallback``."""
    want = (device or "CPU").upper()
    have = list(core.available_devices)
    base = want.split(":")[0].split(".")[0]
    if base in VIRTUAL_DEVICES or any(d == want or d.split(".")[0] == want for d in have):
        return want, []
    msg = f"OpenVINO device '{want}' is not present here (available: {', '.join(have) or 'none'})"
    if not fallback:
        raise EdgekitError(f"{msg}: choose one of those, or allow the CPU fallback")
    return "CPU", [f"{msg}: fell back to CPU"]


@register_backend
class OpenVinoBackend(Backend):
    """Run an OpenVINO IR.

    Args:
        path: the ``.xml`` (its ``.bin`` beside it).
        threads: ``INFERENCE_NUM_THREADS`` (None: OpenVINO's default, all cores).
        delegate: unused (OpenVINO has devices, not delegates); must be None.
        device: ``CPU`` (default), ``GPU``, ``NPU``, ``AUTO``, ...
        precision: ``f32`` (default, exact), ``f16`` or ``bf16``: ``INFERENCE_PRECISION_HINT``.
        fallback: run on CPU (with a warning) when ``device`` is not present.
        hint: ``latency`` (default: one stream, one image at a time, as a camera loop runs) or
            ``throughput`` (several streams; for batch jobs with parallel requests).

    Example:
        >>> b = OpenVinoBackend("model.xml", threads=2)  # doctest: +SKIP
        >>> [o.shape for o in b.run([np.zeros(b.inputs[0].shape, np.float32)])]  # doctest: +SKIP
    """

    name = "openvino"
    suffixes = (".xml",)
    also_reads = (".onnx",)
    companions = (".bin",)
    extra = "openvino"
    packages = (("openvino", "openvino"),)
    precisions = tuple(PRECISIONS)

    @classmethod
    def read_manifest(cls, path: str | Path) -> dict | None:
        # an .onnx run by OpenVINO carries its manifest the ONNX way; onnxruntime's reader has it
        return read_ir_manifest(path) if Path(path).suffix.lower() == ".xml" else None

    @classmethod
    def accelerators(cls) -> list[dict]:
        """OpenVINO devices besides the CPU (GPU, NPU) that its Core sees here."""
        try:
            import openvino as ov

            return super().accelerators() + [{"delegate": None, "device": d} for d in ov.Core().available_devices
                                             if d != "CPU"]
        except Exception:  # a half-installed interpreter: the CPU path reports its own error
            return super().accelerators()

    def __init__(self, path, threads: int | None = None, delegate: str | None = None, device: str | None = None,
                 precision: str | None = None, fallback: bool = False, hint: str = "latency"):
        import openvino as ov

        if delegate:
            raise EdgekitError(f"OpenVINO has no delegate '{delegate}': choose a device (--device GPU/NPU) instead")
        self.path = Path(path)
        if self.path.suffix.lower() == ".xml" and not self.path.with_suffix(".bin").is_file():
            raise EdgekitError(f"{self.path}: its weights {self.path.with_suffix('.bin').name} are missing beside it")
        key = (precision or "f32").lower()
        if key not in PRECISIONS:
            raise EdgekitError(f"unknown OpenVINO precision '{precision}': use f32, f16 or bf16")
        self.precision = PRECISIONS[key]
        self.threads = threads
        core = ov.Core()
        self.device, self.warnings = _pick_device(core, device, fallback)
        if hint.lower() not in ("latency", "throughput"):
            raise EdgekitError(f"unknown OpenVINO performance hint '{hint}': use latency or throughput")
        config = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": hint.upper()}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.int8_kernels = None  # None: not an INT8 IR
        try:
            model = core.read_model(str(self.path))
            if any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()):
                self.int8_kernels = not (_is_arm() and self.device == "CPU" and self.precision == "f32")
                if not self.int8_kernels:  # see the module docstring: LPT off, FakeQuantize in fp32
                    config[LP_TRANSFORMS_MODE] = False
            self.compiled = core.compile_model(model, self.device, config)
            if self.int8_kernels is False:
                self.warnings.append("INT8 IR on an ARM CPU at f32: OpenVINO's int8 kernels are off here, its "
                                     "FakeQuantize ops run in fp32 (the int8 steps are kept, the int8 speed is not)")
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long C++ traces
            raise EdgekitError(f"{self.path}: OpenVINO cannot load it on {self.device} ({openvino_reason(exc)})"
                               + _arm_hint(self.int8_kernels)) from None
        self.request = self.compiled.create_infer_request()
        self.inputs = [self._info(p) for p in self.compiled.inputs]
        self.outputs = [self._info(p) for p in self.compiled.outputs]

    @staticmethod
    def _info(port) -> TensorInfo:
        return TensorInfo(port.get_any_name(), _dims(port.get_partial_shape()),
                          str(np.dtype(port.get_element_type().to_dtype())))

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        # share_outputs=False (the default) copies results out of the request's buffers,
        # so arrays returned by one call survive the next
        res = self.request.infer({k: np.ascontiguousarray(x) for k, x in enumerate(inputs)})
        return [res[port] for port in self.compiled.outputs]

    def _property(self, name: str):
        try:
            value = self.compiled.get_property(name)
        except Exception:  # not every device reports every property
            return None
        if hasattr(value, "get_type_name"):  # an element type such as INFERENCE_PRECISION_HINT
            return value.get_type_name()
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        if hasattr(value, "name") and not isinstance(value, str):  # enums (AUTO answers PerformanceMode.LATENCY)
            return value.name
        return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)

    def details(self) -> dict:
        return {"device": self.device, "execution_devices": self._property("EXECUTION_DEVICES"),
                "precision": self._property("INFERENCE_PRECISION_HINT") or self.precision,
                "threads": self._property("INFERENCE_NUM_THREADS") or self.threads,
                "performance_hint": self._property("PERFORMANCE_HINT"),
                **({} if self.int8_kernels is None else {"int8_kernels": self.int8_kernels})}
