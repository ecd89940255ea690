"""Rank an export job's layers by the INT8 error each introduces, with the target's own quantizer.

One entry point for ``edgekit quant-report`` and ``--keep-float N|auto``: a plain INT8
conversion of the job (exactly what the target's converter makes, no layer kept float) is
compared with its float reference layer by layer on the given held-out images:

- ``onnx-int8``: onnxruntime ``qdq_loss_debug`` (:mod:`edgekit.export.sensitivity`);
- ``tflite-int8``: the ai-edge-quantizer flatbuffer against litert-torch's fp32 one in the
  LiteRT interpreter (:mod:`edgekit.export.sensitivity_tflite`);
- ``openvino-int8``: the NNCF IR against the float IR (:mod:`edgekit.export.sensitivity_openvino`).

Each row's ``nodes`` are the names that target's ``--keep-float`` takes.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from edgekit.errors import EdgekitError

RANKED = ("onnx-int8", "tflite-int8", "openvino-int8")
METHOD = {
    "onnx-int8": "onnxruntime qdq_loss_debug: every node's output in the QDQ model vs the float ONNX",
    "tflite-int8": "LiteRT interpreter (experimental_preserve_all_tensors): every op's dequantized output in the "
                   "ai-edge-quantizer model vs litert-torch's fp32 flatbuffer",
    "openvino-int8": "OpenVINO CPU plugin at f32 precision: every NNCF-quantized layer's output (after its "
                     "FakeQuantize) vs the float IR",
}


def rank_layers(target, job, images: list, log=lambda s: None) -> tuple[list[dict], dict]:
    """``(rows, conversion info)`` of a plain INT8 conversion of ``job`` for ``target``, worst layer first.

    ``images``: BGR frames (as read from disk); letterboxed (or stretched) here as inference does.

    Example:
        >>> rows, info = rank_layers(TARGETS["tflite-int8"], job, images)  # doctest: +SKIP
        >>> rows[0]["nodes"]  # doctest: +SKIP
        ['inner.head.convs.1:CONV_2D']
    """
    from edgekit.runtime.preprocess import fit_image, to_tensor

    if target.name not in RANKED:
        raise EdgekitError(f"{target.name}: per-layer INT8 analysis is built for {', '.join(RANKED)}")
    tensors = [to_tensor(fit_image(img, job.source.imgsz, job.source.resize)[0]) for img in images]
    with tempfile.TemporaryDirectory(prefix="edgekit-rank-") as tmp:
        plain = Path(tmp) / f"plain{target.suffix}"
        # the ranking feeds the same RGB tensors to the fp32 and the INT8 file: both in the model's own order
        options = {**job.options, "keep_float": None, "input_color": "RGB"}
        if target.name == "tflite-int8":
            options["fp32_copy"] = Path(tmp) / "fp32.tflite"
        info = target.convert(dataclasses.replace(job, out=plain, options=options))
        if target.name == "onnx-int8":
            from edgekit.export.sensitivity import onnx_sensitivity

            rows = onnx_sensitivity(job.onnx_fp32, plain, [{job.calib.input_name: x} for x in tensors])
        elif target.name == "tflite-int8":
            from edgekit.export.sensitivity_tflite import tflite_sensitivity

            rows = tflite_sensitivity(options["fp32_copy"].read_bytes(), plain.read_bytes(), tensors)
        else:
            from edgekit.export.sensitivity_openvino import openvino_sensitivity

            rows = openvino_sensitivity(job.onnx_fp32, plain, tensors)
    return rows, info
