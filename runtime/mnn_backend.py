"""MNN backend: a ``.mnn`` file run by MNN's session API, fp32 arithmetic unless asked otherwise.

The PyPI ``mnn`` wheel (3.6.1) is built against numpy 1.x: under numpy 2 it says "import numpy
failed" and its ``Tensor.fromNumpy``/``getNumpyData`` are gone, leaving per-element tuples
(~100 ms for one 320 px image). This backend moves tensors through the host buffer instead:
``Tensor.getHost()`` is a capsule holding the buffer's address, which ctypes turns into a
numpy view, so an input is one copy in and every output one copy out, with any numpy.

MNN picks fp16 (ARMv8.2) or bf16 arithmetic where the CPU has it unless the session asks for
``precision="high"``: edgekit asks for it unless ``precision="fp16"``, so the same artifact
gives the same numbers everywhere. An INT8 ``.mnn`` (``mnnquant``) keeps float inputs and
outputs and runs its int8 kernels whatever the precision. MNN prints its banner and session
notes on stdout from C; they are kept off stdout (``--json`` stays one document) and shown in
errors when opening fails.

The ``.mnn`` flatbuffer has no free metadata slot (only a ``bizCode`` tag): the manifest is the
sidecar ``<file>.mnn.json`` that ``edgekit export`` writes, as for ncnn.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import Backend, TensorInfo, register_backend

# edgekit precision name -> MNN session precision ("high": fp32 everywhere; "low": fp16 where the CPU has it)
PRECISIONS = {"fp32": "high", "f32": "high", "fp16": "low", "f16": "low"}
_CAFFE = 1  # MNN.Tensor_DimensionType_Caffe: NCHW host layout
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype, _capsule_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]


@contextlib.contextmanager
def native_output():
    """Route what native code prints (file descriptors 1 and 2) to a temporary file; yields a list
    that holds the text once the block ends.

    Example:
        >>> with native_output() as said:
        ...     _ = os.write(1, b"MNN use high precision\\n")
        >>> said
        ['MNN use high precision\\n']
    """
    said: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        libc = ctypes.CDLL(None)
    except OSError:  # no C library handle (not a glibc/musl system): nothing buffered to flush
        libc = None
    with tempfile.TemporaryFile() as sink:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            if libc is not None:
                libc.fflush(None)  # C stdio buffers what MNN printf'd: out before the descriptors go back
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            said.append(sink.read().decode(errors="replace"))


def host_view(tensor) -> np.ndarray:
    """A float32 numpy view of an MNN host tensor's buffer (no copy; valid while ``tensor`` lives).

    Example:
        >>> import MNN  # doctest: +SKIP
        >>> t = MNN.Tensor((1, 3, 2, 2), MNN.Halide_Type_Float, MNN.Tensor_DimensionType_Caffe)  # doctest: +SKIP
        >>> host_view(t).shape  # doctest: +SKIP
        (1, 3, 2, 2)
    """
    shape = tuple(int(d) for d in tensor.getShape())
    address = _capsule_pointer(tensor.getHost(), None)
    if not address:
        raise EdgekitError("MNN returned a tensor without a host buffer: this mnn build is not supported")
    return np.ctypeslib.as_array((ctypes.c_float * int(np.prod(shape))).from_address(address)).reshape(shape)


def output_order(names) -> list[str]:
    """Output names in the model's order: ``output0, output1, ... output10`` numerically, others as given.

    Example:
        >>> output_order(["output10", "output2", "output0"])
        ['output0', 'output2', 'output10']
    """
    key = lambda n: (0, int(m.group(1))) if (m := re.fullmatch(r"output(\d+)", n)) else (1, 0)  # noqa: E731
    return sorted(names, key=key)


@register_backend
class MnnBackend(Backend):
    """Run an MNN ``.mnn`` (fp32 from MNNConvert, or INT8 from mnnquant) on the CPU.

    Args:
        path: the ``.mnn``.
        threads: the session's ``numThread`` (None: MNN's default, 4).
        delegate: unused; must be None.
        device: ``cpu`` (the PyPI wheels are CPU builds).
        precision: ``fp32`` (default: exact) or ``fp16`` (MNN's "low": fp16 arithmetic on ARMv8.2 CPUs).
        fallback: unused (there is no other device to fall back from).

    Example:
        >>> b = MnnBackend("model.mnn", threads=1)  # doctest: +SKIP
        >>> [o.shape for o in b.run([np.zeros(b.inputs[0].shape, np.float32)])]  # doctest: +SKIP
        [(1, 36, 40, 40), (1, 36, 20, 20), (1, 36, 10, 10)]
    """

    name = "mnn"
    suffixes = (".mnn",)
    extra = "mnn"
    packages = (("MNN", "mnn"),)
    precisions = tuple(PRECISIONS)

    @classmethod
    def import_interpreter(cls):
        """Import MNN with its banner (C printf on stdout) and numpy notice kept off the terminal."""
        with native_output():
            return super().import_interpreter()

    def __init__(self, path, threads: int | None = None, delegate: str | None = None, device: str | None = None,
                 precision: str | None = None, fallback: bool = False):
        MNN = self.import_interpreter()
        if delegate:
            raise EdgekitError(f"MNN has no delegate '{delegate}': drop --delegate (MNN runs on the CPU here)")
        if (device or "cpu").lower() != "cpu":
            raise EdgekitError(f"MNN device '{device}' is not offered: the mnn wheels are CPU builds; use --device cpu")
        key = (precision or "fp32").lower()
        if key not in PRECISIONS:
            raise EdgekitError(f"unknown MNN precision '{precision}': use fp32 or fp16")
        self.path, self.threads, self.warnings = Path(path), threads, []
        self.precision = "fp32" if PRECISIONS[key] == "high" else "fp16"
        config = {"backend": "CPU", "precision": PRECISIONS[key]}
        if threads:
            config["numThread"] = int(threads)
        with native_output() as said:
            try:
                self.interpreter = MNN.Interpreter(str(self.path))
                self.session = self.interpreter.createSession(config)
                feeds = self.interpreter.getSessionInputAll(self.session)
                fetches = self.interpreter.getSessionOutputAll(self.session)
            except Exception as exc:  # MNN raises bare Exceptions for unreadable files
                feeds, fetches, error = {}, {}, exc
            else:
                error = None
        if error is not None or not fetches:
            told = " | ".join(ln.strip() for ln in said[0].splitlines()
                              if ln.strip() and "device supports" not in ln and "numpy" not in ln.lower())[-300:]
            raise EdgekitError(f"{self.path}: MNN cannot open it ({error or told or 'no outputs'}): "
                               "re-export it with edgekit, or upgrade mnn")
        if len(feeds) != 1:
            raise EdgekitError(f"{self.path}: {len(feeds)} inputs; edgekit runs single-input models")
        in_name, self._feed = next(iter(feeds.items()))
        self._out_names = output_order(list(fetches))
        self._fetch = [fetches[n] for n in self._out_names]
        # host tensors of our own in NCHW: copyFrom/copyToHostTensor convert MNN's internal layouts
        self._host_in = MNN.Tensor(self._feed.getShape(), MNN.Halide_Type_Float, _CAFFE)
        self._host_out = [MNN.Tensor(t.getShape(), MNN.Halide_Type_Float, _CAFFE) for t in self._fetch]
        self.inputs = [TensorInfo(in_name, tuple(self._feed.getShape()), "float32")]
        self.outputs = [TensorInfo(n, tuple(t.getShape()), "float32") for n, t in zip(self._out_names, self._fetch)]

    def _run_one(self, x: np.ndarray) -> list[np.ndarray]:
        host_view(self._host_in)[...] = x
        self._feed.copyFrom(self._host_in)
        self.interpreter.runSession(self.session)
        outs = []
        for t, host in zip(self._fetch, self._host_out):
            t.copyToHostTensor(host)
            outs.append(host_view(host).copy())  # copy: the host buffer is reused by the next run
        return outs

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs[0], dtype=np.float32)
        want = self.inputs[0].shape
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(want[1:]):
            raise EdgekitError(f"MNN input must have shape (N, {', '.join(map(str, want[1:]))}), got {x.shape}")
        if x.shape[0] == 1:
            return self._run_one(x)
        per_image = [self._run_one(img[None]) for img in x]  # the session is sized for one image
        return [np.concatenate([r[k] for r in per_image]) for k in range(len(self.outputs))]

    def details(self) -> dict:
        return {"device": "cpu", "precision": self.precision,
                "session": {"backend": "CPU", "precision": PRECISIONS[self.precision],
                            "numThread": self.threads or "MNN default (4)"},
                "io": "host-buffer views (ctypes): no numpy build dependency"}
