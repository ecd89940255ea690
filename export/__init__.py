"""edgekit.export: conversion to ONNX, TFLite, OpenVINO and ncnn, calibration, verification.

Host side: heavy converters are imported inside the functions that need them.

Where things are:

- ``targets.py``: the target registry (name -> family, precision, needs, converter);
- ``onnx.py``, ``tflite.py``, ``openvino.py``, ``ncnn.py``: one file per target family;
- ``source.py``: what an export starts from (checkpoint, Darknet cfg, ONNX);
- ``calibration.py``: the one INT8 calibration reader;
- ``manifest.py``: the artifact's contract with the runtime;
- ``verify.py``: parity and the mAP gate; ``exporter.py``: the run; ``report.py``: its report.

Example:
    >>> from edgekit.export import export  # doctest: +SKIP
    >>> export("runs/train/yolo-lite/weights/best.pt", ["tflite-int8"], data="data.yaml")  # doctest: +SKIP
"""

from edgekit.export.exporter import export
from edgekit.export.targets import TARGETS, get_target

__all__ = ["export", "TARGETS", "get_target"]
