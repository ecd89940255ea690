"""ncnn backend: a ``.param`` + ``.bin`` pair, fp32 by default so parity is exact.

ncnn turns on fp16 (and, on some CPUs, bf16) storage and arithmetic by default where the
hardware has it; edgekit turns all of them off unless ``precision="fp16"``, so the same
artifact gives the same numbers on every machine unless the user asks for speed.

ncnn works on one image at a time with CHW blobs: :meth:`NcnnBackend.run` drops the batch
axis going in and adds it back coming out, so outputs have the ONNX shapes ((1, C, H, W)
maps, (1, N) logits). Blob names are pnnx's: ``in0``, and ``out0``, ``out1``, ... in the
torch module's output order, which is the order returned here.

The .param format stores no output shapes, and an input shape only when the Input layer
has ``0=w 1=h 2=c`` (``edgekit.export.ncnn`` writes them). With an input shape, the
backend runs one zero image at load to learn the output shapes; without one (a .param from
elsewhere), the input is ``(1, -1, -1, -1)`` and outputs ``(1, -1)`` until the first :meth:`run`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import Backend, TensorInfo, register_backend

PARAM_MAGIC = "7767517"
PRECISIONS = {"fp32": "fp32", "f32": "fp32", "fp16": "fp16", "f16": "fp16"}
_FP16_FLAGS = ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic")
_BF16_FLAGS = ("use_bf16_packed", "use_bf16_storage")


def read_param(text: str) -> list[dict]:
    """Layers of a text ``.param``: ``{"type", "name", "inputs", "outputs", "params"}`` each.

    Example:
        >>> read_param("7767517\\n1 1\\nInput in0 0 1 in0 0=64 1=64 2=3\\n")[0]["params"]
        {'0': '64', '1': '64', '2': '3'}
    """
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != [PARAM_MAGIC] or len(lines) < 2:
        raise EdgekitError(f"not a text ncnn .param (first line is not {PARAM_MAGIC}): re-export it with edgekit")
    layers = []
    for f in lines[2:]:
        n_in, n_out = int(f[2]), int(f[3])
        blobs = f[4:4 + n_in + n_out]
        params = dict(kv.split("=", 1) for kv in f[4 + n_in + n_out:])
        layers.append({"type": f[0], "name": f[1], "inputs": blobs[:n_in], "outputs": blobs[n_in:], "params": params})
    return layers


def graph_io(layers: list[dict]) -> tuple[list[str], list[str]]:
    """(input blob names, output blob names): outputs are the blobs no layer consumes, ordered out0, out1, ..."""
    inputs = [b for layer in layers if layer["type"] == "Input" for b in layer["outputs"]]
    consumed = {b for layer in layers for b in layer["inputs"]}
    outputs = [b for layer in layers for b in layer["outputs"] if b not in consumed]
    key = lambda b: (0, int(m.group(1))) if (m := re.fullmatch(r"out(\d+)", b)) else (1, 0)  # noqa: E731
    return inputs, sorted(outputs, key=key)  # stable: non-pnnx names keep the file's order


def input_shape(layers: list[dict], name: str) -> tuple[int, ...]:
    """NCHW shape of an Input blob from its ``0=w 1=h 2=c`` params, -1 where not given."""
    for layer in layers:
        if layer["type"] == "Input" and name in layer["outputs"]:
            p = layer["params"]
            return (1, int(p.get("2", -1)), int(p.get("1", -1)), int(p.get("0", -1)))
    return (1, -1, -1, -1)


@register_backend
class NcnnBackend(Backend):
    """Run an ncnn ``.param`` (its ``.bin`` beside it, same stem).

    Args:
        path: the ``.param``.
        threads: ``opt.num_threads`` (None: ncnn's default, the big cores).
        delegate: unused; must be None.
        device: ``cpu`` (default) or ``vulkan``/``gpu`` when ncnn sees a Vulkan GPU.
        precision: ``fp32`` (default: fp16/bf16 storage and arithmetic off) or ``fp16``.
        fallback: run on CPU (with a warning) when the Vulkan device is absent.

    Example:
        >>> b = NcnnBackend("model.param", threads=2)  # doctest: +SKIP
        >>> [o.shape for o in b.run([np.zeros(b.inputs[0].shape, np.float32)])]  # doctest: +SKIP
        [(1, 35, 2, 2)]
    """

    name = "ncnn"
    suffixes = (".param",)
    companions = (".bin",)
    extra = "ncnn"
    packages = (("ncnn", "ncnn"),)
    precisions = tuple(PRECISIONS)

    @classmethod
    def accelerators(cls) -> list[dict]:
        """ncnn's Vulkan path when it sees a GPU."""
        try:
            import ncnn

            return super().accelerators() + ([{"delegate": None, "device": "vulkan"}] if ncnn.get_gpu_count() > 0
                                             else [])
        except Exception:  # a half-installed interpreter: the CPU path reports its own error
            return super().accelerators()

    def __init__(self, path, threads: int | None = None, delegate: str | None = None, device: str | None = None,
                 precision: str | None = None, fallback: bool = False):
        import ncnn

        if delegate:
            raise EdgekitError(f"ncnn has no delegate '{delegate}': use --device vulkan for its GPU path")
        self.path = Path(path)
        bin_path = self.path.with_suffix(".bin")
        if not bin_path.is_file():
            raise EdgekitError(f"{self.path}: its weights {bin_path.name} are missing beside it")
        key = (precision or "fp32").lower()
        if key not in PRECISIONS:
            raise EdgekitError(f"unknown ncnn precision '{precision}': use fp32 or fp16")
        self.precision, self.threads, self.warnings = PRECISIONS[key], threads, []
        self.device = self._pick_device(ncnn, (device or "cpu").lower(), fallback)
        layers = read_param(self.path.read_text(errors="replace"))
        in_names, out_names = graph_io(layers)
        if len(in_names) != 1:
            raise EdgekitError(f"{self.path}: {len(in_names)} Input layers; edgekit runs single-input models")

        self.net = ncnn.Net()
        opt = self.net.opt  # options must be set before load_param: layers pick kernels at load
        for flag in _FP16_FLAGS:
            setattr(opt, flag, self.precision == "fp16")
        for flag in _BF16_FLAGS:
            setattr(opt, flag, False)
        opt.use_vulkan_compute = self.device == "vulkan"
        if threads:
            opt.num_threads = int(threads)
        if self.net.load_param(str(self.path)) != 0:
            raise EdgekitError(f"{self.path}: ncnn cannot parse it (a layer type this ncnn build lacks?): "
                               "upgrade ncnn or re-export")
        if self.net.load_model(str(bin_path)) != 0:
            raise EdgekitError(f"{bin_path}: ncnn cannot read the weights (truncated, or from another .param?)")
        shape = input_shape(layers, in_names[0])
        self.inputs = [TensorInfo(in_names[0], shape, "float32")]
        self.outputs = [TensorInfo(n, (), "float32") for n in out_names]
        if -1 not in shape:
            self.run([np.zeros(shape, np.float32)])  # learns the output shapes
        else:
            self.outputs = [TensorInfo(n, (1, -1), "float32") for n in out_names]

    def _pick_device(self, ncnn, device: str, fallback: bool) -> str:
        if device == "cpu":
            return "cpu"
        if device not in ("vulkan", "gpu"):
            raise EdgekitError(f"unknown ncnn device '{device}': use cpu or vulkan")
        if ncnn.get_gpu_count() > 0:
            return "vulkan"
        msg = "ncnn sees no Vulkan GPU here"
        if not fallback:
            raise EdgekitError(f"{msg}: use --device cpu, or allow the CPU fallback")
        self.warnings.append(f"{msg}: fell back to CPU")
        return "cpu"

    def _run_one(self, ncnn, x: np.ndarray) -> list[np.ndarray]:
        ex = self.net.create_extractor()
        ex.input(self.inputs[0].name, ncnn.Mat(np.ascontiguousarray(x, np.float32)).clone())
        outs = []
        for info in self.outputs:
            ret, mat = ex.extract(info.name)
            if ret != 0:
                raise EdgekitError(f"{self.path}: ncnn failed to compute '{info.name}' (error {ret})")
            outs.append(np.array(mat, dtype=np.float32, copy=True))  # copy: the Mat dies with the extractor
        return outs

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import ncnn

        x = np.asarray(inputs[0])
        if x.ndim != 4:
            raise EdgekitError(f"ncnn input must be NCHW, got shape {x.shape}")
        per_image = [self._run_one(ncnn, img) for img in x]  # ncnn has no batch axis: one image at a time
        outs = [np.stack([r[k] for r in per_image]) for k in range(len(self.outputs))]
        if -1 in self.inputs[0].shape:  # a .param without input shape: learn shapes from the first run
            self.inputs = [TensorInfo(self.inputs[0].name, (1, *x.shape[1:]), "float32")]
        if any(-1 in o.shape or not o.shape for o in self.outputs):
            self.outputs = [TensorInfo(o.name, (1, *a.shape[1:]), "float32") for o, a in zip(self.outputs, outs)]
        return outs

    def details(self) -> dict:
        opt = self.net.opt
        return {"device": self.device, "precision": self.precision, "threads": opt.num_threads,
                "options": {f: bool(getattr(opt, f)) for f in _FP16_FLAGS + _BF16_FLAGS}}
