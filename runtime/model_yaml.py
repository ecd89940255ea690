"""Models without an edgekit manifest, described by a small YAML file (``--spec``).

Schema (every key is checked; an unknown or malformed one is a one-line error naming it)::

    model: version-RFB-320.onnx        # optional when the model path is given separately; relative to this file
    task: detect                       # detect | classify
    names: [face]                      # or a labels file path (one name per line)
    input:
      size: [240, 320]                 # [height, width]
      layout: NCHW                     # NCHW | NHWC
      color: RGB                       # RGB | BGR
      mean: [127, 127, 127]            # x = (pixel - mean) / std, per channel, in the color order above
      std: [128, 128, 128]
      resize: stretch                  # stretch | letterbox (pad 114)
    output:                            # detect: SSD-like box + score outputs
      boxes: boxes                     # output name (or index)
      scores: scores
      box_format: xyxy                 # xyxy | yxyx | cxcywh
      normalized: true                 # boxes in [0, 1] of the input (else input pixels)
      score_activation: none           # none (already probabilities) | softmax | sigmoid
      background_class: 0              # score column to drop (null: none)
    # classify: output: {logits: NAME, activation: softmax | none}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.model import RuntimeModel
from edgekit.runtime.results import Classification, Detections

TOP = {"model", "task", "names", "input", "output"}
INPUT = {"size", "layout", "color", "mean", "std", "resize"}
DETECT_OUT = {"boxes", "scores", "box_format", "normalized", "score_activation", "background_class"}
CLASSIFY_OUT = {"logits", "activation"}
CHOICES = {"task": ("detect", "classify"), "layout": ("NCHW", "NHWC"), "color": ("RGB", "BGR"),
           "resize": ("stretch", "letterbox"), "box_format": ("xyxy", "yxyx", "cxcywh"),
           "score_activation": ("none", "softmax", "sigmoid"), "activation": ("none", "softmax")}


def _fail(src, key: str, fix: str):
    raise EdgekitError(f"model YAML {src}: '{key}' {fix}")


def _check_keys(src, where: str, data, allowed: set, required: set):
    if not isinstance(data, dict):
        _fail(src, where, "must be a mapping of keys")
    for k in data:
        if k not in allowed:
            _fail(src, f"{where}.{k}" if where else k, f"is not a known key: use {', '.join(sorted(allowed))}")
    for k in required - set(data):
        _fail(src, f"{where}.{k}" if where else k, "is missing: add it (see edgekit/runtime/model_yaml.py)")


def _choice(src, key: str, value, default):
    value = default if value is None else value
    if value not in CHOICES[key]:
        _fail(src, key, f"is {value!r}: use one of {', '.join(CHOICES[key])}")
    return value


def _triple(src, key: str, value, default):
    value = default if value is None else value
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
        _fail(src, key, f"is {value!r}: give three numbers, one per channel")
    return np.asarray(value, np.float32)


def read_spec(path: str | Path) -> dict:
    """Load and validate a model YAML into a normalised dict (model path resolved against the file).

    Example:
        >>> spec = read_spec("edgekit/assets/model_yaml/ultra-light-face-rfb320.yaml")
        >>> spec["input"]["size"], spec["output"]["box_format"]
        ([240, 320], 'xyxy')
    """
    import yaml

    src = Path(path)
    if not src.is_file():
        raise EdgekitError(f"model YAML {src} does not exist: give the path to a model description")
    try:
        data = yaml.safe_load(src.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EdgekitError(f"model YAML {src} is not valid YAML ({getattr(exc, 'problem', exc)}): fix the syntax") from None
    _check_keys(src, "", data, TOP, {"task", "input", "output"})
    task = _choice(src, "task", data["task"], None)
    _check_keys(src, "input", data["input"], INPUT, {"size"})
    inp = data["input"]
    size = inp["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        _fail(src, "input.size", f"is {size!r}: give [height, width] in pixels")
    spec_in = {"size": size, "layout": _choice(src, "layout", inp.get("layout"), "NCHW"),
               "color": _choice(src, "color", inp.get("color"), "RGB"), "mean": _triple(src, "input.mean", inp.get("mean"), (0, 0, 0)),
               "std": _triple(src, "input.std", inp.get("std"), (255, 255, 255)),
               "resize": _choice(src, "resize", inp.get("resize"), "stretch")}
    out = data["output"]
    if task == "detect":
        _check_keys(src, "output", out, DETECT_OUT, {"boxes", "scores"})
        spec_out = {"boxes": out["boxes"], "scores": out["scores"],
                    "box_format": _choice(src, "box_format", out.get("box_format"), "xyxy"),
                    "normalized": bool(out.get("normalized", True)),
                    "score_activation": _choice(src, "score_activation", out.get("score_activation"), "none"),
                    "background_class": out.get("background_class")}
    else:
        _check_keys(src, "output", out, CLASSIFY_OUT, {"logits"})
        spec_out = {"logits": out["logits"], "activation": _choice(src, "activation", out.get("activation"), "softmax")}
    names = data.get("names") or []
    if isinstance(names, str):
        labels = (src.parent / names)
        if not labels.is_file():
            _fail(src, "names", f"names the file {labels}, which does not exist: give a list or an existing labels file")
        names = [ln.strip() for ln in labels.read_text(encoding="utf-8").splitlines() if ln.strip()]
    elif not isinstance(names, list):
        _fail(src, "names", "must be a list of class names or a labels file path")
    model = data.get("model")
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

    def _output(self, outs: list[np.ndarray], key: str) -> np.ndarray:
        ref = self.spec["output"][key]
        k = ref if isinstance(ref, int) else self._index.get(ref)
        if k is None or not 0 <= k < len(outs):
            raise EdgekitError(f"model YAML {self.spec['path']}: output.{key} '{ref}' is not an output of the model "
                               f"(it has {', '.join(self._index)})")
        return np.asarray(outs[k], np.float32)

    def _tensor(self, image: np.ndarray):
        from edgekit.runtime.preprocess import letterbox

        inp = self.spec["input"]
        h, w = inp["size"]
        if inp["resize"] == "letterbox":
            img, lb = letterbox(image, (h, w))
        else:
            import cv2

            img, lb = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR), None
        x = img[..., ::-1] if inp["color"] == "RGB" else img
        x = (x.astype(np.float32) - inp["mean"]) / inp["std"]
        x = x.transpose(2, 0, 1) if inp["layout"] == "NCHW" else x
        return np.ascontiguousarray(x[None]), lb

    def predict_one(self, image: np.ndarray, conf: float = 0.5, iou: float = 0.45, classes=None, max_det: int = 300,
                    k: int = 5):
        x, lb = self._tensor(image)
        outs = self.backend.run([x])
        if self.task == "classify":
            from edgekit.runtime.classify import postprocess_classification

            logits = self._output(outs, "logits").reshape(-1)
            r = postprocess_classification(logits if self.spec["output"]["activation"] == "softmax" else np.log(
                np.clip(logits, 1e-12, None)), k=k)
            return Classification(r["classes"], r["scores"], r["label"], self.names)
        return self._detections(outs, image.shape[:2], lb, conf, iou, classes, max_det)

    def _detections(self, outs, hw, lb, conf, iou, classes, max_det) -> Detections:
        from edgekit.runtime.boxes import cxcywh_to_xyxy, nms
        from edgekit.runtime.preprocess import boxes_from_letterbox

        o = self.spec["output"]
        boxes = self._output(outs, "boxes").reshape(-1, 4)
        scores = self._output(outs, "scores").reshape(boxes.shape[0], -1)
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
        ids = np.arange(scores.shape[1])
        if o["background_class"] is not None:
            keep_cols = ids != int(o["background_class"])
            scores, ids = scores[:, keep_cols], ids[keep_cols]
            ids = np.arange(len(ids))  # class ids count the foreground classes from 0, as names do
        best = scores.argmax(1)
        score = scores[np.arange(len(scores)), best]
        keep = score >= conf
        if classes is not None:
            keep &= np.isin(best, np.asarray(list(classes)))
        b, s, c = boxes[keep], score[keep], best[keep]
        sel = nms(b, s, c, iou)[:max_det] if len(b) else np.zeros(0, np.int64)
        b, s, c = b[sel], s[sel], c[sel]
        h, w = hw
        if lb is not None:
            b = boxes_from_letterbox(b, lb)
        else:
            b = (b * np.array([w / iw, h / ih, w / iw, h / ih], np.float32)).clip(0, [w, h, w, h])
        return Detections(b, s, c, self.names, hw)

    def describe(self) -> dict:
        inp = self.spec["input"]
        return {"task": self.task, "kind": "model-yaml", "spec": self.spec["path"], "artifact": str(self.backend.path),
                "classes": len(self.names), "input": {"shape": [1, 3, *inp["size"]] if inp["layout"] == "NCHW" else
                                                      [1, *inp["size"], 3], "layout": inp["layout"], "dtype": "float32",
                                                      "resize": inp["resize"]},
                **self.backend.describe()}
