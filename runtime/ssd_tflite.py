"""TFLite SSD models with the ``TFLite_Detection_PostProcess`` op, run as they are.

Such models (the TensorFlow Object Detection API's SSD-MobileNet exports, Coral's zoo) decode
and NMS inside the graph and output four tensors: boxes ``[1, N, 4]`` as normalised
``ymin, xmin, ymax, xmax``, class ids ``[1, N]``, scores ``[1, N]`` and the count ``[1]``.
The input is stretched to the model's size (these models were trained on stretched images,
not letterboxed), RGB, raw uint8 for quantized inputs or ``(x - 127.5) / 127.5`` for float.
Labels come from ``labels=`` or a labels file beside the model; a first line such as
``unlabeled``/``???``/``background`` is the background class, which class id 0 skips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.model import RuntimeModel
from edgekit.runtime.results import Detections

LABEL_FILES = ("labelmap.txt", "labels.txt", "COCO_labels.txt", "coco_labels.txt")
BACKGROUND = {"???", "unlabeled", "background", "__background__"}


def is_ssd_postprocess(backend) -> bool:
    """True when a LiteRT backend's outputs are TFLite_Detection_PostProcess's four float tensors."""
    outs = backend.outputs
    if len(outs) != 4 or any(o.dtype != "float32" for o in outs):
        return False
    names = " ".join(o.name for o in outs)
    shapes = [tuple(o.shape) for o in outs]
    by_shape = len(shapes[0]) == 3 and shapes[0][-1] == 4 and shapes[3] in ((1,), ())
    return "TFLite_Detection_PostProcess" in names or by_shape


def read_labels(model_path: Path, labels: str | Path | list | None = None) -> list[str]:
    """Class names for class ids 0..: from ``labels`` (list or file), else a labels file beside the model.

    Example:
        >>> read_labels(Path("detect.tflite"), ["person", "bicycle"])
        ['person', 'bicycle']
    """
    if isinstance(labels, (list, tuple)):
        return [str(x) for x in labels]
    path = Path(labels) if labels else next((model_path.parent / f for f in LABEL_FILES
                                             if (model_path.parent / f).is_file()), None)
    if path is None:
        return []
    if not path.is_file():
        raise EdgekitError(f"labels file {path} does not exist: give a text file with one class name per line")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return lines[1:] if lines and lines[0].lower() in BACKGROUND else lines


class SsdDetector(RuntimeModel):
    """A TFLite SSD with in-graph post-processing: ``predict(image) -> Detections``.

    Example:
        >>> det = load("../shared/models/ssd_mobilenet_v1_coco_quant/detect.tflite")  # doctest: +SKIP
        >>> det.predict("dog.jpg", conf=0.5).labels  # doctest: +SKIP
        ['dog', 'bicycle', 'car']
    """

    task = "detect"

    def __init__(self, backend, labels=None):
        self.backend = backend
        self.names = read_labels(Path(backend.path), labels)
        inp = backend.inputs[0]
        self.input = inp
        self.size = (int(inp.shape[1]), int(inp.shape[2]))  # NHWC: (h, w)

    def tensor(self, image: np.ndarray) -> np.ndarray:
        import cv2

        h, w = self.size
        rgb = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)[..., ::-1]
        if self.input.dtype == "uint8":
            return np.ascontiguousarray(rgb[None])
        if self.input.dtype == "int8":  # uint8 pixels shifted into int8 (zero point -128 models)
            return np.ascontiguousarray((rgb.astype(np.int16) - 128).astype(np.int8)[None])
        return np.ascontiguousarray(((rgb.astype(np.float32) - 127.5) / 127.5)[None])

    def predict_one(self, image: np.ndarray, conf: float = 0.5, iou: float | None = None, classes=None,
                    max_det: int = 100) -> Detections:
        boxes, ids, scores, count = self.backend.run([self.tensor(image)])
        n = int(np.asarray(count).reshape(-1)[0])
        boxes, ids, scores = np.asarray(boxes)[0, :n], np.asarray(ids)[0, :n].astype(np.int64), np.asarray(scores)[0, :n]
        h, w = image.shape[:2]
        xyxy = np.stack([boxes[:, 1] * w, boxes[:, 0] * h, boxes[:, 3] * w, boxes[:, 2] * h], axis=1).clip(
            0, [w, h, w, h]) if n else np.zeros((0, 4), np.float32)
        keep = scores >= conf
        if classes is not None:
            keep &= np.isin(ids, np.asarray(list(classes)))
        order = np.argsort(-scores[keep], kind="stable")[:max_det]
        return Detections(xyxy[keep][order], scores[keep][order], ids[keep][order], self.names, (h, w))

    def describe(self) -> dict:
        return {"task": self.task, "kind": "tflite-ssd", "artifact": str(self.backend.path), "classes": len(self.names),
                "input": {"shape": list(self.input.shape), "layout": "NHWC", "dtype": self.input.dtype,
                          "quant": list(self.input.quant) if self.input.quant else None, "resize": "stretch"},
                **self.backend.describe()}
