"""edgekit.runtime: the device side. Imports only numpy at module level.

OpenCV and the interpreters (onnxruntime, LiteRT, OpenVINO, ncnn) are imported lazily,
so a board with ``pip install "edgekit[tflite]"`` never loads torch, TensorFlow or onnx.
"""
