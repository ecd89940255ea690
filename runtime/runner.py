"""Run an exported artifact by its manifest: preprocess, quantize, run, dequantize, reorder.

:class:`ArtifactRunner` is the one place that turns a manifest into the tensors a backend
wants and back into the float head maps the numpy decoder reads. The export verifier uses
it to score artifacts, and ``edgekit.runtime.load`` builds ``Detector``/``Classifier`` on it,
so an artifact is verified by the code that will run it on the board.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.backends import open_backend, read_embedded_manifest
from edgekit.runtime.contract import check_against_model, check_manifest
from edgekit.runtime.decode import dequantize
from edgekit.runtime.fastprep import FramePrep
from edgekit.runtime.preprocess import Letterbox, fit_image, to_tensor

MANIFEST_FORMAT = "edgekit-manifest-1"


def manifest_path(artifact: str | Path) -> Path:
    """The sidecar manifest of an artifact: ``<artifact>.json`` (``model.tflite.json``)."""
    return Path(str(artifact) + ".json")


def find_manifest(artifact: str | Path) -> dict | None:
    """The artifact's manifest from its sidecar JSON, else from inside the file; None when it has none.

    Raises EdgekitError for a manifest that exists but is unreadable or of another format.
    """
    side = manifest_path(artifact)
    if side.is_file():
        try:
            man = json.loads(side.read_text())
        except (OSError, ValueError) as exc:
            raise EdgekitError(f"{side} is not valid JSON ({exc}): re-export the model or delete the file") from None
    else:
        man = embedded_manifest(Path(artifact))
        if man is None:
            return None
    if not isinstance(man, dict) or man.get("format") != MANIFEST_FORMAT:
        fmt = man.get("format") if isinstance(man, dict) else None
        raise EdgekitError(f"{artifact}: manifest format {fmt!r} is not {MANIFEST_FORMAT}: re-export it")
    return man


def read_manifest(artifact: str | Path) -> dict:
    """The artifact's manifest (sidecar JSON, else embedded); an error naming the fix when it has none.

    Example:
        >>> read_manifest("yolo-lite-tflite-int8.tflite")["input"]["dtype"]  # doctest: +SKIP
        'int8'
    """
    man = find_manifest(artifact)
    if man is None:
        raise EdgekitError(f"{artifact} has no edgekit manifest (no {manifest_path(artifact).name} beside it, none inside): "
                           "export it with `edgekit export`, or describe it with a model YAML (--spec)")
    return man


def embedded_manifest(path: Path) -> dict | None:
    """The manifest stored inside the artifact by its format's backend (TFLite metadata, OpenVINO
    rt_info, ONNX metadata_props), or None. Read without opening an interpreter.
    """
    return read_embedded_manifest(path)


class ArtifactRunner:
    """A backend plus the manifest's pre/post contract: image in, float head maps out.

    Example:
        >>> r = ArtifactRunner("yolo-lite-onnx.onnx")  # doctest: +SKIP
        >>> maps, lb = r.infer(cv2.imread("fish.jpg"))  # doctest: +SKIP
    """

    def __init__(self, artifact: str | Path, manifest: dict | None = None, backend=None, **options):
        self.path = Path(artifact)
        self.manifest = manifest or read_manifest(artifact)
        # a sidecar is what a user edits or copies: name it in errors; else the artifact holds the manifest
        where = manifest_path(artifact) if manifest_path(artifact).is_file() else self.path
        check_manifest(self.manifest, where)
        if backend is None or isinstance(backend, str):
            self.backend = open_backend(self.path, backend or self.manifest.get("backend"), **options)
        else:  # an already opened backend (the torch reference builds its manifest from it)
            self.backend = backend
        check_against_model(self.manifest, self.backend, where)
        inp = self.manifest["input"]
        self.layout, self.dtype = inp["layout"], inp["dtype"]
        self.quant = tuple(inp["quant"]) if inp.get("quant") else None
        pre = self.manifest["preprocess"]
        self.imgsz = tuple(pre["imgsz"])
        self.pad_value = int(pre.get("pad_value", 114))
        # manifests written before the key existed were all letterboxed
        self.resize = pre.get("resize", "letterbox")
        # BGR: the export folded OpenCV's order into the graph (--input-color BGR), frames go in unswapped
        self.rgb = pre.get("color", "RGB") == "RGB"
        # artifact output k feeds decoder input decode_index; None keeps the artifact's order
        self.order = [o.get("decode_index", k) for k, o in enumerate(self.manifest["outputs"])]
        self._prep = None

    def prepare(self, image: np.ndarray, reuse: bool = False) -> tuple[np.ndarray, Letterbox]:
        """BGR HxWx3 uint8 image -> (model input tensor, letterbox): :meth:`fit` + :meth:`tensor`'s
        values, through reused buffers (:class:`~edgekit.runtime.fastprep.FramePrep`). ``reuse``: the tensor
        may be this thread's kept one, overwritten by its next call (for a caller that runs it at once)."""
        if self._prep is None:
            self._prep = FramePrep(self.imgsz, self.layout, self.dtype, quant=self.quant, pad_value=self.pad_value,
                                   resize=self.resize, rgb=self.rgb)
        return self._prep(image, reuse)

    def fit(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The image fitted to the input as the manifest says (``preprocess.resize``: letterbox or stretch)."""
        return fit_image(image, self.imgsz, self.resize, self.pad_value)

    def tensor(self, letterboxed: np.ndarray) -> np.ndarray:
        """A letterboxed BGR image as this artifact's input (layout, dtype, quantization)."""
        return to_tensor(letterboxed, self.layout, self.dtype, rgb=self.rgb, quant=self.quant)

    def run_tensor(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one prepared input; float32 outputs in decoder order (dequantized)."""
        raw, quant = self.run_raw(x)
        return [dequantize(arr, q) for arr, q in zip(raw, quant)]

    def run_raw(self, x: np.ndarray) -> tuple[list[np.ndarray], list]:
        """Run one prepared input; (outputs as the backend gives them, their ``(scale, zero_point)`` or None),
        both in decoder order: the video loop's decoder dequantizes only the cells it reads."""
        raw = self.backend.run([x])
        outs: list = [None] * len(raw)
        quant: list = [None] * len(raw)
        for k, (arr, info) in enumerate(zip(raw, self.backend.outputs)):
            outs[self.order[k]] = np.asarray(arr)
            quant[self.order[k]] = info.quant
        return outs, quant

    def infer(self, image: np.ndarray) -> tuple[list[np.ndarray], Letterbox]:
        """Letterbox + run: (float head maps in decoder order, letterbox to undo)."""
        x, lb = self.prepare(image)
        return self.run_tensor(x), lb

    def describe(self) -> dict:
        return {**self.backend.describe(), "artifact": str(self.path), "target": self.manifest.get("target")}
