"""LiteRT (TFLite) backend: ``.tflite`` files in LiteRT, tflite_runtime or TensorFlow Lite.

The interpreter is the first one installed of ``ai_edge_litert`` (LiteRT, the maintained
successor), ``tflite_runtime`` (deprecated, last release 2.14) and ``tensorflow.lite``.
XNNPACK is LiteRT's default CPU delegate, so ``threads`` is all the CPU path needs. External
delegates (Edge TPU, NXP's VX delegate for the i.MX 8M Plus NPU, any ``.so``) load through
``load_delegate``; one that cannot load is an error naming the fix, or, with
``fallback=True``, a warning and a CPU run (recorded in :meth:`LiteRTBackend.describe`).
Which delegates exist and where their libraries live is board data: :func:`delegates` reads
it from the board profiles (``runtimes: [litert+edgetpu]``, ``delegates: {edgetpu: ...}``).

:meth:`LiteRTBackend.read_manifest` reads the manifest edgekit stores in the model's flatbuffer
``metadata`` (name ``edgekit_manifest``) with the standard library only: a board with
``tflite_runtime`` has neither ``flatbuffers`` nor the TFLite schema module.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import json
import struct
import warnings
from pathlib import Path

import numpy as np

from edgekit.boards.profiles import list_profiles
from edgekit.errors import EdgekitError
from edgekit.runtime.backends import Backend, TensorInfo, register_backend

MANIFEST_NAME = "edgekit_manifest"
# the fix when a delegate's library does not load (the library paths themselves are board data)
DELEGATE_FIXES = {
    "edgetpu": "install the Edge TPU runtime (libedgetpu1-std from Coral's apt repository) and plug the device in",
    "vx": "use an NXP BSP image that ships tflite-vx-delegate (i.MX 8M Plus) or give the .so path",
}
_CPU = {"", "none", "cpu", "xnnpack"}  # no external delegate: XNNPACK, LiteRT's default


def _is_cpu(name) -> bool:
    return name is None or str(name).lower() in _CPU


@functools.lru_cache(maxsize=1)
def delegates() -> dict[str, tuple[str, ...]]:
    """``{delegate: libraries to try}`` for every ``litert+<delegate>`` runtime of the board profiles.

    A profile's library path is tried first, then its bare file name (found through the
    loader's search path when a BSP installs it elsewhere).

    Example:
        >>> delegates()["edgetpu"]
        ('libedgetpu.so.1',)
    """
    found: dict[str, list[str]] = {}
    for profile in list_profiles():
        for runtime in profile.runtimes:
            backend, _, name = runtime.partition("+")
            lib = profile.delegate(name) if backend == LiteRTBackend.name and name else None
            if lib and lib != "builtin":
                found.setdefault(name, []).extend((lib, Path(lib).name))
    return {name: tuple(dict.fromkeys(libs)) for name, libs in found.items()}


def _load_delegate(mod, delegate: str):
    """Load ``delegate`` (a name in :func:`delegates` or a path to a ``.so``) or raise with the fix."""
    libs = delegates().get(delegate.lower(), (delegate,))
    fix = DELEGATE_FIXES.get(delegate.lower(), "check that the path exists and is a TFLite delegate built for this "
                                               "CPU architecture")
    loader = getattr(mod, "load_delegate", None) or mod.experimental.load_delegate  # tf.lite keeps it there
    errors = []
    for lib in libs:
        try:
            # dlopen first: a missing library then fails here, with dlopen's reason, instead of inside
            # load_delegate (whose half-built Delegate also raises again in its __del__)
            ctypes.CDLL(lib)
            return loader(lib), lib
        except (ValueError, OSError, RuntimeError) as exc:
            errors.append(str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
    raise EdgekitError(f"TFLite delegate '{delegate}' cannot be loaded ({'; '.join(errors)}): {fix}; "
                       "or run on the CPU with --fallback")


@register_backend
class LiteRTBackend(Backend):
    """Run a ``.tflite`` file; inputs and outputs are raw (quantized models take int8/uint8).

    Args:
        path: the ``.tflite`` file.
        threads: interpreter threads (XNNPACK uses them); None lets LiteRT choose.
        delegate: ``"edgetpu"``, ``"vx"``, a path to a delegate ``.so``, or None/"cpu".
        device: accepted for the protocol; a value other than "cpu" is taken as the delegate.
        precision: accepted for the protocol; a .tflite file fixes its own precision.
        fallback: run on the CPU when the delegate cannot load, with a warning, instead of failing.

    Example:
        >>> b = LiteRTBackend("model.tflite", threads=2)  # doctest: +SKIP
        >>> x = np.zeros(b.inputs[0].shape, b.inputs[0].dtype)  # doctest: +SKIP
        >>> [o.shape for o in b.run([x])]  # doctest: +SKIP
    """

    name = "litert"
    suffixes = (".tflite",)
    extra = "tflite"
    # (import name, distribution): LiteRT, then the deprecated tflite_runtime, then TensorFlow's own
    packages = (("ai_edge_litert", "ai-edge-litert"), ("tflite_runtime", "tflite-runtime"),
                ("tensorflow", "tensorflow"))

    @classmethod
    def interpreter(cls):
        """(Interpreter module, its dotted name) of the first TFLite interpreter installed."""
        for top_name in cls.installed():
            try:
                top = importlib.import_module(top_name)
                # tf.lite is an API attribute of tensorflow; the tensorflow/lite package itself is not it
                mod = top.lite if top_name == "tensorflow" else importlib.import_module(f"{top_name}.interpreter")
            except (ImportError, AttributeError):
                continue
            return mod, mod.__name__ if top_name != "tensorflow" else "tensorflow.lite"
        raise EdgekitError(f"no TFLite interpreter is installed: {cls.install_hint()}")

    @classmethod
    def import_interpreter(cls):
        return cls.interpreter()[0]

    @classmethod
    def read_manifest(cls, path: str | Path) -> dict | None:
        """The edgekit manifest stored in a ``.tflite`` file's metadata, or None when it has none.

        Example:
            >>> LiteRTBackend.read_manifest("model.tflite")["task"]  # doctest: +SKIP
            'detect'
        """
        path = Path(path)
        if not path.is_file():
            raise EdgekitError(f"{path} does not exist: give the path to an exported .tflite file")
        try:
            raw = metadata_entries(path.read_bytes()).get(MANIFEST_NAME)
        except (struct.error, IndexError) as exc:
            raise EdgekitError(f"{path}: damaged TFLite flatbuffer ({exc}): export it again") from None
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EdgekitError(f"{path}: the embedded {MANIFEST_NAME} is not valid JSON ({exc}): export it again") from None

    @classmethod
    def accelerators(cls) -> list[dict]:
        """The board profiles' LiteRT delegates whose library loads here."""
        found = []
        for name, libs in delegates().items():
            for lib in libs:
                try:
                    ctypes.CDLL(lib)
                except OSError:
                    continue
                found.append({"delegate": name, "device": None})
                break
        return super().accelerators() + found

    def __init__(self, path, threads: int | None = None, delegate: str | None = None, device: str | None = None,
                 precision: str | None = None, fallback: bool = False):
        mod, self._module = self.interpreter()
        if _is_cpu(delegate) and not _is_cpu(device):
            delegate = device
        self.path = Path(path)
        self.threads = threads
        self.warnings: list[str] = []
        self.delegate = None
        delegates = []
        if not _is_cpu(delegate):
            try:
                loaded, lib = _load_delegate(mod, str(delegate))
                delegates, self.delegate = [loaded], lib
            except EdgekitError as exc:
                if not fallback:
                    raise
                self.warnings.append(f"{exc}; running on the CPU instead")
                warnings.warn(self.warnings[-1], RuntimeWarning, stacklevel=2)
        try:
            self.interpreter = self._open(mod, delegates)
        except EdgekitError as exc:
            if not (delegates and fallback):
                raise
            # the delegate loaded but refused the model (e.g. not compiled for the Edge TPU)
            self.warnings.append(f"{exc}; running on the CPU instead")
            warnings.warn(self.warnings[-1], RuntimeWarning, stacklevel=2)
            self.delegate, self.interpreter = None, self._open(mod, [])
        self._in = self.interpreter.get_input_details()
        self._out = self.interpreter.get_output_details()
        # dynamic height/width (-1 in the signature): run() resizes; fixed models skip that per frame
        self._dynamic = any(-1 in list(d.get("shape_signature", d["shape"])) for d in self._in)
        self.inputs = [self._info(d) for d in self._in]
        self.outputs = [self._info(d) for d in self._out]

    def _open(self, mod, delegates: list):
        kwargs = {"num_threads": int(self.threads)} if self.threads else {}
        try:
            interpreter = mod.Interpreter(model_path=str(self.path), experimental_delegates=delegates or None, **kwargs)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            how = f" with delegate {self.delegate}" if delegates else ""
            raise EdgekitError(f"{self.path}: {self._module} cannot load it{how} "
                               f"({(str(exc).splitlines() or [''])[0][:160]})") from None
        return interpreter

    @staticmethod
    def _info(d: dict) -> TensorInfo:
        scale, zero = d["quantization"]
        quant = (float(scale), int(zero)) if scale else None
        return TensorInfo(d["name"], tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name, quant)

    @staticmethod
    def _fits(shape: tuple, signature) -> bool:
        """Does ``shape`` fit a shape signature whose dynamic dimensions are -1?"""
        return len(shape) == len(signature) and all(int(g) in (-1, int(v)) for v, g in zip(shape, signature))

    def _resize(self, inputs: list[np.ndarray]) -> None:
        """Dynamic-shape models: resize the inputs to these arrays' shapes (then re-allocate)."""
        changed = False
        for d, x in zip(self._in, inputs):
            sig = d.get("shape_signature", d["shape"])
            if tuple(d["shape"]) != tuple(np.shape(x)) and -1 in list(sig) and self._fits(np.shape(x), sig):
                self.interpreter.resize_tensor_input(d["index"], list(np.shape(x)))
                changed = True
        if changed:
            try:
                self.interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise EdgekitError(f"{self.path}: cannot run at input shape {[list(np.shape(x)) for x in inputs]} "
                                   f"({(str(exc).splitlines() or [''])[0][:160]}); give a size the model was "
                                   f"converted for") from None
            self._in, self._out = self.interpreter.get_input_details(), self.interpreter.get_output_details()
            self.inputs = [self._info(d) for d in self._in]
            self.outputs = [self._info(d) for d in self._out]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if self._dynamic:
            self._resize(inputs)
        for info, d, x in zip(self.inputs, self._in, inputs):
            x = np.asarray(x)
            if x.dtype.name != info.dtype or tuple(x.shape) != info.shape:
                how = f" (quantize with scale {info.quant[0]:.6g}, zero point {info.quant[1]})" if info.quant else ""
                sig = [int(v) for v in d.get("shape_signature", info.shape)]
                raise EdgekitError(f"input '{info.name}' wants {info.dtype} {sig if -1 in sig else list(info.shape)}"
                                   f"{how}, got {x.dtype.name} {list(x.shape)}")
            self.interpreter.set_tensor(d["index"], np.ascontiguousarray(x))
        self.interpreter.invoke()
        # get_tensor copies (tensor() would hand out views the next invoke overwrites)
        return [self.interpreter.get_tensor(d["index"]) for d in self._out]

    def details(self) -> dict:
        return {"interpreter": self._module, "delegate": self.delegate or "none (CPU, XNNPACK)"}


# --- metadata: a minimal flatbuffer reader (stdlib only) for Model.metadata -----------------
# TFLite schema field slots: Model.buffers = 4, Model.metadata = 6; Metadata.name = 0,
# Metadata.buffer = 1; Buffer.data = 0, Buffer.offset = 1, Buffer.size = 2.

def _field(buf, table: int, slot: int) -> int | None:
    """Absolute position of field ``slot`` of the table at ``table``, or None when absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_size = struct.unpack_from("<H", buf, vtable)[0]
    if 4 + 2 * slot >= vt_size:
        return None
    off = struct.unpack_from("<H", buf, vtable + 4 + 2 * slot)[0]
    return table + off if off else None


def _deref(buf, pos: int) -> int:
    return pos + struct.unpack_from("<I", buf, pos)[0]


def _vector(buf, table: int, slot: int) -> tuple[int, int]:
    """(start, length) of a vector field; (0, 0) when absent."""
    pos = _field(buf, table, slot)
    if pos is None:
        return 0, 0
    vec = _deref(buf, pos)
    return vec + 4, struct.unpack_from("<I", buf, vec)[0]


def _tables(buf, table: int, slot: int) -> list[int]:
    start, n = _vector(buf, table, slot)
    return [_deref(buf, start + 4 * i) for i in range(n)]


def metadata_entries(data: bytes) -> dict[str, bytes]:
    """``{name: bytes}`` of every ``Model.metadata`` entry of a .tflite flatbuffer.

    Example:
        >>> metadata_entries(Path("model.tflite").read_bytes())["edgekit_manifest"][:1]  # doctest: +SKIP
        b'{'
    """
    buf = memoryview(data)
    if len(buf) < 8 or bytes(buf[4:8]) != b"TFL3":
        raise EdgekitError("not a TFLite flatbuffer (no 'TFL3' identifier): give a .tflite file")
    model = _deref(buf, 0)
    buffers = _tables(buf, model, 4)
    out = {}
    for meta in _tables(buf, model, 6):
        name_pos = _field(buf, meta, 0)
        idx_pos = _field(buf, meta, 1)
        if name_pos is None or idx_pos is None:
            continue
        s = _deref(buf, name_pos)
        name = bytes(buf[s + 4:s + 4 + struct.unpack_from("<I", buf, s)[0]]).decode("utf-8", "replace")
        b = buffers[struct.unpack_from("<I", buf, idx_pos)[0]]
        start, n = _vector(buf, b, 0)
        if n:
            out[name] = bytes(buf[start:start + n])
        else:  # large models keep buffer bytes after the flatbuffer, addressed by offset/size
            off, size = (_field(buf, b, k) for k in (1, 2))
            off, size = (struct.unpack_from("<Q", buf, p)[0] if p else 0 for p in (off, size))
            out[name] = bytes(buf[off:off + size]) if off > 1 else b""
    return out
