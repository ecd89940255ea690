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
from edgekit.runtime.boxes import nms
from edgekit.runtime.litert_backend import _deref, _field, _tables
from edgekit.runtime.model import RuntimeModel
from edgekit.runtime.results import Detections

LABEL_FILES = ("labelmap.txt", "labels.txt", "COCO_labels.txt", "coco_labels.txt")
BACKGROUND = {"???", "unlabeled", "background", "__background__"}


def custom_ops(path: str | Path) -> set[str] | None:
    """Names of the custom ops a ``.tflite`` graph uses, read from its flatbuffer (stdlib only); None if unreadable.

    Example:
        >>> custom_ops("../shared/models/ssd_mobilenet_v1_coco_quant/detect.tflite")  # doctest: +SKIP
        {'TFLite_Detection_PostProcess'}
    """
    import mmap
    import struct


    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[4:8] != b"TFL3":
                return None
            names = set()
            for code in _tables(buf, _deref(buf, 0), 1):  # Model.operator_codes; OperatorCode.custom_code = slot 1
                pos = _field(buf, code, 1)
                if pos is not None:
                    s = _deref(buf, pos)
                    names.add(buf[s + 4:s + 4 + struct.unpack_from("<I", buf, s)[0]].decode("utf-8", "replace"))
            return names
    except (OSError, ValueError, IndexError, struct.error):
        return None


def output_roles(outputs) -> tuple[int, int, int, int] | None:
    """Indices of (boxes, classes, scores, count) among TFLite_Detection_PostProcess's four outputs, or None.

    TF1 exports list them in the op's order; TF2 exports (through a signature) may reorder them,
    so they are told apart by shape, and the two ``[1, N]`` tensors by the op's ``:1`` (classes)
    / ``:2`` (scores) names when present (else :meth:`SsdDetector.predict_one` looks at the values).

    Example:
        >>> from edgekit.runtime.backends import TensorInfo as T
        >>> output_roles([T("a", (1, 10, 4), "float32"), T("b", (1, 10), "float32"),
        ...               T("c", (1, 10), "float32"), T("d", (1,), "float32")])
        (0, 1, 2, 3)
    """
    if len(outputs) != 4 or any(o.dtype != "float32" for o in outputs):
        return None
    shapes = [tuple(o.shape) for o in outputs]
    boxes = [k for k, sh in enumerate(shapes) if len(sh) == 3 and sh[0] == 1 and sh[2] == 4]
    if len(boxes) != 1:
        return None
    n = shapes[boxes[0]][1]
    count = [k for k, sh in enumerate(shapes) if sh in ((1,), ())]
    pair = [k for k, sh in enumerate(shapes) if sh == (1, n)]
    if len(count) != 1 or len(pair) != 2:
        return None
    if outputs[pair[0]].name.endswith(":2") and outputs[pair[1]].name.endswith(":1"):
        pair.reverse()
    return boxes[0], pair[0], pair[1], count[0]


def is_ssd_postprocess(backend) -> bool:
    """True when a LiteRT model ends in ``TFLite_Detection_PostProcess``.

    The outputs must be the op's four float tensors (boxes ``[1, N, 4]``, classes ``[1, N]``,
    scores ``[1, N]``, count ``[1]``), and the graph must use the op when its flatbuffer can be read.
    """
    if output_roles(backend.outputs) is None:
        return False
    ops = custom_ops(backend.path)
    return "TFLite_Detection_PostProcess" in ops if ops is not None else True


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
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()  # a blank line inside the file stays: it holds an index, as "???" does in labelmap.txt
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
        roles = output_roles(backend.outputs)
        if roles is None or len(inp.shape) != 4 or inp.shape[3] != 3:
            raise EdgekitError(f"{backend.path}: not a TFLite SSD (want one NHWC image input and the four outputs of "
                               "TFLite_Detection_PostProcess): describe it with a model YAML (--spec) or use --raw")
        self.roles = roles

    def tensor(self, image: np.ndarray) -> np.ndarray:
        """The BGR image as this model's input: stretched to its size, RGB, uint8 / quantized / float."""
        import cv2

        h, w = self.size
        # stretched, not letterboxed: the Object Detection API trains these models on stretched images
        rgb = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)[..., ::-1]
        if self.input.dtype == "uint8":  # raw pixels: the uint8 input's quantization maps 0..255 to [-1, 1]
            return np.ascontiguousarray(rgb[None])
        x = (rgb.astype(np.float32) - 127.5) / 127.5  # the [-1, 1] range MobileNet SSDs are trained on
        if self.input.dtype == "int8":
            scale, zero = self.input.quant or (1 / 128, 0)
            x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
        return np.ascontiguousarray(x[None].astype(self.input.dtype))

    def predict_one(self, image: np.ndarray, conf: float = 0.5, iou: float | None = None, classes=None,
                    max_det: int = 100) -> Detections:
        """Detections of one BGR image.

        Args:
            conf: keep detections scoring at least this.
            iou: the graph already ran NMS; a value runs edgekit's class-aware NMS on top (None: off).
            classes: keep only these class ids (None: all).
            max_det: at most this many detections (the graph caps them too, at N).
        """
        outs = [np.asarray(o) for o in self.backend.run([self.tensor(image)])]
        boxes, ids, scores, count = (outs[k] for k in self.roles)
        if not np.array_equal(ids, np.round(ids)) and np.array_equal(scores, np.round(scores)):
            ids, scores = scores, ids  # reordered outputs without the op's names: class ids are the integers
        n = min(int(count.reshape(-1)[0]), boxes.shape[1])
        boxes, ids, scores = boxes[0, :n].astype(np.float32), ids[0, :n].astype(np.int64), scores[0, :n]
        h, w = image.shape[:2]
        # normalised [ymin, xmin, ymax, xmax] of the stretched input = fractions of the original image
        xyxy = (boxes[:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)).clip(0, [w, h, w, h])
        keep = scores >= conf
        if classes is not None:
            keep &= np.isin(ids, np.asarray(list(classes), np.int64))
        xyxy, ids, scores = xyxy[keep], ids[keep], scores[keep]
        if iou is not None and len(scores):
            order = nms(xyxy, scores, ids, iou, max_det)
        else:
            order = np.argsort(-scores, kind="stable")[:max_det]
        return Detections(xyxy[order], scores[order], ids[order], self.names, (h, w))

    def describe(self) -> dict:
        return {"task": self.task, "kind": "tflite-ssd", "artifact": str(self.backend.path), "classes": len(self.names),
                "input": {"shape": list(self.input.shape), "layout": "NHWC", "dtype": self.input.dtype,
                          "quant": list(self.input.quant) if self.input.quant else None, "resize": "stretch"},
                **self.backend.describe()}
