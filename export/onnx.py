"""ONNX targets: ``torch2onnx`` (fp32) and ``onnx2onnx_int8`` (onnxruntime static QDQ).

Choices, from the measurements in ``shared/TOOLCHAIN.md``:

- torch's legacy TorchScript exporter (``dynamo=False``) at opset 17, one self-contained file
  (torch 2.13's dynamo exporter defaults to external data and may bump the opset), then
  ``onnxslim`` to fold the Shape/Gather chains; parity is checked afterwards anyway.
- INT8 is onnxruntime ``quantize_static`` in QDQ format, per-channel weights, uint8
  activations / int8 weights (u8s8 was 1.7x faster than s8s8 on x86 and is what ARM's
  kernels prefer), MinMax calibration on the shared :class:`CalibrationReader`.
  ``quant_pre_process`` is not used: it would bake onnxruntime's ``Pad_Fusion`` bug into
  the file (Tiny-YOLO's stride-1 max pool).
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, MissingExtraError
from edgekit.export.wrap import as_list, tuple_outputs

OPSET = 17
INPUT_NAME = "images"


def _require(module: str, extra: str, purpose: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(module, extra, purpose) from None


def torch2onnx(module, imgsz: tuple[int, int], out: Path, simplify: bool = True) -> dict:
    """Export an eval-mode torch model taking (1, 3, H, W) float RGB [0, 1] to ONNX.

    Outputs are named ``output0..n`` in the model's order (detectors: raw head maps).

    Example:
        >>> from edgekit.models import create_model
        >>> torch2onnx(create_model("yolo-lite", num_classes=2).eval(), (64, 64), Path("y.onnx"))  # doctest: +SKIP
        {'converter': 'torch 2.13.0 (TorchScript exporter, opset 17) + onnxslim 0.1.98', ...}
    """
    torch = _require("torch", "export", "ONNX export")
    onnx = _require("onnx", "export", "ONNX export")
    x = torch.zeros(1, 3, *imgsz)
    with torch.no_grad():
        n_out = len(as_list(module(x)))
    names = [f"output{k}" for k in range(n_out)]
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # tracer chatter about constant shapes: the input size is fixed on purpose
            warnings.simplefilter("ignore")
            torch.onnx.export(tuple_outputs(module), x, str(raw), dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=names, do_constant_folding=True)
        model = onnx.load(str(raw))
    converter = f"torch {torch.__version__} (TorchScript exporter, opset {OPSET})"
    notes = []
    if simplify:
        try:
            import onnxslim

            model = onnxslim.slim(model)
            converter += f" + onnxslim {onnxslim.__version__}"
        except ImportError:
            notes.append("onnxslim not installed: graph left unsimplified")
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return {"converter": converter, "input_layout": "NCHW", "output_layout": "NCHW", "notes": notes}


def _output_overrides(onnx_path: Path, calib, clip: float) -> dict:
    """``TensorQuantOverrides`` for the graph outputs: their calibrated (MinMax) range, clipped to +-clip.

    MinMax calibration is the global min/max of each tensor over the images, so running the
    fp32 model over the same images gives exactly the range the quantizer would use.
    """
    from edgekit.export.calibration import clipped
    from edgekit.runtime.onnxruntime_backend import make_session

    sess = make_session(onnx_path, threads=None)
    names = [o.name for o in sess.get_outputs()]
    lo, hi = {n: np.inf for n in names}, {n: -np.inf for n in names}
    calib.rewind()
    while (feed := calib.get_next()) is not None:
        for n, y in zip(names, sess.run(names, feed)):
            lo[n], hi[n] = min(lo[n], float(y.min())), max(hi[n], float(y.max()))
    calib.rewind()
    overrides = {}
    for n in names:
        rmin, rmax = clipped(lo[n], hi[n], clip)
        overrides[n] = [{"rmin": np.float32(rmin), "rmax": np.float32(rmax)}]
    return overrides


# --calib-method -> onnxruntime's CalibrationMethod
CALIB_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}

# Histogram bins of the entropy calibration. onnxruntime's Entropy calibrator defaults to 128 bins
# and 128 quantized bins, and quantize_static forwards neither (its extra_options reach only the
# Calib{TensorRangeSymmetric,MovingAverage,MovingAverageConstant,MaxIntermediateOutputs,Percentile}
# settings). With bins == quantized bins the KL search (calibrate.py get_entropy_threshold) has
# one candidate window, the whole histogram (a few more when merging grew it, each merging one bin
# per quantized bin, so only clipping costs KL), and the threshold is clamped to min/max: entropy
# IS minmax, bit for bit (tests/export/test_calib_entropy.py pins it; by one-off checks, not committed
# benchmarks: all 121 activation ranges of the pruned p3 detector; the same mAP to every digit
# in benchmarks/results/quant-mobilenetv2_050-yolo-p3-calib-auto.json; onnxruntime 1.31.1). So the
# entropy ranges are computed here with onnxruntime's own calibrator and more bins, and handed to
# quantize_static through its calibration cache. 512: 193 candidate thresholds, ~10 s of KL search for the
# pruned p3 detector's 121 tensors on this host (2048 bins: 961 candidates, ~76 s, median range 0.72x min-max vs 0.77x).
ENTROPY_BINS = 512


def onnx2onnx_int8(onnx_path: Path, out: Path, calib, activation: str = "uint8", output_clip: float | None = None,
                   keep_float: list[str] | None = None, calib_method: str | None = None) -> dict:
    """Static INT8 QDQ quantization of an fp32 ONNX file with real calibration images.

    ``output_clip`` clips the graph outputs' calibrated ranges to [-c, c] (detector logits:
    :data:`edgekit.export.calibration.DETECTION_LOGIT_CLIP`). ``keep_float``: node names left in
    float (``nodes_to_exclude``), e.g. the worst layers of :mod:`edgekit.export.sensitivity`.
    ``calib_method``: ``minmax`` (default), ``percentile`` (99.999th of |x|) or ``entropy``
    (onnxruntime's KL-divergence thresholds, on :data:`ENTROPY_BINS`-bin histograms).

    Example:
        >>> r = CalibrationReader.from_source("data.yaml", imgsz=320)  # doctest: +SKIP
        >>> onnx2onnx_int8(Path("m.onnx"), Path("m-int8.onnx"), r)  # doctest: +SKIP
    """
    if calib is None or len(calib) == 0:
        raise EdgekitError("onnx-int8: INT8 needs calibration images: give --data DATA.yaml or --calib DIR")
    ort = _require("onnxruntime", "export", "ONNX INT8 quantization")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    method = calib_method or "minmax"
    if method not in CALIB_METHODS:
        raise EdgekitError(f"--calib-method {method}: onnx-int8 (onnxruntime) takes {', '.join(CALIB_METHODS)}")
    act = QuantType.QUInt8 if activation == "uint8" else QuantType.QInt8
    calib.rewind()
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # its advice to run quant_pre_process is wrong here (Pad_Fusion)
    notes, extra = [], {}
    if output_clip is not None:
        extra["TensorQuantOverrides"] = _output_overrides(onnx_path, calib, output_clip)
        notes.append(f"output (logit) ranges clipped to +-{output_clip}")
    keep = list(keep_float or [])
    if keep:
        _check_node_names(onnx_path, keep)
        notes.append(f"kept in float: {', '.join(keep)}")
    calibrate_method = getattr(CalibrationMethod, CALIB_METHODS[method])
    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-calib-") as tmp:
            cache = ranges_cache(onnx_path, calib, Path(tmp) / "ranges.json") if method == "entropy" else None
            quantize_static(str(onnx_path), str(out), calib, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=act, weight_type=QuantType.QInt8, calibrate_method=calibrate_method,
                            nodes_to_exclude=keep, extra_options=extra,
                            **({"calibration_cache_path": str(cache)} if cache else {}))
    finally:
        root.level = level
        calib.rewind()
    if method == "entropy":
        notes.append(f"entropy ranges from {ENTROPY_BINS}-bin histograms (onnxruntime's default 128 makes them min-max)")
    return {"converter": f"onnxruntime {ort.__version__} quantize_static (QDQ, per-channel, "
                         f"{'u8' if act == QuantType.QUInt8 else 's8'} activations / s8 weights, "
                         f"{CALIB_METHODS[method]})",
            "input_layout": "NCHW", "output_layout": "NCHW", "notes": notes, "kept_float": keep, "calib_method": method,
            **({"output_clip": output_clip} if output_clip is not None else {})}


def ranges_cache(onnx_path: Path, calib, path: Path, method: str = "entropy") -> Path:
    """onnxruntime's activation ranges by ``method`` (a :data:`CALIB_METHODS` key), saved at ``path`` as a
    ``quantize_static`` calibration cache; entropy on :data:`ENTROPY_BINS`-bin histograms.

    The calibrator, tensors and op types are the ones ``quantize_static`` would use itself; for entropy
    only the bin count differs (why: the comment on :data:`ENTROPY_BINS`). A cache also lets several
    conversions share one calibration (``benchmarks/keep_float_ranking.py``).

    Example:
        >>> ranges_cache(Path("m.onnx"), reader, Path("ranges.json"), "minmax")  # doctest: +SKIP
        PosixPath('ranges.json')
    """
    import inspect

    from onnxruntime.quantization import CalibrationMethod, quantize_static
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        import onnxruntime

        raise EdgekitError(f"--calib-method {method}: onnxruntime {onnxruntime.__version__} cannot take calibrated "
                           "ranges (no calibration_cache_path): install the version in constraints.txt")
    entropy = {"num_bins": ENTROPY_BINS, "num_quantized_bins": 128} if method == "entropy" else {}
    calibrator = create_calibrator(Path(onnx_path), list(set(QLinearOpsRegistry) | set(QDQRegistry)),
                                   augmented_model_path=str(path.with_suffix(".augmented.onnx")),
                                   calibrate_method=getattr(CalibrationMethod, CALIB_METHODS[method]),
                                   extra_options=entropy)
    calib.rewind()
    calibrator.collect_data(calib)
    calib.rewind()
    save_tensors_data(calibrator.compute_data(), path)
    return path


def _check_node_names(onnx_path: Path, names: list[str]) -> None:
    """Every ``--keep-float`` name must be a node of the graph (a typo would silently quantize it)."""
    onnx = _require("onnx", "export", "ONNX INT8 quantization")
    have = {n.name for n in onnx.load(str(onnx_path), load_external_data=False).graph.node}
    unknown = [n for n in names if n not in have]
    if unknown:
        raise EdgekitError(f"--keep-float: no node named {', '.join(unknown)} in the model: take the names from "
                           "`edgekit quant-report MODEL --target onnx-int8 --data DATA`")


def embed_manifest(onnx_path: Path, manifest: dict) -> None:
    """Store the manifest as ONNX ``metadata_props["edgekit_manifest"]`` (rewrites the file in place).

    Example:
        >>> embed_manifest(Path("m.onnx"), {"task": "detect"})  # doctest: +SKIP
    """
    onnx = _require("onnx", "export", "ONNX metadata")
    model = onnx.load(str(onnx_path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "edgekit_manifest", json.dumps(manifest)
    from edgekit.io import atomic_write_bytes

    atomic_write_bytes(onnx_path, model.SerializeToString())
