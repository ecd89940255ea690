"""``Detector`` and ``Classifier``: an exported artifact (or the torch reference) behind ``predict``.

Both wrap an :class:`~edgekit.runtime.runner.ArtifactRunner` (the manifest's resize, letterbox or
stretch, and quantization contract, the code the export verifier scored) and the numpy post-processing
written once (:mod:`edgekit.runtime.postprocess`, :mod:`edgekit.runtime.classify`).
``last_timing`` holds the pre/inference/post split of the latest image, in milliseconds,
for benchmarks.
"""

from __future__ import annotations

import time

import numpy as np

from edgekit.runtime.classify import postprocess_classification
from edgekit.runtime.decode import CandidateDecoder
from edgekit.runtime.model import RuntimeModel
from edgekit.runtime.postprocess import postprocess_detections
from edgekit.runtime.results import Classification, Detections


class _ManifestModel(RuntimeModel):
    # the clock of ``last_timing``: wall time; a benchmark may set time.thread_time for the CPU-time split
    clock = staticmethod(time.perf_counter)

    def __init__(self, runner):
        self.runner = runner
        self.manifest = runner.manifest
        self.names = list(self.manifest.get("names") or [])
        self.last_timing: dict[str, float] = {}

    def _run(self, image: np.ndarray, prepared=None, raw: bool = False):
        t0 = self.clock()
        # prepared: (tensor, letterbox) made ahead by the video loop's capture thread, overlapping inference
        # made here, the tensor goes to the interpreter at once: the thread's kept tensor will do (no allocation)
        x, lb = self.runner.prepare(image, reuse=True) if prepared is None else prepared
        t1 = self.clock()
        # raw: (integer outputs, their quantization) for a decoder that dequantizes only what it reads
        outs = self.runner.run_raw(x) if raw else self.runner.run_tensor(x)
        t2 = self.clock()
        return outs, lb, (t0, t1, t2)

    def _timed(self, stamps, t3: float) -> None:
        t0, t1, t2 = stamps
        self.last_timing = {"pre_ms": (t1 - t0) * 1e3, "infer_ms": (t2 - t1) * 1e3, "post_ms": (t3 - t2) * 1e3}

    def describe(self) -> dict:
        """What really runs: backend + version, delegate/device, precision, threads, I/O layout and dtype.

        Example:
            >>> load("fish-tflite-int8.tflite").describe()["backend"]  # doctest: +SKIP
            'litert'
        """
        man = self.manifest
        inp = man["input"]
        return {"task": self.task, "model": man.get("model"), "target": man.get("target"),
                "artifact": str(self.runner.path), "artifact_precision": man.get("precision"),
                "input": {"shape": inp.get("shape"), "layout": inp.get("layout"), "dtype": inp.get("dtype"),
                          "quant": inp.get("quant"), "resize": self.runner.resize},
                "classes": len(self.names), **self.runner.backend.describe()}


class Detector(_ManifestModel):
    """An object detector: ``predict(image) -> Detections`` in original-image pixels.

    Example:
        >>> det = load("mobilenetv2_050-yolo-tflite-int8.tflite", threads=2)  # doctest: +SKIP
        >>> d = det.predict("fish.jpg", conf=0.3)  # doctest: +SKIP
        >>> d.boxes, d.labels  # doctest: +SKIP
    """

    task = "detect"
    _decoder = None

    def predict_one(self, image: np.ndarray, conf: float = 0.25, iou: float = 0.45, classes=None,
                    max_det: int = 300, prepared=None) -> Detections:
        return self.finish(self.infer(image, prepared), conf=conf, iou=iou, classes=classes, max_det=max_det)

    def infer(self, image: np.ndarray, prepared=None) -> tuple:
        """The first half of :meth:`predict_one`: preprocessing and the interpreter, raw outputs kept.

        The video loop runs this half in a thread of its own and :meth:`finish` in the loop's thread, so one
        frame's decoding, NMS and tracking overlap the next frame's inference.
        """
        (outs, quant), lb, stamps = self._run(image, prepared, raw=True)
        return outs, quant, lb, image.shape[:2], stamps

    def finish(self, inferred: tuple, conf: float = 0.25, iou: float = 0.45, classes=None,
               max_det: int = 300) -> Detections:
        """The second half of :meth:`predict_one`: decoding, NMS and the inverse letterbox of :meth:`infer`'s output."""
        outs, quant, lb, shape, stamps = inferred
        t2 = self.clock()
        if self._decoder is None:  # the decoder's per-cell tables are built once, not per frame
            self._decoder = CandidateDecoder(self.manifest["decode"])
        r = postprocess_detections(outs, self.manifest["decode"], lb, conf=conf, iou=iou, max_det=max_det, quant=quant,
                                   decoder=self._decoder)
        det = Detections(r["boxes"], r["scores"], r["classes"], self.names, shape)
        if classes is not None:
            det = det.filter(classes=classes)
        t0, t1, _ = stamps
        self.last_timing = {"pre_ms": (t1 - t0) * 1e3, "infer_ms": (stamps[2] - t1) * 1e3,
                            "post_ms": (self.clock() - t2) * 1e3}
        return det


class Classifier(_ManifestModel):
    """An image classifier: ``predict(image) -> Classification`` (top-k, and "unsure" when rejected).

    The reject thresholds come from the manifest (``edgekit calibrate-reject`` writes them)
    unless ``unsure`` is given: a float for every class, a per-class list, or False to never reject.

    Example:
        >>> clf = load("fish-cls-onnx.onnx")  # doctest: +SKIP
        >>> c = clf.predict("crop.jpg", k=3)  # doctest: +SKIP
        >>> c.name, c.unsure  # doctest: +SKIP
    """

    task = "classify"

    @property
    def reject_thresholds(self):
        """The calibrated per-class thresholds from the manifest, or None."""
        return (self.manifest.get("reject") or {}).get("thresholds")

    def predict_one(self, image: np.ndarray, k: int = 5, unsure=None) -> Classification:
        outs, _, stamps = self._run(image)
        threshold = self.reject_thresholds if unsure is None else (None if unsure is False else unsure)
        r = postprocess_classification(outs[0], k=k, unsure=threshold)
        res = Classification(r["classes"], r["scores"], r["label"], self.names)
        self._timed(stamps, self.clock())
        return res
