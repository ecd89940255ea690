"""TFLite export without TensorFlow: litert-torch for the graph, ai-edge-quantizer for FP16/INT8.

The .tflite takes **NHWC** input ``(1, H, W, 3)``, RGB in [0, 1] (the permute is part of the
converted graph) and returns the module's outputs in torch's order with **NCHW** shapes, so
one numpy decoder serves every target.

* ``fp32``: ``litert_torch.convert`` straight from the module.
* ``fp16``: the fp32 file through ai-edge-quantizer's ``float_casting`` recipe: conv/FC
  weights stored as fp16 (DEQUANTIZE ops), float I/O and compute.
* ``int8``: the fp32 file through ai-edge-quantizer's static recipe (int8 per-channel
  weights, int8 per-tensor asymmetric activations) calibrated on real letterboxed images
  (global min/max over all of them, not its default moving average: :func:`_calibrate`). It
  quantizes the graph I/O too, so ``io="int8"`` is full-integer as it comes; ``"uint8"`` asks
  for uint8 I/O (requantize ops at both ends); ``"float"`` keeps float I/O around an integer
  body. The input range is pinned to [0, 1] (int8: scale 1/255, zero point -128) rather
  than calibrated, so every pixel value is representable.

Why this INT8 path: litert-torch's own PT2E INT8 leaves float32 outputs and clips the input
observer (../shared/TOOLCHAIN.md); this one needs no TensorFlow. Two ai-edge-quantizer
0.10.0 gaps are patched here: it has no LEAKY_RELU rule, so each leaky ReLU (all Darknet
models) would stay a DEQUANTIZE -> float LEAKY_RELU -> QUANTIZE island; TFLite's and
XNNPACK's int8 LEAKY_RELU take different in/out scales, so :func:`_fold_float_islands`
rewires each island into one int8 op with the calibrated scales. And it fails on weights
over 32 MiB (Tiny-YOLOv2's 1024x3x3x1024 conv): :func:`_aeq_large_weight_fix`.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, MissingExtraError
from edgekit.export.tflite_graph import is_const as _is_const
from edgekit.export.tflite_graph import op_names as _op_names
from edgekit.export.wrap import tuple_outputs
from edgekit.runtime.litert_backend import MANIFEST_NAME

PRECISIONS = ("fp32", "fp16", "int8")
IO_TYPES = ("int8", "uint8", "float")
INPUT_RANGE = (0.0, 1.0)  # the model's input domain: pinned, not calibrated
_FOLDABLE = {"LEAKY_RELU"}  # float ops whose int8 kernel takes independent in/out scales


def _require():
    try:
        import ai_edge_quantizer  # noqa: F401
        import litert_torch
    except ImportError:
        raise MissingExtraError("litert-torch", "export", "TFLite export") from None
    return litert_torch


def _recipe(precision: str, io: str, keep: list[dict] | None = None) -> list[dict]:
    """ai-edge-quantizer recipe (its JSON form) for ``fp16``, or ``int8`` with ``io`` I/O.

    ``keep``: ``no_quantize`` entries for layers left in float
    (:func:`edgekit.export.sensitivity_tflite.keep_float_recipe`); later entries win.
    """
    if precision == "fp16":
        return [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
                 "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                               "compute_precision": "FLOAT", "explicit_dequantize": True}}]
    act = {"num_bits": 8, "symmetric": False, "granularity": "TENSORWISE", "dtype": "INT"}
    body = {"activation_tensor_config": act,
            "weight_tensor_config": {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE", "dtype": "INT"},
            "compute_precision": "INTEGER", "explicit_dequantize": False}
    recipe = [{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize", "op_config": body}]
    for op in ("INPUT", "OUTPUT"):  # its virtual graph-I/O ops decide the I/O dtype
        if io == "float":
            recipe.append({"regex": ".*", "operation": op, "algorithm_key": "no_quantize", "op_config": {}})
        elif io == "uint8":
            recipe.append({"regex": ".*", "operation": op, "algorithm_key": "min_max_uniform_quantize",
                           "op_config": dict(body, activation_tensor_config=dict(act, dtype="UINT"))})
    return recipe + list(keep or [])


def _fold_float_islands(model) -> int:
    """Rewire DEQUANTIZE -> op -> QUANTIZE into one quantized op (ops in ``_FOLDABLE``); returns how many.

    The op reads the DEQUANTIZE's int8 input and writes the first QUANTIZE's output (with its
    calibrated scale); further QUANTIZE consumers requantize from there. Skipped when a float
    tensor has another consumer or is a graph output.
    """
    from ai_edge_litert import schema_py_generated as fb

    folded = 0
    for sg, names in zip(model.subgraphs, _op_names(model)):
        producer, consumers = {}, {}
        for k, op in enumerate(sg.operators):
            producer.update({t: k for t in op.outputs})
            for t in op.inputs:
                consumers.setdefault(t, []).append(k)
        drop = set()
        for k, op in enumerate(sg.operators):
            if names[k] not in _FOLDABLE or len(op.inputs) != 1 or len(op.outputs) != 1:
                continue
            fin, fout = op.inputs[0], op.outputs[0]
            dq, qs = producer.get(fin), consumers.get(fout, [])
            if (dq is None or names[dq] != "DEQUANTIZE" or consumers.get(fin) != [k] or not qs
                    or any(names[q] != "QUANTIZE" for q in qs) or {fin, fout} & set(sg.outputs)):
                continue
            qin, qout = sg.operators[dq].inputs[0], sg.operators[qs[0]].outputs[0]
            if sg.tensors[qin].type not in (fb.TensorType.INT8, fb.TensorType.UINT8) \
                    or sg.tensors[qout].type != sg.tensors[qin].type:
                continue
            op.inputs, op.outputs = [qin], [qout]
            for q in qs[1:]:
                sg.operators[q].inputs = [qout]
            drop |= {dq, qs[0]}
            folded += 1
        sg.operators = [op for k, op in enumerate(sg.operators) if k not in drop]
    return folded


def _audit(model) -> tuple[list[str], int]:
    """Ops still computing in float (QUANTIZE/DEQUANTIZE aside), and int32 biases clipped at the int32 limits.

    A clipped bias means the activations feeding its layer were ~0 on the calibration images.
    """
    from ai_edge_litert import schema_py_generated as fb

    floats, saturated = [], 0
    for sg, names in zip(model.subgraphs, _op_names(model)):
        for op, name in zip(sg.operators, names):
            if name not in ("QUANTIZE", "DEQUANTIZE") and any(
                    sg.tensors[i].type == fb.TensorType.FLOAT32 and not _is_const(model, sg.tensors[i])
                    for i in op.inputs if i >= 0 and i not in sg.inputs):
                floats.append(name)
        for t in sg.tensors:
            if t.type == fb.TensorType.INT32 and t.quantization is not None and _is_const(model, t):
                q = np.frombuffer(bytes(model.buffers[t.buffer].data), np.int32).astype(np.int64)
                saturated += bool(q.size and np.abs(q).max() >= 2**31 - 2)
    return floats, saturated


@contextlib.contextmanager
def _aeq_large_weight_fix():
    """Quantize weights over 16 MiB in slices along their channel axis.

    ai-edge-quantizer 0.10.0's path for tensors over 32 MiB flattens the weight to 2-D, then
    broadcasts the (C, 1, 1, 1) per-channel scales to it and fails ("input operand has more
    dimensions than allowed by the axis remapping"). Slices take its ordinary path.
    """
    import dataclasses

    from ai_edge_quantizer.algorithms.uniform_quantize import uniform_quantize_tensor as uqt

    orig = uqt.uniform_quantize

    def sliced(tensor_data, qp, is_blockwise_quant=False):
        scale, zp = np.asarray(qp.scale), np.asarray(qp.zero_point)
        if (tensor_data.nbytes <= 16 * 2**20 or is_blockwise_quant or tensor_data.ndim < 2
                or qp.quantized_dimension != 0 or scale.size != tensor_data.shape[0]):
            return orig(tensor_data, qp, is_blockwise_quant)
        step = max(1, tensor_data.shape[0] * 16 * 2**20 // tensor_data.nbytes)
        return np.concatenate([orig(tensor_data[i:i + step],
                                    dataclasses.replace(qp, scale=scale[i:i + step], zero_point=zp[i:i + step]))
                               for i in range(0, tensor_data.shape[0], step)], axis=0)

    uqt.uniform_quantize = sliced
    try:
        yield
    finally:
        uqt.uniform_quantize = orig


def _calibrate(q, data: list[dict]) -> dict:
    """Activation ranges over *all* calibration images (global min/max, as onnxruntime's MinMax).

    ``Quantizer.calibrate`` folds each image into a moving average (smoothing 0.95), so the
    last ~20 images decide the ranges and the image order matters; on mobilenetv2_050-yolo-p3
    (Fish4Knowledge test) that cost 0.026 mAP50 where the global range loses 0.006.
    """
    from ai_edge_quantizer import calibrator
    from ai_edge_quantizer.utils import qsv_utils

    calib = calibrator.Calibrator(q._float_model_buffer, num_threads=min(4, os.cpu_count() or 1),
                                  qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate({"serving_default": data}, q._recipe_manager)
    return calib.get_model_qsvs()


def _output_chain(buf) -> list[str]:
    """Names of the output tensors and of what reaches them through TRANSPOSE/RESHAPE only.

    The NCHW outputs are transposes of the head convs' NHWC outputs; both carry the same
    values, so both take the clipped range (the conv's is the one its requantization uses).
    """
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(buf, 0)
    sg = model.Subgraphs(0)
    passthrough = {fb.BuiltinOperator.TRANSPOSE, fb.BuiltinOperator.RESHAPE}
    producer = {}
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        for k in range(op.OutputsLength()):
            producer[op.Outputs(k)] = op
    names, todo = [], [sg.Outputs(k) for k in range(sg.OutputsLength())]
    while todo:
        t = todo.pop()
        names.append(sg.Tensors(t).Name().decode())
        op = producer.get(t)
        code = op and model.OperatorCodes(op.OpcodeIndex())
        if op is not None and max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) in passthrough:
            todo.append(op.Inputs(0))
    return names


def _quantize(fp32: Path, precision: str, calib, io: str, imgsz,
              output_clip: float | None = None, keep_float: list[str] | None = None) -> tuple[bytes, list[str]]:
    """The fp16/int8 flatbuffer made from the fp32 file, and notes on what it holds."""
    from ai_edge_litert.tools import flatbuffer_utils
    from ai_edge_quantizer import quantizer

    from edgekit.export.calibration import clipped

    keep = None
    if keep_float:
        from edgekit.export.tflite_graph import keep_float_recipe, tflite_layers

        keep = keep_float_recipe(tflite_layers(fp32.read_bytes()), list(keep_float))
    q = quantizer.Quantizer(str(fp32), _recipe(precision, io, keep))
    qsv, notes = None, []
    if precision == "int8":
        data = []
        for k, x in enumerate(calib):
            x = np.asarray(x, np.float32)
            if x.shape != (1, 3, *imgsz):
                raise EdgekitError(f"calibration image {k} has shape {x.shape}, not (1, 3, {imgsz[0]}, {imgsz[1]}): "
                                   "resize the calibration images to the export size")
            data.append({"args_0": np.ascontiguousarray(x.transpose(0, 2, 3, 1))})
        if not data:
            raise EdgekitError("the calibration set is empty: INT8 needs real images (--data DATA.yaml or --calib DIR)")
        with contextlib.redirect_stderr(_io.StringIO()):  # its tqdm bar; exceptions still propagate
            qsv = _calibrate(q, data)
        for name in _graph_io(fp32.read_bytes())[0]:
            qsv[name] = {"min": np.full_like(qsv[name]["min"], INPUT_RANGE[0]),
                         "max": np.full_like(qsv[name]["max"], INPUT_RANGE[1])}
        notes.append(f"int8: per-channel weights, per-tensor activations calibrated on {len(data)} images, "
                     f"input range pinned to {list(INPUT_RANGE)}, {io} I/O")
        if output_clip is not None:
            for name in _output_chain(q._float_model_buffer):
                if name in qsv:
                    lo, hi = clipped(qsv[name]["min"], qsv[name]["max"], output_clip)
                    qsv[name] = {"min": lo, "max": hi}
            notes.append(f"output (logit) ranges clipped to +-{output_clip}")
        if keep_float:
            notes.append(f"kept in float: {', '.join(keep_float)}")
    with _aeq_large_weight_fix():
        buf = q.quantize(qsv, enable_progress_bar=False, enable_progress_report=False).quantized_model
    if precision == "fp16":
        return bytes(buf), ["fp16: conv/FC weights stored as fp16, float I/O and compute"]
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(buf))
    folded = _fold_float_islands(model)
    if folded:
        notes.append(f"folded {folded} DEQUANTIZE->LEAKY_RELU->QUANTIZE islands into int8 LEAKY_RELU")
    left, saturated = _audit(model)
    if saturated:
        notes.append(f"WARNING: {saturated} int32 bias tensor(s) saturated: the activations feeding those layers were "
                     "~0 on the calibration images (untrained weights, or images unlike the training data)")
    if left:
        notes.append(f"not full-integer: {len(left)} op(s) still run in float: {', '.join(sorted(set(left)))}")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), notes


def _graph_io(data: bytes) -> tuple[list[str], list[tuple[int, ...]]]:
    """Input tensor names and output shapes of the main subgraph; checks outputs follow the signature order."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(data, 0)
    sg = model.Subgraphs(0)
    outs = [sg.Outputs(k) for k in range(sg.OutputsLength())]
    if model.SignatureDefsLength():
        sig = model.SignatureDefs(0)
        by_name = {sig.Outputs(k).Name().decode(): sig.Outputs(k).TensorIndex() for k in range(sig.OutputsLength())}
        if [by_name.get(f"output_{k}") for k in range(len(outs))] != outs:
            raise EdgekitError(f"the TFLite output order {outs} differs from its signature {by_name}: report this model")
    return ([sg.Tensors(sg.Inputs(k)).Name().decode() for k in range(sg.InputsLength())],
            [tuple(int(d) for d in sg.Tensors(t).ShapeAsNumpy()) for t in outs])


def torch2tflite(module, imgsz: tuple[int, int], out: Path, precision: str = "fp32", calib=None,
                 io: str = "int8", output_clip: float | None = None, keep_float: list[str] | None = None,
                 calib_method: str | None = None, fp32_copy: Path | None = None, input_color: str = "RGB") -> dict:
    """Convert an eval-mode torch module to a ``.tflite`` file with NHWC input and NCHW outputs.

    Args:
        module: takes (1, 3, H, W) float32 RGB in [0, 1], returns a list/tuple of tensors.
        imgsz: (H, W) of the input.
        out: the .tflite to write (nothing else is written beside it).
        precision: "fp32", "fp16" (fp16 weights, float I/O) or "int8" (full-integer static).
        calib: for int8, an iterable of (1, 3, H, W) float32 letterboxed RGB images in [0, 1].
        io: for int8, the input/output dtype: "int8", "uint8" or "float".
        output_clip: for int8, clip the outputs' calibrated ranges to [-c, c]
            (:data:`edgekit.export.calibration.DETECTION_LOGIT_CLIP` for detector logits).
        keep_float: for int8, layers left in float, by the names ``edgekit quant-report`` gives
            (:mod:`edgekit.export.sensitivity_tflite`).
        calib_method: for int8, ``minmax`` (the only one: global min/max over all images) or None.
        fp32_copy: also write the intermediate fp32 flatbuffer here (the sensitivity analysis
            compares the two).
        input_color: ``"BGR"`` folds OpenCV's channel order into the first convolution
            (:mod:`edgekit.export.input_color`); the fp32 copy stays RGB.

    Returns:
        ``{"input_layout", "output_layout", "converter", "precision", "io", "input_shape",
        "output_shapes", "notes", "input_color"}``.

    Example:
        >>> from edgekit.models import create_model
        >>> info = torch2tflite(create_model("yolo-lite", num_classes=2).eval(), (64, 64),
        ...                     Path("/tmp/m.tflite"))  # doctest: +SKIP
        >>> info["input_layout"], info["output_layout"]  # doctest: +SKIP
        ('NHWC', 'NCHW')
    """
    if precision not in PRECISIONS:
        raise EdgekitError(f"unknown TFLite precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and io not in IO_TYPES:
        raise EdgekitError(f"unknown INT8 I/O type '{io}': choose one of {', '.join(IO_TYPES)}")
    if precision == "int8" and calib is None:
        raise EdgekitError("TFLite INT8 needs calibration images: give --data DATA.yaml or --calib DIR")
    if calib_method not in (None, "minmax"):
        raise EdgekitError(f"--calib-method {calib_method}: tflite-int8 calibrates with minmax only "
                           "(ai-edge-quantizer's min/max ranges): drop the option or use onnx-int8/openvino-int8")
    litert_torch = _require()
    import importlib.metadata

    import torch

    imgsz = (int(imgsz[0]), int(imgsz[1]))
    wrapped, sample = tuple_outputs(module, nhwc=True), torch.zeros(1, *imgsz, 3)
    with torch.no_grad():
        want = [tuple(t.shape) for t in wrapped(sample)]
    converter, notes = f"litert-torch {litert_torch.__version__}", []
    show = litert_torch.config.show_progress
    litert_torch.config.show_progress = False  # its per-stage log would flood edgekit's output
    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-tflite-") as tmp:
            fp32 = Path(tmp) / "fp32.tflite"
            try:
                litert_torch.convert(wrapped, (sample,)).export(str(fp32))
            except Exception as exc:  # the converter raises many types: name the stage and the cause
                raise EdgekitError(f"litert-torch cannot convert the model ({type(exc).__name__}: "
                                   f"{(str(exc).splitlines() or [''])[0][:200]}): report the layer it names") from exc
            if fp32_copy is not None:
                Path(fp32_copy).write_bytes(fp32.read_bytes())
            if precision == "fp32":
                data = fp32.read_bytes()
            else:
                data, notes = _quantize(fp32, precision, calib, io, imgsz, output_clip, keep_float)
                converter += f" + ai-edge-quantizer {importlib.metadata.version('ai-edge-quantizer')}"
    finally:
        litert_torch.config.show_progress = show
    if input_color == "BGR":
        from edgekit.export.input_color import fold_bgr

        data = fold_bgr(data)
    got = _graph_io(data)[1]
    if got != want:
        raise EdgekitError(f"the TFLite outputs {got} do not match torch's {want}: report this model")
    Path(out).write_bytes(data)
    clip = {"output_clip": output_clip} if precision == "int8" and output_clip is not None else {}
    if precision == "int8":
        clip.update({"kept_float": list(keep_float or []), "calib_method": "minmax"})
    return {"input_layout": "NHWC", "output_layout": "NCHW", "converter": converter, "precision": precision,
            "io": io if precision == "int8" else "float", "input_shape": [1, *imgsz, 3],
            "output_shapes": [list(s) for s in want], "notes": notes, "input_color": input_color, **clip}


def embed_metadata(path: Path, manifest: dict) -> None:
    """Store ``manifest`` as JSON in the model's flatbuffer ``metadata`` under ``edgekit_manifest``.

    The official TFLite metadata slot: interpreters ignore names they do not know, and
    :meth:`edgekit.runtime.litert_backend.LiteRTBackend.read_manifest` reads it back with the standard
    library. An existing edgekit manifest is replaced.

    Example:
        >>> embed_metadata(Path("model.tflite"), {"task": "detect"})  # doctest: +SKIP
        >>> LiteRTBackend.read_manifest("model.tflite")["task"]  # doctest: +SKIP
        'detect'
    """
    try:
        from ai_edge_litert import schema_py_generated as fb
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError:
        raise MissingExtraError("ai-edge-litert", "export", "writing TFLite metadata") from None
    path = Path(path)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    payload = np.frombuffer(json.dumps(manifest, sort_keys=True).encode("utf-8"), np.uint8)
    metas = list(model.metadata or [])
    old = next((m for m in metas if (m.name.decode() if isinstance(m.name, bytes) else m.name) == MANIFEST_NAME), None)
    if old is not None:
        model.buffers[old.buffer].data = payload  # reuse its buffer: no orphan left behind
    else:
        buf, meta = fb.BufferT(), fb.MetadataT()
        buf.data = payload
        model.buffers.append(buf)
        meta.name, meta.buffer = MANIFEST_NAME, len(model.buffers) - 1
        model.metadata = metas + [meta]
    tmp = path.with_name(path.name + ".meta.tmp")  # written then renamed: a crash never leaves half a model
    try:
        tmp.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
