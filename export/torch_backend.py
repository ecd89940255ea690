"""torch backend (host only): run an edgekit checkpoint or Darknet .cfg as the reference.

It lives on the host side and reaches the runtime's registry through the ``edgekit.backends``
entry point in ``pyproject.toml``: the runtime never imports it by name. It lets ``edgekit.runtime.load("best.pt")`` and ``edgekit predict best.pt`` run the source
model through the same pre/post-processing as its artifacts, and gives the cold-start /
memory comparison its "through torch" side. Never used on a board: torch is imported only
when a ``.pt``/``.cfg`` is opened. :meth:`TorchBackend.manifest` writes the manifest an export
of this model would carry (float32 NCHW input, outputs in decode order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.source import load_source
from edgekit.runtime.backends import Backend, TensorInfo
from edgekit.runtime.runner import MANIFEST_FORMAT


class TorchBackend(Backend):
    """Run a checkpoint in torch (eval mode, no grad) with float32 NCHW input.

    ``imgsz`` overrides the checkpoint's input size (to compare with an artifact exported
    at another size); ``weights`` is the Darknet ``.weights`` beside a ``.cfg``.

    Example:
        >>> b = TorchBackend("runs/train/yolo-lite/weights/best.pt", threads=1)  # doctest: +SKIP
        >>> [o.shape for o in b.run([np.zeros(b.inputs[0].shape, np.float32)])]  # doctest: +SKIP
    """

    name = "torch"
    suffixes = (".pt", ".pth", ".cfg")
    extra = "train"
    packages = (("torch", "torch"),)
    host_only = True

    @classmethod
    def install_hint(cls) -> str:
        return f"{super().install_hint()} (torch is for the host, not the board)"

    def __init__(self, path, threads: int | None = None, delegate: str | None = None, device: str | None = None,
                 precision: str | None = None, fallback: bool = False, weights: str | None = None,
                 imgsz: int | None = None):
        import torch

        if delegate:
            raise EdgekitError(f"the torch reference backend has no delegate '{delegate}': drop --delegate")
        if device not in (None, "cpu", "CPU"):
            raise EdgekitError(f"the torch reference backend runs on the CPU only, not '{device}': drop --device")
        if threads:
            torch.set_num_threads(int(threads))
        self.path = Path(path)
        self.threads = threads
        self.source = load_source(self.path, imgsz=imgsz, weights=weights)
        h, w = self.source.imgsz
        self.inputs = [TensorInfo("images", (1, 3, h, w), "float32")]
        shapes = [o.shape for o in self.source.forward(np.zeros((1, 3, h, w), np.float32))]
        self.outputs = [TensorInfo(f"output{k}", tuple(s), "float32") for k, s in enumerate(shapes)]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.source.forward(np.ascontiguousarray(inputs[0], np.float32))

    def details(self) -> dict:
        return {"device": "cpu", "precision": "f32", "note": "host reference, not a board runtime"}

    def manifest(self) -> dict:
        """The manifest of the reference model: what an export of it would carry, minus conversion facts."""
        return source_manifest(self)


def source_manifest(backend: TorchBackend) -> dict:
    """The manifest of the reference model opened by ``backend`` (see :meth:`TorchBackend.manifest`)."""
    src = backend.source
    h, w = src.imgsz
    decode = src.head_spec if src.task == "detect" else {"type": "classify", "num_classes": len(src.names)}
    return {
        "format": MANIFEST_FORMAT, "task": src.task, "model": src.model, "target": "torch", "family": "torch",
        "precision": "fp32", "backend": "torch", "files": [backend.path.name],
        "input": {**backend.inputs[0].to_dict(), "layout": "NCHW"},
        "outputs": [{**o.to_dict(), "layout": "NCHW", "decode_index": k} for k, o in enumerate(backend.outputs)],
        "preprocess": {"imgsz": [h, w], "resize": src.resize, "pad_value": 114, "color": "RGB", "scale": 255.0,
                       "mean": [0.0, 0.0, 0.0]},
        "decode": decode, "names": list(src.names), "source": src.describe(),
    }
