"""``edgekit quant-report``: where an INT8 model loses its accuracy, layer by layer.

The model is quantized as ``edgekit export`` would (same calibration reader, same options,
verification images left out), then :func:`edgekit.export.sensitivity.onnx_sensitivity`
compares every layer's INT8 output with the float one on held-out images and ranks the
layers by the error each introduces. The ranked names are what ``--keep-float`` takes.

Analysed today for ``onnx-int8`` (onnxruntime's ``qdq_loss_debug``); the LiteRT and
OpenVINO quantizers place their quantization differently, and their per-layer reports
(ai-edge-quantizer's validation, NNCF's accuracy control) are not wired in yet: asked for
another target, the command says so instead of passing the ONNX ranking off as theirs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from edgekit.errors import EdgekitError

SUPPORTED = ("onnx-int8",)


def quant_report(model, target: str = "onnx-int8", data=None, calib=None, images: int = 16,
                 calib_images: int | None = None, imgsz: int | None = None, top: int = 10,
                 log: Callable[[str], None] = lambda s: None) -> dict:
    """The per-layer INT8 error report of ``model`` for ``target``.

    Example:
        >>> r = quant_report("best.pt", "onnx-int8", data="data.yaml")  # doctest: +SKIP
        >>> r["worst"][:2]  # doctest: +SKIP
        ['/inner/head/convs.1/Conv', '/inner/backbone/features.17/conv/Conv']
    """
    from edgekit.export.calibration import DEFAULT_IMAGES, CalibrationReader
    from edgekit.export.gates import make_gate
    from edgekit.export.onnx import onnx2onnx_int8, torch2onnx
    from edgekit.export.sensitivity import onnx_sensitivity
    from edgekit.export.source import load_source
    from edgekit.export.calibration import DETECTION_LOGIT_CLIP
    from edgekit.export.targets import TARGETS
    from edgekit.export.verify import parity_images
    from edgekit.runtime.preprocess import letterbox, to_tensor

    if target not in TARGETS or not TARGETS[target].quantized:
        raise EdgekitError(f"--target {target}: quant-report analyses an INT8 target ({', '.join(SUPPORTED)})")
    if target not in SUPPORTED:
        raise EdgekitError(f"quant-report for {target} is not built yet (its quantizer's per-layer report is not wired "
                           f"in): use --target onnx-int8 for a ranking of the layers under onnxruntime's quantizer")
    if calib is None and data is None:
        raise EdgekitError("quant-report needs real images: give --data DATA.yaml (or --calib DIR)")
    source = load_source(model, imgsz)
    gate = make_gate(source, data, None)
    reader = CalibrationReader.from_source(calib or data, source.imgsz, calib_images or DEFAULT_IMAGES,
                                           exclude=gate.paths if gate else (), hold_out=0 if gate else images)
    held, where = parity_images(gate.paths if gate else None, reader, images)
    log(f"calibration: {len(reader)} images; analysis on {len(held)} images from {where}")
    feeds = [{reader.input_name: to_tensor(letterbox(img, source.imgsz)[0])} for img in held]
    clip = DETECTION_LOGIT_CLIP if source.task == "detect" else None
    with tempfile.TemporaryDirectory(prefix="edgekit-quant-report-") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        if source.kind == "onnx":
            fp32 = source.onnx_path
        else:
            torch2onnx(source.module, source.imgsz, fp32)
        log("quantizing (onnxruntime quantize_static, as onnx-int8 exports) ...")
        info = onnx2onnx_int8(fp32, int8, reader, output_clip=clip)
        log("comparing every layer's INT8 output with float ...")
        rows = onnx_sensitivity(fp32, int8, feeds)
    return {"model": source.model, "source": str(source.path), "target": target, "quantizer": info["converter"],
            "images": len(held), "images_from": where, "calibration": reader.info(),
            "method": "per-node SQNR of the INT8 model's output against float on held-out images "
                      "(onnxruntime qdq_loss_debug); ranked by the SQNR a node loses against its inputs",
            "worst": [r["name"] for r in rows[:top]], "layers": rows}


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
