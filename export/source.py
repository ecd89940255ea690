"""What an export starts from: an edgekit checkpoint, a Darknet ``.cfg`` (+ ``.weights``) or an ONNX file.

:func:`load_source` turns any of them into a :class:`Source`: the reference model (torch, or
onnxruntime for an ONNX source), its task, decoding ``head_spec``, class names, input size
and a content hash, which every artifact's manifest records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.input_size import input_hw


@dataclass
class Source:
    """A model to export and the reference its artifacts are verified against.

    Attributes:
        kind: ``checkpoint``, ``darknet`` or ``onnx``.
        path: the file given (the ``.cfg`` for Darknet).
        model: registered model name (or the cfg/onnx stem).
        task: ``detect`` or ``classify``.
        names: class names.
        imgsz: (h, w) input size.
        head_spec: how detector outputs decode (None for classifiers).
        sha256: hash of the weights file(s).
        module: eval-mode torch module (None for an ONNX source).
        onnx_path: the ONNX file of an ONNX source.
        resize: how an image becomes the input, ``letterbox`` or ``stretch`` (the model's own: a Darknet
            cfg stretches unless it says ``letterbox=1``); the manifest's ``preprocess.resize``.
    """

    kind: str
    path: Path
    model: str
    task: str
    names: list[str]
    imgsz: tuple[int, int]
    head_spec: dict | None
    sha256: str
    module: object = None
    onnx_path: Path | None = None
    extra: dict = field(default_factory=dict)
    resize: str = "letterbox"

    def forward(self, x: np.ndarray) -> list[np.ndarray]:
        """Reference outputs for a (1, 3, H, W) float input, as float32 arrays in decode order."""
        if self.module is not None:
            import torch

            from edgekit.export.wrap import as_list

            with torch.no_grad():
                return [o.float().numpy() for o in as_list(self.module(torch.from_numpy(x)))]
        if "session" not in self.extra:
            from edgekit.runtime.onnxruntime_backend import make_session

            self.extra["session"] = make_session(self.onnx_path)
        sess = self.extra["session"]
        return sess.run(None, {sess.get_inputs()[0].name: x})

    def describe(self) -> dict:
        """The manifest's ``source`` entry."""
        return {"kind": self.kind, "path": str(self.path), "model": self.model, "sha256": self.sha256}


def file_hash(*paths: Path) -> str:
    """sha256 (first 16 hex digits) over the bytes of one or more files."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def newest_best(runs: Path = Path("runs/train")) -> Path:
    """``best.pt`` of the most recent training run (what ``edgekit export`` uses with no MODEL)."""
    found = sorted(runs.glob("*/weights/best.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise EdgekitError(f"no MODEL given and no training run under {runs}/: give a checkpoint, a Darknet .cfg or an .onnx")
    return found[-1]


def load_source(model: str | Path | None, imgsz=None, weights: str | Path | None = None) -> Source:
    """Load an export source from a path (suffix decides: ``.pt``, ``.cfg``, ``.onnx``); ``imgsz`` (an int or
    (h, w)) overrides the source's own input size.

    Example:
        >>> src = load_source("runs/train/yolo-lite/weights/best.pt")  # doctest: +SKIP
        >>> src.task, src.imgsz  # doctest: +SKIP
        ('detect', (224, 224))
    """
    path = Path(model) if model else newest_best()
    if not path.exists():
        raise EdgekitError(f"{path} does not exist: give a checkpoint (.pt), a Darknet .cfg or an .onnx file")
    suffix = path.suffix.lower()
    if suffix == ".pt":
        src = _from_checkpoint(path)
    elif suffix == ".cfg":
        src = _from_darknet(path, weights)
    elif suffix == ".onnx":
        src = _from_onnx(path)
    else:
        raise EdgekitError(f"{path}: cannot export '{suffix}' files: give an edgekit checkpoint (.pt), a Darknet .cfg or an .onnx")
    hw = input_hw(imgsz) if imgsz else None
    if hw and src.kind == "onnx" and tuple(src.imgsz) != hw:
        raise EdgekitError(f"{path} has a fixed input of {src.imgsz}: re-export it from its checkpoint to change --imgsz")
    if hw:
        src.imgsz = hw
        if src.head_spec is not None:
            src.head_spec = {**src.head_spec, "imgsz": list(hw)}
    return src


def _from_checkpoint(path: Path) -> Source:
    from edgekit.models.checkpoint import load_checkpoint

    module, ckpt = load_checkpoint(path)
    task = ckpt.get("task", "detect")
    size = input_hw(ckpt["imgsz"])  # an int (square) or [h, w]
    spec = {**ckpt["head_spec"], "imgsz": list(size)} if task == "detect" else None
    name = ckpt["model"]
    if name == "darknet":  # trained from a .cfg: artifacts are named after the file (yolov4-tiny-onnx.onnx)
        name = Path(str(ckpt.get("model_kwargs", {}).get("cfg_name") or "darknet")).stem or name
    return Source("checkpoint", path, name, task, list(ckpt["names"]), size, spec, file_hash(path),
                  module=module, resize=getattr(module, "resize", "letterbox"))


def _from_darknet(cfg: Path, weights: str | Path | None) -> Source:
    from edgekit.models.darknet import load_darknet

    weights = Path(weights) if weights else cfg.with_suffix(".weights")
    if not weights.exists():
        raise EdgekitError(f"{cfg}: no weights at {weights}: put the .weights beside the .cfg (or pass --weights)")
    module = load_darknet(cfg, weights).eval()
    spec = dict(module.head_spec)
    names = _darknet_names(cfg, spec["num_classes"])
    return Source("darknet", cfg, cfg.stem, "detect", names, tuple(spec["imgsz"]), spec, file_hash(cfg, weights),
                  module=module, resize=module.resize)


def _darknet_names(cfg: Path, n: int) -> list[str]:
    """Class names from a ``.names`` file beside the cfg with the right count, else ``class0..``."""
    for cand in sorted(cfg.parent.glob("*.names")):
        names = [ln.strip() for ln in cand.read_text().splitlines() if ln.strip()]
        if len(names) == n:
            return names
    return [f"class{k}" for k in range(n)]


def _from_onnx(path: Path) -> Source:
    try:
        import onnx
    except ImportError:
        from edgekit.errors import MissingExtraError

        raise MissingExtraError("onnx", "export", "exporting from an ONNX file") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise EdgekitError(f"{path} is not a readable ONNX file ({str(exc).splitlines()[0][:120]})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if "edgekit_manifest" not in meta:
        raise EdgekitError(f"{path} has no edgekit manifest, so its pre/post-processing is unknown: "
                           "export from the checkpoint, or run it with a model YAML (edgekit predict --spec)")
    man = json.loads(meta["edgekit_manifest"])
    spec = man["decode"] if man["task"] == "detect" else None
    return Source("onnx", path, man.get("model", path.stem), man["task"], list(man["names"]),
                  tuple(man["preprocess"]["imgsz"]), spec, file_hash(path), onnx_path=path,
                  resize=man["preprocess"].get("resize", "letterbox"))
