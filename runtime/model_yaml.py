"""Models without an edgekit manifest, described by a small YAML file (``--spec``).

Schema (every key is checked; an unknown or malformed one is a one-line error naming it;
keys marked * are required, the others show their default)::

    model: version-RFB-320.onnx   # path relative to this file; leave out when the model is given separately
    task: detect                  # * detect | classify
    names: [face]                 # a list, or a labels file (one name per line) relative to this file
    input:                        # *
      size: [240, 320]            # * [height, width]; must match the model's input
      layout: NCHW                # NCHW | NHWC
      color: RGB                  # RGB | BGR
      mean: [0, 0, 0]             # x = (pixel - mean) / std per channel, pixels 0..255 in `color` order;
      std: [255, 255, 255]        #   a quantized input gets x quantized, a plain uint8 input the raw pixels
      resize: stretch             # stretch | letterbox (pad 114, boxes mapped back through the padding)
    output:                       # * detect: SSD-like box + score outputs, already decoded against priors
      boxes: boxes                # * output name (or index): (1, N, 4) or (N, 4)
      scores: scores              # * output name (or index): (1, N, C) or (N, C)
      box_format: xyxy            # xyxy | yxyx | cxcywh
      normalized: true            # boxes in [0, 1] of the input (false: input pixels)
      score_activation: none      # none (already probabilities) | softmax | sigmoid
      background_class: null      # score column to drop (0 for SSDs with a background column)
    # classify: output: {logits: NAME, activation: softmax}   # softmax: logits; none: already probabilities

Quantized outputs are dequantized with the scales the backend reports. Detections keep each
anchor's best class above ``conf``, then class-aware NMS (:func:`edgekit.runtime.boxes.nms`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.io import parse_yaml
from edgekit.runtime.boxes import cxcywh_to_xyxy, nms
from edgekit.runtime.classify import postprocess_classification
from edgekit.runtime.model import RuntimeModel
from edgekit.runtime.preprocess import COLORS, RESIZE_MODES, boxes_from_letterbox, fit_image
from edgekit.runtime.results import Classification, Detections

TOP = {"model", "task", "names", "input", "output"}
INPUT = {"size", "layout", "color", "mean", "std", "resize"}
DETECT_OUT = {"boxes", "scores", "box_format", "normalized", "score_activation", "background_class"}
CLASSIFY_OUT = {"logits", "activation"}
REF = (str, int)  # an output is named, or given by its index
CHOICES = {"task": ("detect", "classify"), "input.layout": ("NCHW", "NHWC"), "input.color": COLORS,
           "input.resize": RESIZE_MODES, "output.box_format": ("xyxy", "yxyx", "cxcywh"),
           "output.score_activation": ("none", "softmax", "sigmoid"), "output.activation": ("none", "softmax")}


def _fail(src, key: str, fix: str):
    raise EdgekitError(f"model YAML {src}: '{key}' {fix}")


def _check_keys(src, where: str, data, allowed: set, required: set):
    if not isinstance(data, dict):
        _fail(src, where or "the file", f"must be a mapping of keys ({', '.join(sorted(allowed))}), got {data!r:.60}")
    for k in data:
        if k not in allowed:
            _fail(src, f"{where}.{k}" if where else k, f"is not a known key: use {', '.join(sorted(allowed))}")
    for k in sorted(required - set(data)):
        _fail(src, f"{where}.{k}" if where else k, "is missing: add it (see edgekit/runtime/model_yaml.py)")


def _choice(src, key: str, value, default):
    value = default if value is None else value
    if value not in CHOICES[key]:
        _fail(src, key, f"is {value!r}: use one of {', '.join(CHOICES[key])}")
    return value


def _triple(src, key: str, value, default):
    value = default if value is None else value
    if not (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        _fail(src, key, f"is {value!r}: give three numbers, one per channel")
    if key.endswith("std") and min(value) <= 0:
        _fail(src, key, f"is {value!r}: every std must be above 0")
    return np.asarray(value, np.float32)


def _typed(src, key: str, value, types: tuple, what: str, required: bool = False):
    if (value is not None or required) and (not isinstance(value, types) or isinstance(value, bool) and bool not in types):
        _fail(src, key, f"is {value!r}: give {what}")
    return value


def read_spec(path: str | Path) -> dict:
    """Load and validate a model YAML into a normalised dict (model path resolved against the file).

    Example:
        >>> spec = read_spec("edgekit/assets/model_yaml/ultra-light-face-rfb320.yaml")
        >>> spec["input"]["size"], spec["output"]["box_format"]
        ([240, 320], 'xyxy')
    """
    src = Path(path)
    if not src.is_file():
        raise EdgekitError(f"model YAML {src} does not exist: give the path to a model description")
    try:
        text = src.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EdgekitError(f"model YAML {src} is not UTF-8 text: give a YAML file") from None
    data = parse_yaml(text, f"model YAML {src}")
    _check_keys(src, "", data, TOP, {"task", "input", "output"})
    task = _choice(src, "task", data["task"], None)
    _check_keys(src, "input", data["input"], INPUT, {"size"})
    inp = data["input"]
    size = inp["size"]
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 8192 for v in size)):
        _fail(src, "input.size", f"is {size!r}: give [height, width] in pixels")
    spec_in = {"size": size, "layout": _choice(src, "input.layout", inp.get("layout"), "NCHW"),
               "color": _choice(src, "input.color", inp.get("color"), "RGB"),
               "mean": _triple(src, "input.mean", inp.get("mean"), (0, 0, 0)),
               "std": _triple(src, "input.std", inp.get("std"), (255, 255, 255)),
               "resize": _choice(src, "input.resize", inp.get("resize"), "stretch")}
    out = data["output"]
    if task == "detect":
        _check_keys(src, "output", out, DETECT_OUT, {"boxes", "scores"})
        spec_out = {"boxes": _typed(src, "output.boxes", out["boxes"], REF, "the output's name or index", True),
                    "scores": _typed(src, "output.scores", out["scores"], REF, "the output's name or index", True),
                    "box_format": _choice(src, "output.box_format", out.get("box_format"), "xyxy"),
                    "normalized": _typed(src, "output.normalized", out.get("normalized", True), (bool,), "true or false"),
                    "score_activation": _choice(src, "output.score_activation", out.get("score_activation"), "none"),
                    "background_class": _typed(src, "output.background_class", out.get("background_class"), (int,),
                                               "the score column of the background (an integer), or null")}
    else:
        _check_keys(src, "output", out, CLASSIFY_OUT, {"logits"})
        spec_out = {"logits": _typed(src, "output.logits", out["logits"], REF, "the output's name or index", True),
                    "activation": _choice(src, "output.activation", out.get("activation"), "softmax")}
    names = data.get("names") or []
    if isinstance(names, str):
        labels = (src.parent / names)
        if not labels.is_file():
            _fail(src, "names", f"names the file {labels}, which does not exist: give a list or an existing labels file")
        names = [ln.strip() for ln in labels.read_text(encoding="utf-8").splitlines() if ln.strip()]
    elif not (isinstance(names, list) and all(isinstance(n, (str, int, float)) for n in names)):
        _fail(src, "names", "must be a list of class names or a labels file path")
    model = _typed(src, "model", data.get("model"), (str,), "the model file's path, relative to the YAML")
    return {"model": str(src.parent / model) if model else None, "task": task, "names": [str(n) for n in names],
            "input": spec_in, "output": spec_out, "path": str(src)}


class YamlModel(RuntimeModel):
    """A model run by its YAML description: ``predict`` returns Detections or a Classification.

    Example:
        >>> face = load("version-RFB-320.onnx", spec="ultra-light-face-rfb320.yaml")  # doctest: +SKIP
        >>> face.predict("person.jpg", conf=0.7).boxes  # doctest: +SKIP
    """

    def __init__(self, backend, spec: dict):
        self.backend, self.spec = backend, spec
        self.task, self.names = spec["task"], spec["names"]
        self._index = {o.name: k for k, o in enumerate(backend.outputs)}
        self.input = backend.inputs[0]
        inp, shape = spec["input"], tuple(int(d) for d in self.input.shape)
        want = (1, 3, *inp["size"]) if inp["layout"] == "NCHW" else (1, *inp["size"], 3)
        # a dimension of 1 is dynamic in onnxruntime's report; any other mismatch is a wrong description
        if len(shape) != 4 or any(d != 1 and d != w for d, w in zip(shape, want)):
            raise EdgekitError(f"model YAML {spec['path']}: 'input.size'/'input.layout' give {list(want)} but the model's "
                               f"input '{self.input.name}' is {list(shape)}: describe the model's real input")

    def _output(self, outs: list[np.ndarray], key: str) -> np.ndarray:
        ref = self.spec["output"][key]
        k = ref if isinstance(ref, int) else self._index.get(ref)
        if k is None or not 0 <= k < len(outs):
            raise EdgekitError(f"model YAML {self.spec['path']}: output.{key} '{ref}' is not an output of the model "
                               f"(it has {', '.join(self._index)})")
        arr, quant = np.asarray(outs[k]), self.backend.outputs[k].quant
        if quant is not None and arr.dtype.kind in "iu":  # a quantized TFLite output: back to real values
            return (arr.astype(np.float32) - quant[1]) * np.float32(quant[0])
        return arr.astype(np.float32)

    def _tensor(self, image: np.ndarray):
        inp = self.spec["input"]
        h, w = inp["size"]
        # the resize every edgekit model uses (a stretch maps boxes back with separate x and y factors)
        img, lb = fit_image(image, (h, w), inp["resize"])
        x = img[..., ::-1] if inp["color"] == "RGB" else img
        dtype, quant = self.input.dtype, self.input.quant
        if not (dtype == "uint8" and quant is None):  # a uint8 input without quantization takes raw pixels
            x = (x.astype(np.float32) - inp["mean"]) / inp["std"]
            if quant is not None and dtype in ("int8", "uint8"):  # (x - mean) / std quantized as the input wants
                info = np.iinfo(dtype)
                x = np.clip(np.round(x / quant[0]) + quant[1], info.min, info.max)
            x = x.astype(dtype if dtype in ("float16", "int8", "uint8") else "float32")
        x = x.transpose(2, 0, 1) if inp["layout"] == "NCHW" else x
        return np.ascontiguousarray(x[None]), lb

    def predict_one(self, image: np.ndarray, conf: float = 0.5, iou: float = 0.45, classes=None, max_det: int = 300,
                    k: int = 5):
        """Detections (task detect) or a Classification (task classify) of one BGR image.

        Args:
            conf: keep boxes whose best class scores at least this.
            iou: class-aware NMS threshold (None: no NMS).
            classes: keep only these class ids (None: all).
            max_det: at most this many detections.
            k: classify: how many top classes to return.
        """
        x, lb = self._tensor(image)
        outs = self.backend.run([x])
        if self.task == "classify":
            logits = self._output(outs, "logits").reshape(-1)
            r = postprocess_classification(logits if self.spec["output"]["activation"] == "softmax" else np.log(
                np.clip(logits, 1e-12, None)), k=k)
            return Classification(r["classes"], r["scores"], r["label"], self.names)
        return self._detections(outs, image.shape[:2], lb, conf, iou, classes, max_det)

    def _detections(self, outs, hw, lb, conf, iou, classes, max_det) -> Detections:
        o = self.spec["output"]
        boxes = self._output(outs, "boxes").reshape(-1, 4)
        scores = self._output(outs, "scores")
        if not len(boxes) or scores.size % len(boxes):
            raise EdgekitError(f"model YAML {self.spec['path']}: output.scores {list(scores.shape)} does not match output.boxes "
                               f"{list(self._output(outs, 'boxes').shape)} (one row of scores per box): check the output names")
        scores = scores.reshape(len(boxes), -1)
        if o["score_activation"] == "softmax":
            e = np.exp(scores - scores.max(1, keepdims=True))
            scores = e / e.sum(1, keepdims=True)
        elif o["score_activation"] == "sigmoid":
            scores = 1 / (1 + np.exp(-scores))
        if o["box_format"] == "yxyx":
            boxes = boxes[:, [1, 0, 3, 2]]
        elif o["box_format"] == "cxcywh":
            boxes = cxcywh_to_xyxy(boxes)
        ih, iw = self.spec["input"]["size"]
        if o["normalized"]:
            boxes = boxes * np.array([iw, ih, iw, ih], np.float32)
        bg = o["background_class"]
        if bg is not None:  # class ids then count the foreground columns from 0, as `names` does
            if not 0 <= bg < scores.shape[1]:
                raise EdgekitError(f"model YAML {self.spec['path']}: 'output.background_class' is {bg} but the scores "
                                   f"have {scores.shape[1]} columns: give a column index or null")
            scores = np.delete(scores, bg, axis=1)
        best = scores.argmax(1)
        score = scores[np.arange(len(scores)), best]
        keep = score >= conf
        if classes is not None:
            keep &= np.isin(best, np.asarray(list(classes)))
        b, s, c = boxes[keep], score[keep], best[keep]
        if iou is None:
            sel = np.argsort(-s, kind="stable")[:max_det]
        else:
            sel = nms(b, s, c, iou, max_det) if len(b) else np.zeros(0, np.int64)
        b, s, c = b[sel], s[sel], c[sel]
        return Detections(boxes_from_letterbox(b, lb), s, c, self.names, hw)

    def describe(self) -> dict:
        inp = self.spec["input"]
        return {"task": self.task, "kind": "model-yaml", "spec": self.spec["path"], "artifact": str(self.backend.path),
                "classes": len(self.names), "input": {"shape": [1, 3, *inp["size"]] if inp["layout"] == "NCHW" else
                                                      [1, *inp["size"], 3], "layout": inp["layout"],
                                                      "dtype": self.input.dtype, "resize": inp["resize"]},
                **self.backend.describe()}
