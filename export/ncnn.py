"""torch module to ncnn (``.param`` + ``.bin``) through pnnx, fp32 or fp16 weights.

pnnx converts TorchScript, not ONNX, so this path traces the module itself (its ONNX
importer is a thin wrapper around the same passes). pnnx writes seven files next to the
TorchScript file; they go to a temporary folder and only the ncnn pair is kept.

Checks on what pnnx wrote, because pnnx reports ops it cannot lower by leaving them in
the graph (as ``pnnx.xxx``/``F.xxx``/``aten::xxx`` layers ncnn cannot load) rather than
failing, and sometimes lowers one wrongly: every layer type must be an ncnn one, the input
blob must be ``in0``, the outputs exactly ``out0 .. out{n-1}``, and (when ncnn is installed)
each output must match torch's on the trace input. The Input layer gets its shape (``0=w 1=h 2=c``) so
the runtime knows it without a sidecar file. ncnn INT8 needs the C++ ``ncnn2int8`` tool,
which no wheel ships: not offered here (TOOLCHAIN.md).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, MissingExtraError
from edgekit.export.wrap import tuple_outputs
from edgekit.runtime.ncnn_backend import graph_io, read_param

_NCNN_TYPE = re.compile(r"[A-Z][A-Za-z0-9]*")  # Convolution, BinaryOp, InnerProduct, ...


def _with_input_shape(text: str, c: int, h: int, w: int) -> str:
    """The .param text with ``0=w 1=h 2=c`` on the Input layer (pnnx leaves it bare)."""
    lines = text.splitlines()
    for i, line in enumerate(lines[2:], 2):
        f = line.split()
        if f and f[0] == "Input" and len(f) == 5:  # type name 0 1 blob, no params yet
            lines[i] = f"{line} 0={w} 1={h} 2={c}"
    return "\n".join(lines) + "\n"


def _check_param(text: str, n_outputs: int, log: str) -> tuple[str, list[str]]:
    """(input name, output names) of a pnnx .param; EdgekitError naming any op pnnx left unconverted.

    ncnn layer types are CamelCase words; what pnnx could not lower stays under its torch
    name (``pnnx.Expression``, ``F.xxx``, ``Tensor.xxx``, ``aten::xxx``) and ncnn refuses it.
    """
    layers = read_param(text)
    left = sorted({f"{layer['type']} ({layer['name']})" for layer in layers if not _NCNN_TYPE.fullmatch(layer["type"])})
    if left:
        said = [ln.strip() for ln in log.splitlines() if ln.startswith("ignore") or "not supported" in ln]
        raise EdgekitError(f"pnnx could not lower {len(left)} op(s) to ncnn layers: {', '.join(left[:8])}: "
                           "rewrite them with supported torch ops, or use the ONNX/OpenVINO artifacts"
                           + (f" (pnnx: {'; '.join(said[:8])})" if said else ""))
    ins, outs = graph_io(layers)
    want = [f"out{k}" for k in range(n_outputs)]
    if ins != ["in0"] or outs != want:
        raise EdgekitError(f"pnnx wrote blobs {ins} -> {outs}, expected ['in0'] -> {want}: "
                           "the module must take one NCHW tensor and return a tensor or a list/tuple of tensors")
    return ins[0], outs


def _check_against_torch(param: Path, refs: list[np.ndarray], x: np.ndarray, fp16: bool) -> float | None:
    """Max abs difference ncnn (fp32 compute) vs torch on the trace input; EdgekitError when wrong.

    Each out_k must have torch output k's shape, and its values must agree to within what
    the weights' precision explains: pnnx sometimes lowers an op with the wrong axis (in
    20261020 ``flip`` and ``cumsum`` on NCHW tensors come out shifted by the batch axis)
    and says nothing. None when ncnn is not installed here (verification checks later).
    """
    try:
        from edgekit.runtime.ncnn_backend import NcnnBackend

        backend = NcnnBackend(param, threads=1)
    except ImportError:
        return None
    outs = backend.run([x])
    scale = max(1.0, *(float(np.abs(r).max()) for r in refs))
    tol = (5e-2 if fp16 else 1e-3) * scale  # fp16 weights: ~1e-2 relative seen on yolo-fastest
    for k, (o, r) in enumerate(zip(outs, refs)):
        if o.shape != r.shape:
            raise EdgekitError(f"ncnn output out{k} has shape {o.shape}, torch output {k} has {r.shape}: "
                               "pnnx reordered or reshaped the outputs; use the ONNX/OpenVINO artifacts")
        err = float(np.abs(o - r).max())
        if err > tol:
            raise EdgekitError(f"ncnn output out{k} differs from torch by {err:.3g} (allowed {tol:.2g}): pnnx "
                               "lowered an op wrongly; use the ONNX/OpenVINO artifacts, or report it to pnnx")
    return max(float(np.abs(o - r).max()) for o, r in zip(outs, refs))


def torch2ncnn(module, imgsz: int | tuple[int, int], out_param: Path, fp16: bool = False) -> dict:
    """Convert a torch module to an ncnn ``.param`` + ``.bin`` pair with pnnx.

    Args:
        module: an eval-mode ``nn.Module`` taking (1, 3, H, W) float32 and returning a tensor
            or a list/tuple of tensors.
        imgsz: the input size, an int or (h, w); the graph is traced at this size.
        out_param: the ``.param`` to write; the ``.bin`` goes beside it (same stem).
        fp16: store weights in fp16 (half the size; the runtime still chooses fp32/fp16 compute).

    Returns:
        ``{"converter", "precision", "input_layout", "output_layout", "input_name",
        "output_names", "notes"}``.

    Raises:
        MissingExtraError: pnnx is not installed.
        EdgekitError: module in training mode; pnnx failed, left ops unconverted, or changed the outputs.

    Example:
        >>> from edgekit.models import create_model
        >>> m = create_model("yolo-lite", num_classes=2).eval()  # doctest: +SKIP
        >>> torch2ncnn(m, 64, Path("m_ncnn/m.param"))["output_names"]  # doctest: +SKIP
        ['out0']
    """
    try:
        import pnnx
    except ImportError:
        raise MissingExtraError("pnnx", "export", "ncnn export") from None
    import torch

    h, w = (int(imgsz), int(imgsz)) if np.isscalar(imgsz) else (int(imgsz[0]), int(imgsz[1]))
    out_param = Path(out_param)
    if out_param.suffix != ".param":
        raise EdgekitError(f"{out_param}: an ncnn model is written as a .param file (its .bin goes beside it)")
    if module.training:  # a train-mode trace would bake batch statistics and dropout into the graph
        raise EdgekitError("the model is in training mode: call model.eval() before converting it")
    wrapped = tuple_outputs(module)
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        refs = [r.numpy() for r in wrapped(x)]
    with tempfile.TemporaryDirectory(prefix="edgekit-pnnx-") as tmp:
        tmp = Path(tmp)
        with warnings.catch_warnings(), torch.no_grad():
            # TracerWarnings about shape-derived Python ints are expected: the size is fixed at export
            warnings.simplefilter("ignore")
            torch.jit.trace(wrapped, x, check_trace=False).save(str(tmp / "model.pt"))
        cmd = [pnnx.EXEC_PATH, "model.pt", f"inputshape=[1,3,{h},{w}]f32", "device=cpu", "optlevel=2",
               f"fp16={int(fp16)}", "ncnnparam=model.ncnn.param", "ncnnbin=model.ncnn.bin"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=1800)
        log = (proc.stdout + proc.stderr).strip()
        param, weights = tmp / "model.ncnn.param", tmp / "model.ncnn.bin"
        if proc.returncode != 0 or not param.is_file() or not weights.is_file():
            raise EdgekitError(f"pnnx failed (exit {proc.returncode}): {log[-800:]}")
        text = param.read_text()
        in_name, out_names = _check_param(text, len(refs), log)
        param.write_text(_with_input_shape(text, 3, h, w))
        max_abs = _check_against_torch(param, refs, x.numpy(), fp16)
        out_param.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(param), out_param)
        shutil.move(str(weights), out_param.with_suffix(".bin"))
    notes = [f"weights {'fp16' if fp16 else 'fp32'}; the runtime picks fp32 (exact) or fp16 compute",
             "blob names are pnnx's: in0, out0..; ncnn blobs are CHW, the edgekit backend adds the batch axis"]
    if max_abs is not None:
        notes.append(f"ncnn (fp32 compute) vs torch on the trace input: max abs {max_abs:.2g}")
    return {"converter": f"pnnx {importlib.metadata.version('pnnx')}", "precision": "fp16" if fp16 else "fp32",
            "input_layout": "NCHW", "output_layout": "NCHW", "input_name": in_name, "output_names": out_names,
            "notes": notes}
