"""ONNX to OpenVINO IR (fp32, fp16 weights, or INT8 through NNCF), and the IR's manifest.

The IR is converted from the ONNX file edgekit already verified, not from torch, so every
artifact derives from one graph. ``fp16`` stores the weights in half precision only: the
CPU plugin decompresses them and computes in whatever ``INFERENCE_PRECISION_HINT`` says, so
parity checks must ask for f32 (CPUs with AVX512-BF16/AMX default to bf16, max error 0.44
on MobileNet in TOOLCHAIN.md). ``int8`` is ``nncf.quantize`` of the float IR, MIXED preset
(symmetric weights, asymmetric activations), over real letterboxed calibration images.

The manifest lives in the IR's own ``rt_info`` (``<rt_info><edgekit><manifest value=...>``)
so the .xml/.bin pair carries it; :func:`edgekit.runtime.openvino_backend.read_ir_manifest`
reads it back on a board without OpenVINO's Python API.
"""

from __future__ import annotations

import filecmp
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path

from edgekit.errors import EdgekitError, MissingExtraError

PRECISIONS = ("fp32", "fp16", "int8")
MANIFEST_KEY = ["edgekit", "manifest"]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _import_openvino():
    try:
        import openvino as ov
    except ImportError:
        raise MissingExtraError("openvino", "export", "OpenVINO export") from None
    return ov


def _onnx_outputs(onnx_path: Path) -> list[tuple[str, tuple]] | None:
    """(name, static shape) of the ONNX graph outputs, or None when onnx is not installed."""
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    dims = lambda o: tuple(d.dim_value if d.HasField("dim_value") else -1 for d in o.type.tensor_type.shape.dim)  # noqa: E731
    return [(o.name, dims(o)) for o in graph.output]


def _check_outputs(model, onnx_path: Path) -> None:
    """Refuse an IR whose outputs are not the ONNX outputs, in the same order and shapes.

    The decoder maps outputs to strides by position, so a reordered or reshaped output
    would decode to wrong boxes without any error.
    """
    want = _onnx_outputs(onnx_path)
    if want is None:
        return
    have = [(o.get_names(), tuple(d.get_length() if d.is_static else -1 for d in o.get_partial_shape()))
            for o in model.outputs]

    def same(w, h) -> bool:  # name kept; shape equal where ONNX knows it
        (name, shape), (names, got) = w, h
        return name in names and len(shape) == len(got) and all(a in (-1, b) for a, b in zip(shape, got))

    if len(have) != len(want) or not all(same(w, h) for w, h in zip(want, have)):
        raise EdgekitError(f"{onnx_path}: OpenVINO changed the outputs ({want} became {have}): "
                           "report it with the ONNX file; use the ONNX artifact meanwhile")


def _check_calibration(calib, model) -> int:
    """Number of calibration samples; EdgekitError when there are none or their shape is wrong."""
    n = len(calib)
    if n == 0:
        raise EdgekitError("the calibration source gave no images: INT8 needs calibration images: "
                           "give --data DATA.yaml or --calib DIR")
    first = next(iter(calib))
    want = tuple(d.get_length() if d.is_static else -1 for d in model.inputs[0].get_partial_shape())
    if len(first.shape) != len(want) or any(w not in (-1, s) for w, s in zip(want, first.shape)):
        raise EdgekitError(f"calibration tensors are {tuple(first.shape)} but the model takes {want}: "
                           "calibrate at the export image size")
    return n


# --calib-method -> NNCF's activation range estimator (None: NNCF's default, the mean of per-image min/max)
RANGE_ESTIMATORS = {"mean-minmax": "MEAN_MINMAX", "minmax": "MINMAX", "percentile": "MEAN_QUANTILE",
                    "histogram": "HISTOGRAM"}


def onnx2openvino(onnx_path: Path, out_xml: Path, precision: str = "fp16", calib=None,
                  keep_float: list[str] | None = None, calib_method: str | None = None) -> dict:
    """Convert an ONNX file to an OpenVINO IR (``out_xml`` plus the ``.bin`` beside it).

    Args:
        onnx_path: the ONNX model (static input shape, NCHW float32).
        out_xml: the ``.xml`` to write; its ``.bin`` goes beside it. Nothing else is written.
        precision: ``"fp32"``, ``"fp16"`` (fp16 weights, f32 compute) or ``"int8"`` (NNCF).
        calib: for int8, a sized iterable of float32 ``(1, 3, H, W)`` RGB [0, 1] letterboxed
            arrays, e.g. :class:`edgekit.export.calibration.CalibrationReader`; all are used.
        keep_float: for int8, node names NNCF leaves in float (``ignored_scope``; the ``nodes``
            of ``edgekit quant-report --target openvino-int8`` rows).
        calib_method: for int8, the activation ranges: ``mean-minmax`` (NNCF's default, also
            None), ``minmax`` (global), ``percentile`` (mean of per-image 0.01%/99.99% quantiles),
            ``histogram`` (NNCF's histogram-optimal range).

    Returns:
        ``{"converter", "precision", "input_layout", "output_layout", "input_name",
        "output_names", "notes"}`` (plus ``"quantization"`` for int8).

    Raises:
        EdgekitError: unknown precision, int8 without calibration images, outputs changed.
        MissingExtraError: openvino (or nncf for int8) is not installed.

    Example:
        >>> info = onnx2openvino(Path("m.onnx"), Path("m_openvino/m.xml"), "fp16")  # doctest: +SKIP
        >>> info["converter"]  # doctest: +SKIP
        'openvino 2026.4.1'
    """
    onnx_path, out_xml = Path(onnx_path), Path(out_xml)
    if precision not in PRECISIONS:
        raise EdgekitError(f"unknown OpenVINO precision '{precision}': use one of {', '.join(PRECISIONS)}")
    if precision == "int8" and calib is None:
        raise EdgekitError("OpenVINO INT8 needs calibration images: give --data DATA.yaml or --calib DIR")
    if calib_method is not None and calib_method not in RANGE_ESTIMATORS:
        raise EdgekitError(f"--calib-method {calib_method}: openvino-int8 (NNCF) takes {', '.join(RANGE_ESTIMATORS)}")
    if not onnx_path.is_file():
        raise EdgekitError(f"{onnx_path} does not exist: export the ONNX model first")
    if out_xml.suffix != ".xml":
        raise EdgekitError(f"{out_xml}: an OpenVINO IR is written as a .xml file (its .bin goes beside it)")
    ov = _import_openvino()
    converter = f"openvino {_version('openvino')}"
    model = ov.convert_model(str(onnx_path))
    _check_outputs(model, onnx_path)
    notes = ["run with INFERENCE_PRECISION_HINT=f32 for parity: some CPUs default to bf16"]
    info: dict = {}
    if precision == "int8":
        try:
            import nncf
        except ImportError:
            raise MissingExtraError("nncf", "export", "OpenVINO INT8 export") from None
        import logging

        if not hasattr(calib, "__len__"):
            calib = list(calib)
        n = _check_calibration(calib, model)
        nncf.set_log_level(logging.ERROR)  # its INFO lines would interleave with the CLI's output
        keep = list(keep_float or [])
        extra = {}
        if keep:
            have = {op.get_friendly_name() for op in model.get_ordered_ops()}
            unknown = [k for k in keep if k not in have]
            if unknown:
                raise EdgekitError(f"--keep-float: no node named {', '.join(unknown)} in the OpenVINO model: take the "
                                   "names from `edgekit quant-report MODEL --target openvino-int8 --data DATA`")
            extra["ignored_scope"] = nncf.IgnoredScope(names=keep)
            notes.append(f"kept in float: {', '.join(keep)}")
        if calib_method is not None:
            from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
            from nncf.quantization.range_estimator import RangeEstimatorParametersSet

            extra["advanced_parameters"] = AdvancedQuantizationParameters(
                activations_range_estimator_params=getattr(RangeEstimatorParametersSet, RANGE_ESTIMATORS[calib_method]))
        model = nncf.quantize(model, nncf.Dataset(calib), preset=nncf.QuantizationPreset.MIXED, subset_size=n, **extra)
        converter += f" (+ nncf {_version('nncf')})"
        method = calib_method or "mean-minmax"
        info["quantization"] = {"tool": "nncf", "preset": "mixed", "subset_size": n, "fast_bias_correction": True,
                                "range_estimator": RANGE_ESTIMATORS[method]}
        info.update({"kept_float": keep, "calib_method": method})
        notes.append(f"INT8 by nncf.quantize, MIXED preset (symmetric weights, asymmetric activations), {n} images, "
                     f"activation ranges {method}")
    elif precision == "fp16":
        notes.append("fp16 weights, decompressed to f32 at load; compute precision is the runtime's hint")
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    # int8: the remaining float constants (biases, scales) stay fp32, they are tiny
    ov.save_model(model, str(out_xml), compress_to_fp16=precision == "fp16")
    return {"converter": converter, "precision": precision, "input_layout": "NCHW", "output_layout": "NCHW",
            "input_name": model.inputs[0].get_any_name(),
            "output_names": [o.get_any_name() for o in model.outputs], "notes": notes, **info}


def embed_manifest(xml_path: Path, manifest: dict) -> None:
    """Store ``manifest`` as JSON in the IR's ``rt_info["edgekit"]["manifest"]``, in place.

    The IR is re-serialized into a temporary folder beside it and moved over the original,
    with ``compress_to_fp16=False`` so weights keep the precision they were saved in (fp16
    constants stay fp16, INT8 stays INT8). The .bin is replaced only if it changed, so in the
    usual case the swap is a single atomic rename of the .xml.

    Example:
        >>> embed_manifest(Path("m_openvino/m.xml"), {"task": "detect"})  # doctest: +SKIP
        >>> from edgekit.runtime.openvino_backend import read_ir_manifest
        >>> read_ir_manifest(Path("m_openvino/m.xml"))["task"]  # doctest: +SKIP
        'detect'
    """
    xml_path = Path(xml_path)
    bin_path = xml_path.with_suffix(".bin")
    if not xml_path.is_file() or not bin_path.is_file():
        raise EdgekitError(f"{xml_path}: an OpenVINO IR needs both the .xml and its .bin")
    ov = _import_openvino()
    text = json.dumps(manifest)
    tmp = Path(tempfile.mkdtemp(prefix=".edgekit-", dir=xml_path.parent))  # same filesystem: rename is atomic
    try:
        model = ov.Core().read_model(str(xml_path))
        model.set_rt_info(text, MANIFEST_KEY)
        ov.save_model(model, str(tmp / xml_path.name), compress_to_fp16=False)
        del model  # read_model maps the .bin: release it before replacing the file (Windows)
        new_bin = tmp / bin_path.name
        if not filecmp.cmp(new_bin, bin_path, shallow=False):
            os.replace(new_bin, bin_path)
        os.replace(tmp / xml_path.name, xml_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
