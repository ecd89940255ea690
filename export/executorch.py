"""torch module to an ExecuTorch program (``.pte``), delegated to XNNPACK: fp32, or INT8 through PT2E.

* ``fp32``: ``torch.export`` of the module -> ``to_edge_transform_and_lower`` with the
  ``XnnpackPartitioner`` -> ``.pte``.
* ``int8``: the exported graph's module through PT2E post-training quantization
  (``torchao.quantization.pt2e`` ``prepare_pt2e``/``convert_pt2e``) with ExecuTorch's
  ``XNNPACKQuantizer`` (per-output-channel symmetric int8 weights, per-tensor asymmetric int8
  activations from its histogram observer), calibrated on the images of edgekit's
  :class:`~edgekit.export.calibration.CalibrationReader` (the inference letterbox), then
  exported again and lowered like fp32: XNNPACK runs the int8 convolutions. Input and
  outputs stay float32 (the quantize/dequantize at the ends run inside the delegate).
  A detector's output ranges are clipped like every other INT8 target's
  (:data:`~edgekit.export.calibration.DETECTION_LOGIT_CLIP`).

The program takes NCHW float32 (1, 3, H, W) in [0, 1] and returns the module's outputs in
torch's order (NCHW), as the ONNX does. A ``.pte`` has no free metadata slot the exporter
could fill after verification: the manifest is the sidecar ``<file>.pte.json``, as for ncnn
and MNN. What did not go to XNNPACK (ops left to ExecuTorch's portable kernels) is counted in
the returned info (``delegation``) and so in the manifest.

Example:
    >>> torch2executorch(model, (320, 320), Path("m.pte"))["delegation"]["not_delegated"]  # doctest: +SKIP
    {}
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections import Counter
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, MissingExtraError
from edgekit.export.calibration import clipped
from edgekit.export.wrap import tuple_outputs

PRECISIONS = ("fp32", "int8")


def _require() -> str:
    """The executorch version; MissingExtraError naming the extra when it (or its XNNPACK parts) is absent."""
    try:
        for module in ("executorch.exir", "executorch.backends.xnnpack.partition.xnnpack_partitioner"):
            importlib.import_module(module)
    except ImportError:
        raise MissingExtraError("executorch", "export", "ExecuTorch export") from None
    return importlib.metadata.version("executorch")


def _example(imgsz) -> tuple:
    import torch

    h, w = (int(imgsz), int(imgsz)) if np.isscalar(imgsz) else (int(imgsz[0]), int(imgsz[1]))
    return (torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)),)


def _exported(module, example):
    import torch

    try:
        return torch.export.export(module, example, strict=False)
    except Exception as exc:  # torch.export names the construct it could not capture
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise EdgekitError(f"torch.export could not capture the model ({first}): use the ONNX or TFLite targets") from None


def clip_output_observers(prepared, clip: float | None) -> int:
    """Clip the calibrated ranges of the observers on the graph's outputs to [-clip, clip]; how many.

    Each output observer (the XNNPACK quantizer's histogram observer) is replaced by a min/max
    observer holding the observed range, clipped: its quantization parameters are then those of
    the clipped range. Detectors' outputs are logits (see
    :data:`edgekit.export.calibration.DETECTION_LOGIT_CLIP`).

    Example:
        >>> clip_output_observers(prepared_model, 9.2)  # doctest: +SKIP
        1
    """
    if clip is None:
        return 0
    import torch
    from torchao.quantization.pt2e import MinMaxObserver

    output = next(n for n in prepared.graph.nodes if n.op == "output")
    done = 0
    for node in _flat(output.args[0]):
        if node.op != "call_module":
            continue
        obs = prepared.get_submodule(node.target)
        if not hasattr(obs, "calculate_qparams") or not hasattr(obs, "min_val"):
            continue
        # the observed extremes (as the other INT8 targets' min/max ranges), not the histogram's
        # L2-optimal range, which may cut the rare large positive logits: the few cells with an object
        lo, hi = clipped(float(obs.min_val), float(obs.max_val), clip)
        fixed = MinMaxObserver(dtype=obs.dtype, qscheme=obs.qscheme, quant_min=obs.quant_min,
                               quant_max=obs.quant_max, eps=float(obs.eps))
        fixed(torch.tensor([min(lo, 0.0), max(hi, 0.0)]))  # a range always holds 0 (as the observers' own do)
        prepared.set_submodule(node.target, fixed)
        done += 1
    return done


def _flat(args) -> list:
    """The fx nodes of an output node's (possibly nested) argument."""
    if isinstance(args, (list, tuple)):
        return [n for a in args for n in _flat(a)]
    return [args] if hasattr(args, "op") else []


def quantize_pt2e(module, example, calib, output_clip: float | None = None):
    """``module`` quantized with PT2E and the XNNPACK quantizer, calibrated on ``calib``.

    Returns ``(ExportedProgram of the quantized module, number of output observers clipped)``.

    Args:
        module: an eval-mode module returning a tuple (``tuple_outputs``).
        example: the example input tuple.
        calib: a :class:`~edgekit.export.calibration.CalibrationReader` (its arrays are (1, 3, H, W)).
        output_clip: clip the outputs' calibrated ranges to +-this (detectors), None to keep them.

    Example:
        >>> ep, clipped_outputs = quantize_pt2e(tuple_outputs(model), _example(64), reader, 9.2)  # doctest: +SKIP
    """
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(_exported(module, example).module(), quantizer)
    want = tuple(example[0].shape)
    with torch.no_grad():
        for x in calib:
            x = np.ascontiguousarray(x, dtype=np.float32)
            if x.shape != want:
                raise EdgekitError(f"calibration tensor of shape {x.shape}, the model takes {want}: "
                                   "calibrate at the export size")
            prepared(torch.from_numpy(x))
    clipped_outputs = clip_output_observers(prepared, output_clip)
    return _exported(convert_pt2e(prepared), example), clipped_outputs


def delegation(edge_program) -> dict:
    """How much of a lowered program XNNPACK runs: delegate calls, and ops left to portable kernels.

    Example:
        >>> delegation(edge)  # doctest: +SKIP
        {'delegate_calls': 1, 'not_delegated': {}}
    """
    calls, rest = 0, Counter()
    for node in edge_program.exported_program().graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if "executorch_call_delegate" in name:
            calls += 1
        elif name != "getitem":
            rest[".".join(name.split(".")[:2])] += 1  # aten.upsample_nearest2d.vec -> aten.upsample_nearest2d
    return {"delegate_calls": calls, "not_delegated": dict(rest)}


def torch2executorch(module, imgsz, out: Path, precision: str = "fp32", calib=None,
                     output_clip: float | None = None) -> dict:
    """Convert a torch module to an XNNPACK-delegated ExecuTorch ``.pte`` (fp32 or PT2E INT8).

    Args:
        module: an eval-mode ``nn.Module`` taking (1, 3, H, W) float32 and returning a tensor or a list of tensors.
        imgsz: the input size, an int or (h, w) (the program's input shape is fixed).
        out: the ``.pte`` to write.
        precision: ``fp32`` or ``int8``.
        calib: a CalibrationReader (``int8`` needs one: real images).
        output_clip: INT8 only: clip the outputs' calibrated ranges (detectors' logits).

    Returns:
        ``{"converter", "precision", "input_layout", "output_layout", "delegation", "notes"}`` (+ ``quantization``).

    Raises:
        MissingExtraError: executorch is not installed.
        EdgekitError: no calibration images, torch.export failed, or nothing was delegated to XNNPACK.

    Example:
        >>> torch2executorch(model, 64, Path("m.pte"))["precision"]  # doctest: +SKIP
        'fp32'
    """
    if precision not in PRECISIONS:
        raise EdgekitError(f"ExecuTorch precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and (calib is None or len(calib) == 0):
        raise EdgekitError("executorch-int8 needs calibration images: give --data DATA.yaml or --calib DIR")
    out = Path(out)
    if out.suffix != ".pte":
        raise EdgekitError(f"{out}: an ExecuTorch program is written as a .pte file")
    if module.training:
        raise EdgekitError("the model is in training mode: call model.eval() before converting it")
    version = _require()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    wrapped, example = tuple_outputs(module), _example(imgsz)
    info: dict = {}
    if precision == "int8":
        program, n_clipped = quantize_pt2e(wrapped, example, calib, output_clip)
        info["quantization"] = {
            "tool": f"PT2E (torchao {importlib.metadata.version('torchao')}) with ExecuTorch's XNNPACKQuantizer",
            "images": len(calib), "weights": "per-output-channel symmetric int8",
            "activations": "per-tensor asymmetric int8, histogram observer",
            "output_clip": output_clip if n_clipped else None}
        if n_clipped:  # parity compares what decodes: the reference clipped the same way (export.verify)
            info["output_clip"] = output_clip
    else:
        program = _exported(wrapped, example)
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    lowered = delegation(edge)
    if not lowered["delegate_calls"]:
        raise EdgekitError("XNNPACK took no part of the model (ExecuTorch would run it on its slow portable "
                           "kernels): use the ONNX or TFLite targets")
    buffer = edge.to_executorch().buffer
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")  # whole or nothing under the final name
    try:
        tmp.write_bytes(buffer)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    notes = ["torch.export -> to_edge_transform_and_lower(XnnpackPartitioner) -> .pte; NCHW float32 I/O"]
    if precision == "int8":
        notes.append("PT2E INT8: XNNPACK runs the int8 convolutions; float input and outputs "
                     "(quantize/dequantize inside the delegate)")
    if lowered["not_delegated"]:
        notes.append(f"left to ExecuTorch's portable kernels: {lowered['not_delegated']}")
    return {"converter": f"executorch {version}", "precision": precision, "input_layout": "NCHW",
            "output_layout": "NCHW", "delegation": lowered, **info, "notes": notes}
