"""The manifest: every artifact's contract with the runtime.

Written beside the artifact as ``<artifact>.json`` and embedded where the format allows
(ONNX ``metadata_props``, TFLite metadata, OpenVINO ``rt_info``; ncnn has no place for it).
The runtime reads nothing else to run an artifact: input name/shape/layout/dtype and
quantization, preprocessing, output order and decoding, class names.

Example (abridged)::

    {"format": "edgekit-manifest-1", "task": "detect", "model": "yolo-lite", "target": "tflite-int8",
     "backend": "litert", "files": ["yolo-lite-tflite-int8.tflite"],
     "input": {"name": "serving_default_args_0:0", "shape": [1, 224, 224, 3], "layout": "NHWC",
               "dtype": "int8", "quant": [0.003921, -128]},
     "outputs": [{"name": "...", "shape": [1, 35, 7, 7], "layout": "NCHW", "dtype": "int8",
                  "quant": [0.0712, 31], "decode_index": 0}],
     "preprocess": {"imgsz": [224, 224], "resize": "letterbox", "pad_value": 114, "color": "RGB",
                    "scale": 255.0, "mean": [0, 0, 0]},
     "decode": {head_spec}, "names": [...], "source": {...}, "calibration": {...},
     "conversion": {...}, "versions": {...}, "verification": {...}}
"""

from __future__ import annotations

import importlib.metadata as md

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.runner import MANIFEST_FORMAT

# preprocess.resize: "letterbox" (aspect kept, pad_value pads) or "stretch" (x and y scaled apart, no pads:
# a Darknet cfg without letterbox=1, as Darknet and OpenCV DNN resize); the source model's own mode

def versions() -> dict:
    """Versions of edgekit, numpy, OpenCV, every runtime and every converter installed here.

    Runtimes and converters come from the backend and target registries, so a new backend or
    target is recorded in every manifest without editing this list.

    Example:
        >>> "numpy" in versions()
        True
    """
    from edgekit.export.targets import TARGETS
    from edgekit.runtime.backends import list_backends

    dists = ["edgekit", "numpy", "opencv-python-headless"]
    dists += [d for b in list_backends() for _, d in b.packages]
    by_module = md.packages_distributions()
    dists += [d for t in TARGETS.values() for m in t.needs + t.optional for d in by_module.get(m, [])]
    out = {}
    for dist in dict.fromkeys(dists):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def match_outputs(artifact_shapes: list[tuple], source_shapes: list[tuple]) -> list[int]:
    """For each artifact output, the index of the source output it is (by shape, ties in order).

    Example:
        >>> match_outputs([(1, 18, 4, 4), (1, 18, 2, 2)], [(1, 18, 2, 2), (1, 18, 4, 4)])
        [1, 0]
    """
    free = list(range(len(source_shapes)))
    order = []
    for shape in artifact_shapes:
        hit = next((j for j in free if tuple(source_shapes[j]) == tuple(shape)), None)
        if hit is None:
            raise EdgekitError(f"artifact output of shape {list(shape)} matches no source output "
                               f"({[list(s) for s in source_shapes]}): the conversion changed the model's outputs")
        free.remove(hit)
        order.append(hit)
    return order


def build_manifest(source, target, backend, conversion: dict, calib_info: dict | None, files: list[str]) -> dict:
    """The manifest of a freshly converted artifact, read from the backend that opened it."""
    layout = conversion.get("input_layout", "NCHW")
    inp = backend.inputs[0]
    zeros = np.zeros(inp.shape, dtype=np.dtype(inp.dtype))
    artifact_shapes = [tuple(np.asarray(o).shape) for o in backend.run([zeros])]
    h, w = source.imgsz
    source_shapes = [tuple(o.shape) for o in source.forward(np.zeros((1, 3, h, w), np.float32))]
    order = match_outputs(artifact_shapes, source_shapes)
    outputs = [{**o.to_dict(), "shape": list(shape), "layout": conversion.get("output_layout", "NCHW"), "decode_index": k}
               for o, shape, k in zip(backend.outputs, artifact_shapes, order)]
    color = conversion.get("input_color", "RGB")  # BGR: the swap folded into the graph (export/input_color.py)
    decode = source.head_spec if source.task == "detect" else {"type": "classify", "num_classes": len(source.names)}
    return {
        "format": MANIFEST_FORMAT, "task": source.task, "model": source.model, "target": target.name,
        "family": target.family, "precision": target.precision, "backend": target.backend, "files": files,
        "input": {**inp.to_dict(), "layout": layout},
        "outputs": outputs,
        "preprocess": {"imgsz": [h, w], "resize": source.resize, "pad_value": 114, "color": color, "scale": 255.0,
                       "mean": [0.0, 0.0, 0.0], "note": f"x = {color} / 255 (then quantized with input.quant when integer)"},
        "decode": decode, "names": list(source.names), "source": source.describe(),
        "calibration": calib_info, "conversion": conversion, "versions": versions(),
    }


def embed(target, path, manifest: dict) -> bool:
    """Embed the manifest in the artifact where the format allows; False where it cannot (ncnn)."""
    return target.embed(path, manifest)
