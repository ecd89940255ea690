"""edgekit.runtime: the device side. Imports only numpy at module level.

OpenCV and the interpreters (onnxruntime, LiteRT, OpenVINO, ncnn) are imported lazily,
so a board with ``pip install "edgekit[tflite]"`` never loads torch, TensorFlow or onnx.

Example:
    >>> from edgekit.runtime import load
    >>> det = load("mobilenetv2_050-yolo-tflite-int8.tflite", threads=4)  # doctest: +SKIP
    >>> det.predict("fish.jpg", conf=0.3).to_json()  # doctest: +SKIP
    >>> for r in stream(det, "/dev/video0", line=(0, 240, 640, 240)):  # doctest: +SKIP
    ...     print(r.events)
"""

from edgekit.runtime.loader import load
from edgekit.runtime.pipeline import stream

__all__ = ["load", "stream"]
