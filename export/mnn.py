"""ONNX to MNN (``.mnn``): fp32 with MNNConvert, full INT8 with MNN's offline quantization tool.

Both tools are the C++ ones inside the ``mnn`` wheel's ``_tools`` extension; edgekit calls it
directly, in a child process, and never through the wheel's ``mnnconvert``/``mnnquant``
Python wrappers: those import ``MNN.tools.utils.log``, which runs ``pip install -U
aliyun-log-python-sdk`` when that package is missing and then posts a usage log (model id,
sizes, options) to an Aliyun endpoint. The child process also keeps a C++ abort (a model the
tool cannot handle) from taking the exporter down, and keeps the tools' stdout off edgekit's.

INT8 is MNN's *full* INT8 (``quantized.out``/``mnnquant``): per-output-channel symmetric int8
weights (``MAX_ABS``) and per-tensor int8 activation scales calibrated with ``EMA`` (moving
min/max; MNN's default KL clipped a detector's ranges too far, see :data:`FEATURE_METHOD`) on the
images of edgekit's :class:`~edgekit.export.calibration.CalibrationReader`.
The tool reads a folder of images and resizes them itself, so the reader's letterboxed
images are written losslessly (PNG) at exactly the model's input size: its resize is then the
identity and ``dst = (RGB - 0) * 1/255`` is edgekit's preprocessing. The converter's
``--weightQuantBits`` (weight-only compression, float compute) is not used: it is not INT8
inference.

Example:
    >>> onnx2mnn(Path("fp32.onnx"), Path("m.mnn"))["converter"]  # doctest: +SKIP
    'MNNConvert 3.6.1'
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, MissingExtraError

# the tool's own C++ entry points; argv as a list, argv[0] is the program name (mnnquant took three
# strings in older releases: a list there is a TypeError, while three strings crash 3.6.1, so the list goes first)
_CHILD = ("import sys, _tools\ntry:\n    _tools.{tool}(sys.argv)\n"
          "except TypeError:\n    _tools.{tool}(*sys.argv[1:])")
TIMEOUT_S = 1800
# MNN's default is KL; on the tiny test detector (16 images) KL's clipped ranges gave an INT8-vs-torch
# cosine of 0.96 (under the 0.98 INT8 parity tolerance), EMA's min/max ranges 0.9999. ADMM crashed
# mnnquant (free(): invalid next size) in 3.6.1.
FEATURE_METHOD = "EMA"
WEIGHT_METHOD = "MAX_ABS"  # symmetric per output channel


def _version() -> str:
    if importlib.util.find_spec("_tools") is None:
        raise MissingExtraError("mnn", "export", "MNN export")
    return importlib.metadata.version("mnn")


def _tool(tool: str, args: list[str], what: str) -> str:
    """Run MNN's ``_tools.<tool>(argv)`` in a child process; its output (stdout + stderr)."""
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD.format(tool=tool), *args], capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"MNN {what} took over {TIMEOUT_S} s: use the ONNX or OpenVINO targets") from None
    log = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        said = " | ".join(log.splitlines()[-6:])[-600:]
        raise EdgekitError(f"MNN {what} failed (exit {proc.returncode}): {said}")
    return log


def _check_written(path: Path, log: str, what: str) -> None:
    # the tools report failure in their output and still return success: only the file tells
    if not path.is_file() or path.stat().st_size == 0:
        said = [ln.strip() for ln in log.splitlines() if "not support" in ln.lower() or "error" in ln.lower()]
        raise EdgekitError(f"MNN {what} wrote nothing ({'; '.join(said[:6]) or log[-400:]}): "
                           "use the ONNX or OpenVINO targets, or report the op to MNN")


def onnx2mnn(onnx_path: Path, out: Path) -> dict:
    """Convert an fp32 ONNX to an fp32 ``.mnn`` with MNNConvert.

    Args:
        onnx_path: the fp32 ONNX (static input shape).
        out: the ``.mnn`` to write.

    Returns:
        ``{"converter", "precision", "input_layout", "output_layout", "notes"}``.

    Raises:
        MissingExtraError: the mnn wheel is not installed.
        EdgekitError: the converter failed or left an op it does not support.

    Example:
        >>> onnx2mnn(Path("fp32.onnx"), Path("m.mnn"))["precision"]  # doctest: +SKIP
        'fp32'
    """
    version = _version()
    out = Path(out)
    if out.suffix != ".mnn":
        raise EdgekitError(f"{out}: an MNN model is written as a .mnn file")
    out.parent.mkdir(parents=True, exist_ok=True)
    log = _tool("mnnconvert", ["-f", "ONNX", "--modelFile", str(onnx_path), "--MNNModel", str(out),
                               "--bizCode", "edgekit"], "conversion")
    _check_written(out, log, "conversion")
    if "Converted Success" not in log:
        out.unlink(missing_ok=True)
        raise EdgekitError(f"MNNConvert did not finish ({' | '.join(log.splitlines()[-4:])[-400:]}): "
                           "use the ONNX or OpenVINO targets")
    return {"converter": f"MNNConvert {version}", "precision": "fp32", "input_layout": "NCHW", "output_layout": "NCHW",
            "notes": ["MNNConvert -f ONNX from the fp32 ONNX; the runtime asks for precision=high (fp32 arithmetic)"]}


def write_calibration_images(calib, folder: Path) -> tuple[int, int, int]:
    """Write the reader's letterboxed images as PNGs (lossless) into ``folder``; (count, height, width).

    The reader's tensors are RGB / 255 of uint8 pixels, so ``round(x * 255)`` gives the pixels back exactly.

    Example:
        >>> from edgekit.data.sample import sample_data_yaml
        >>> from edgekit.export.calibration import CalibrationReader
        >>> r = CalibrationReader.from_source(sample_data_yaml(), imgsz=64, images=2)
        >>> write_calibration_images(r, Path(tempfile.mkdtemp()))
        (2, 64, 64)
    """
    import cv2

    h = w = 0
    for k, x in enumerate(calib):
        rgb = np.rint(np.asarray(x)[0].transpose(1, 2, 0) * 255.0).clip(0, 255).astype(np.uint8)
        h, w = rgb.shape[:2]
        if not cv2.imwrite(str(folder / f"{k:05d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise EdgekitError(f"cannot write calibration images to {folder}: free disk space in the temp folder")
    if not h:
        raise EdgekitError("no calibration images: INT8 needs real images (--data DATA.yaml or --calib DIR)")
    return len(calib), h, w


def int8_summary(mnn_path: Path) -> dict:
    """How much of a quantized ``.mnn`` runs in int8: convolutions with int8 weights and int8 activations.

    Reads MNN's own JSON dump of the model (``MNNConvert -f MNN --JsonFile``).

    Example:
        >>> int8_summary(Path("m-int8.mnn"))  # doctest: +SKIP
        {'convolutions': 63, 'int8_weights': 63, 'int8_activations': 63, 'per_channel_weights': 63}
    """
    with tempfile.TemporaryDirectory(prefix="edgekit-mnn-") as tmp:
        dump = Path(tmp) / "model.json"
        _tool("mnnconvert", ["-f", "MNN", "--modelFile", str(mnn_path), "--JsonFile", str(dump)], "model dump")
        if not dump.is_file():
            raise EdgekitError(f"MNN could not dump {mnn_path.name} to JSON to check its quantization")
        ops = json.loads(dump.read_text()).get("oplists", [])
    convs = [op.get("main") or {} for op in ops if str(op.get("type", "")).startswith("Convolution")]
    quant = [c.get("quanParameter") or {} for c in convs]
    return {"convolutions": len(convs), "int8_weights": sum(bool(q.get("buffer")) for q in quant),
            "int8_activations": sum(bool(q.get("scaleIn")) and bool(q.get("scaleOut")) for q in quant),
            "per_channel_weights": sum(len(q.get("alpha") or []) > 1 for q in quant)}


def onnx2mnn_int8(onnx_path: Path, out: Path, calib) -> dict:
    """fp32 ONNX -> fp32 ``.mnn`` -> full INT8 ``.mnn`` calibrated on ``calib``'s images.

    Args:
        onnx_path: the fp32 ONNX.
        out: the INT8 ``.mnn`` to write.
        calib: a :class:`~edgekit.export.calibration.CalibrationReader` (letterboxed real images).

    Returns:
        the converter info, with ``int8`` (:func:`int8_summary`) and the quantization settings.

    Raises:
        EdgekitError: no calibration images, the tools failed, or a convolution was left in float.

    Example:
        >>> onnx2mnn_int8(Path("fp32.onnx"), Path("m-int8.mnn"), reader)["int8"]["int8_activations"]  # doctest: +SKIP
        63
    """
    if calib is None or len(calib) == 0:
        raise EdgekitError("mnn-int8 needs calibration images: give --data DATA.yaml or --calib DIR")
    version = _version()
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="edgekit-mnn-") as tmp:
        tmp = Path(tmp)
        fp32 = tmp / "fp32.mnn"
        onnx2mnn(onnx_path, fp32)
        images = tmp / "calibration"
        images.mkdir()
        n, h, w = write_calibration_images(calib, images)
        config = {"format": "RGB", "mean": [0.0, 0.0, 0.0], "normal": [1 / 255.0] * 3, "width": w, "height": h,
                  "path": f"{images}/", "used_image_num": n, "feature_quantize_method": FEATURE_METHOD,
                  "weight_quantize_method": WEIGHT_METHOD, "feature_clamp_value": 127, "weight_clamp_value": 127,
                  "quant_bits": 8, "input_type": "image"}
        (tmp / "quant.json").write_text(json.dumps(config))
        # into the temporary folder: mnnquant also writes <dst>.json (its tensor scales), which would
        # take the name of edgekit's sidecar manifest beside the artifact
        int8 = tmp / "int8.mnn"
        log = _tool("mnnquant", [str(fp32), str(int8), str(tmp / "quant.json")], "quantization")
        _check_written(int8, log, "quantization")
        summary = int8_summary(int8)
        if summary["int8_activations"] == summary["convolutions"]:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(int8), out)
    if summary["int8_activations"] < summary["convolutions"]:
        float_convs = summary["convolutions"] - summary["int8_activations"]
        raise EdgekitError(f"mnnquant left {float_convs} of {summary['convolutions']} convolutions in float: "
                           "this is not a full INT8 model; use onnx-int8 or openvino-int8")
    return {"converter": f"MNNConvert + mnnquant {version}", "precision": "int8", "input_layout": "NCHW",
            "output_layout": "NCHW", "int8": summary,
            "quantization": {"tool": "mnnquant (MNN offline quantization, quantized.out)", "images": n,
                             "activations": f"per-tensor symmetric int8, {FEATURE_METHOD} calibration",
                             "weights": f"per-output-channel symmetric int8 ({WEIGHT_METHOD})"},
            "notes": ["full INT8: int8 weights and int8 activations in every convolution; float input and outputs",
                      "calibration images written as PNG at the model size (letterboxed), so the tool's resize is "
                      "the identity and its normalisation RGB/255 is edgekit's"]}
