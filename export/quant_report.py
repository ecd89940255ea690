"""``edgekit quant-report``: where an INT8 model loses its accuracy, layer by layer.

The model is quantized as ``edgekit export`` would (same calibration reader, same options,
verification images left out), then :func:`edgekit.export.sensitivity.onnx_sensitivity`
compares every layer's INT8 output with the float one on held-out images and ranks the
layers by the error each introduces. The ranked names are what ``--keep-float`` takes.

The same report for ``onnx-int8`` (onnxruntime's ``qdq_loss_debug``), ``tflite-int8``
(ai-edge-quantizer's flatbuffer against litert-torch's fp32 one in the LiteRT interpreter) and
``openvino-int8`` (the NNCF IR against the float IR in the CPU plugin): each target's own
quantizer, its own layer names (:mod:`edgekit.export.layer_ranking`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from edgekit.errors import EdgekitError

def quant_report(model, target: str = "onnx-int8", data=None, calib=None, images: int = 16,
                 calib_images: int | None = None, imgsz: int | None = None, top: int = 10,
                 log: Callable[[str], None] = lambda s: None, calib_method: str | None = None) -> dict:
    """The per-layer INT8 error report of ``model`` for ``target``.

    Example:
        >>> r = quant_report("best.pt", "onnx-int8", data="data.yaml")  # doctest: +SKIP
        >>> r["worst"][:2]  # doctest: +SKIP
        ['/inner/head/convs.1/Conv', '/inner/backbone/features.17/conv/Conv']
    """
    from edgekit.export.calib_method import check_calib_method
    from edgekit.export.calibration import DEFAULT_IMAGES, CalibrationReader
    from edgekit.export.gates import make_gate
    from edgekit.export.layer_ranking import METHOD, RANKED, rank_layers
    from edgekit.export.onnx import torch2onnx
    from edgekit.export.source import load_source
    from edgekit.export.targets import TARGETS, ConvertJob, resolve_targets
    from edgekit.export.verify import parity_images

    if target not in TARGETS or not TARGETS[target].quantized:
        raise EdgekitError(f"--target {target}: quant-report analyses an INT8 target ({', '.join(RANKED)})")
    if target not in RANKED:
        raise EdgekitError(f"quant-report for {target} is not built (its quantizer has no per-layer switch edgekit "
                           f"drives): use --target {' or '.join(RANKED)}")
    if calib is None and data is None:
        raise EdgekitError("quant-report needs real images: give --data DATA.yaml (or --calib DIR)")
    source = load_source(model, imgsz)
    (tgt,) = resolve_targets([target], source.kind)
    check_calib_method(calib_method, [tgt])
    gate = make_gate(source, data, None)
    reader = CalibrationReader.from_source(calib or data, source.imgsz, calib_images or DEFAULT_IMAGES,
                                           exclude=gate.paths if gate else (), hold_out=0 if gate else images,
                                           resize=source.resize)
    held, where = parity_images(gate.paths if gate else None, reader, images)
    log(f"calibration: {len(reader)} images; analysis on {len(held)} images from {where}")
    with tempfile.TemporaryDirectory(prefix="edgekit-quant-report-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        if source.kind == "onnx":
            fp32 = source.onnx_path
        elif tgt.from_onnx:
            torch2onnx(source.module, source.imgsz, fp32)
        job = ConvertJob(source, Path(tmp) / f"int8{tgt.suffix}", fp32, reader,
                         {"io": "int8", "output_clip": "auto", "calib_method": calib_method})
        log(f"quantizing as {target} exports, then comparing every layer's INT8 output with float ...")
        rows, info = rank_layers(tgt, job, held, log)
    return {"model": source.model, "source": str(source.path), "target": target, "quantizer": info.get("converter"),
            "calib_method": info.get("calib_method"), "images": len(held), "images_from": where,
            "calibration": reader.info(),
            "method": f"per-layer SQNR of the INT8 model's output against float on held-out images ({METHOD[target]}); "
                      "ranked by the SQNR a layer loses against its inputs",
            "worst": [r["name"] for r in rows[:top]], "keep_float_names": "a row's 'keep_float' where it has one (onnx-int8: its nodes and the layers "
                                                       "reading its output), else its 'nodes' (--keep-float NAMES)",
            "layers": rows}


def to_text(report: dict, top: int = 10) -> str:
    """The ranked table people read.

    Example:
        >>> print(to_text({"model": "m", "target": "onnx-int8", "images": 2, "images_from": "x", "layers": []}))
        INT8 sensitivity of m (onnx-int8) on 2 images from x
        rank  lost dB  SQNR dB  w SQNR  range               p99.9|x|  outl.  layer
    """
    lines = [f"INT8 sensitivity of {report['model']} ({report['target']}) on {report['images']} images from "
             f"{report['images_from']}",
             f"{'rank':4s}  {'lost dB':>7s}  {'SQNR dB':>7s}  {'w SQNR':>6s}  {'range':18s}  {'p99.9|x|':>8s}  "
             f"{'outl.':>5s}  layer"]
    for k, r in enumerate(report["layers"][:top], 1):
        rng = f"[{r['range'][0]:.3g}, {r['range'][1]:.3g}]"
        lines.append(f"{k:4d}  {_f(r['lost_db'], 7)}  {_f(r['sqnr_db'], 7)}  {_f(r['weight_sqnr_db'], 6)}  {rng:18s}  "
                     f"{r['abs_p999']:8.3g}  {_f(r['outlier_ratio'], 5)}  {r['name']} ({r['op']})")
    return "\n".join(lines)


def _f(x, width: int) -> str:
    return f"{'-':>{width}s}" if x is None else f"{x:{width}.1f}"
