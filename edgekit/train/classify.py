"""``edgekit train --task classify``: classification as a training task on an image-folder dataset.

The hooks of :class:`edgekit.train.task.TrainTask` for the registered classifiers: the
shared letterbox from ``edgekit.runtime.preprocess`` (the pixels the board will see), flip
+ small HSV jitter from ``edgekit.train.augment``, label smoothing, optional class-balanced
sampling (Fish4Knowledge is 75 % one species), top-1 and top-5 through
``edgekit.validate_classify``. The epoch loop, AdamW + warm-up + cosine LR, EMA, atomic
``weights/{best,last}.pt`` (the detector checkpoints' keys plus ``task: "classify"``),
``results.json``/``.csv`` and ``--resume`` are :mod:`edgekit.train.engine`'s, shared with
detection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from edgekit.errors import EdgekitError
from edgekit.train.augment import AugmentOptions
from edgekit.train.engine import run
from edgekit.train.task import LossFn, TrainTask


def default_augment() -> AugmentOptions:
    """Flip and a small HSV jitter; no zoom or shift: a thumbnail is already framed on its object."""
    return AugmentOptions(scale=0.0, translate=0.0, fliplr=0.5, hsv_h=0.015, hsv_s=0.4, hsv_v=0.3)


@dataclass
class ClassifyOptions:
    """Everything ``edgekit train --task classify`` takes.

    Example:
        >>> ClassifyOptions("mobilenetv2-cls", "crops/", imgsz=32, epochs=2).label_smoothing
        0.1
    """

    model: str
    data: str
    imgsz: int = 64
    epochs: int = 30
    batch: int = 64
    out: str | None = None
    device: str = "cpu"
    resume: bool = False
    workers: int = 0
    lr: float = 0.002
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    balanced: bool = False  # sample each class equally often (with replacement)
    model_kwargs: dict = field(default_factory=dict)
    augment: AugmentOptions = field(default_factory=default_augment)
    seed: int = 0
    threads: int | None = None  # torch threads; threads + loader workers <= cores on a small host
    bf16: bool = False  # forward + loss under bf16 autocast (see TrainOptions)
    freeze: int | str | None = None  # 'backbone': train the head only (see TrainOptions)
    progress: bool = True
    max_train_images: int | None = None  # a quick subset, for smoke tests


class ClassifyTrainSet(Dataset):
    """Letterboxed (and, with ``augment``, flipped and HSV-jittered) images with their class index.

    Letterboxed images are cached: thumbnails at 64x64 take 12 KB each, and decoding would
    otherwise cost more than the forward pass of a small classifier.

    Example:
        >>> import tempfile, pathlib
        >>> from edgekit.data import sample_data_yaml
        >>> from edgekit.data.crops import make_crops
        >>> from edgekit.data.folders import load_image_folder
        >>> ds = load_image_folder(make_crops(sample_data_yaml(), pathlib.Path(tempfile.mkdtemp()) / "c", splits=["train"]))
        >>> x, y = ClassifyTrainSet(ds.split("train"), 32)[0]
        >>> tuple(x.shape), y
        ((3, 32, 32), 0)
    """

    def __init__(self, items: list[tuple[Path, int]], imgsz: int, augment: AugmentOptions | None = None,
                 seed: int = 0, cache: bool = True):
        self.items, self.imgsz, self.augment, self.seed, self.cache = items, imgsz, augment, seed, cache
        self.epoch = 0
        self._images: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    def load(self, i: int) -> np.ndarray:
        """The letterboxed image ``i`` (BGR uint8)."""
        from edgekit.runtime.model import read_image
        from edgekit.runtime.preprocess import letterbox

        img = self._images.get(i)
        if img is None:
            raw = read_image(self.items[i][0])  # the one reader: the pixel limit before decoding
            img = letterbox(raw, self.imgsz)[0]
            if self.cache:
                self._images[i] = img
        return img

    def __getitem__(self, i: int):
        from edgekit.runtime.preprocess import to_tensor
        from edgekit.train.augment import augment

        img = self.load(i)
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, i))  # reproducible, distinct per epoch
            img = augment(img, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), rng, self.augment)[0]
        return torch.from_numpy(to_tensor(img)[0]), int(self.items[i][1])


def balanced_sampler(items: list[tuple[Path, int]], num_classes: int, seed: int):
    """A sampler drawing every class equally often (classes without images never)."""
    labels = np.array([c for _, c in items], np.int64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = 1.0 / counts[labels]
    return torch.utils.data.WeightedRandomSampler(torch.from_numpy(weights), len(items), replacement=True,
                                                  generator=torch.Generator().manual_seed(seed))


class ClassificationTask(TrainTask):
    """The classification hooks: image folders, cross-entropy with label smoothing, top-1/top-5.

    Fitness is ``0.9 * top1 + 0.1 * top5``. Validation uses ``val/``, or ``test/`` when the
    dataset has no ``val/``. The checkpoint adds ``task: "classify"``, ``metrics: {<split>:
    {top1, top5}}`` and ``data.val_split`` to the engine's keys. Runs in one process: the
    class-balanced sampler has no distributed form.

    Example:
        >>> task = ClassificationTask(ClassifyOptions("mobilenetv2-cls", "crops/"))
        >>> task.fitness({"top1": 0.5, "top5": 1.0})
        0.55
    """

    name = "classify"
    supports_ddp = False
    ddp_refusal = "classifier training runs in one process: run `edgekit train --task classify` without torchrun"
    nan_hint = "check the images"

    def load_data(self) -> None:
        from edgekit.data.folders import items_hash, load_image_folder

        opts = self.opts
        ds = load_image_folder(opts.data)
        self.num_classes = ds.num_classes
        self.train_items = ds.split("train")[:opts.max_train_images or None]
        self.val_split = "val" if "val" in ds.splits else "test" if "test" in ds.splits else None  # no val/: test/
        if self.val_split is None:
            raise EdgekitError(f"{opts.data} has no val/ (or test/) folder: add one, with a sub-folder per class, to validate on")
        self.val_items = ds.split(self.val_split)
        self.names = list(ds.names)
        self.data_info = {"source": str(opts.data), "train_hash": items_hash(self.train_items), "val_split": self.val_split}

    def build_model(self, resume: dict | None) -> nn.Module:
        from edgekit.models import create_model
        from edgekit.models.checkpoint import model_from_checkpoint

        if resume is not None:
            self.model_kwargs = dict(resume["model_kwargs"])
            return model_from_checkpoint(resume).train()
        self.model_kwargs = {**self.opts.model_kwargs, "imgsz": self.opts.imgsz}
        return create_model(self.opts.model, num_classes=len(self.names), **self.model_kwargs)

    def get_loss(self, model: nn.Module) -> LossFn:
        ce = torch.nn.CrossEntropyLoss(label_smoothing=self.opts.label_smoothing)

        def loss_fn(net, batch, device):
            x, y = batch
            x, y = x.to(device), y.to(device)
            logits = net(x)
            loss = ce(logits, y)
            # sums over images, so the epoch's columns are per-image means even with a short last batch
            return loss, {"loss": float(loss.detach()) * len(y), "correct": float((logits.argmax(1) == y).sum()),
                          "seen": float(len(y))}

        return loss_fn

    def get_dataset(self) -> ClassifyTrainSet:
        return ClassifyTrainSet(self.train_items, self.opts.imgsz, augment=self.opts.augment, seed=self.opts.seed)

    def get_sampler(self):
        return balanced_sampler(self.train_items, self.num_classes, self.opts.seed) if self.opts.balanced else None

    def train_columns(self, sums: dict[str, float], batches: int) -> dict:
        seen = max(sums.get("seen", 0.0), 1.0)
        return {"loss": round(sums.get("loss", 0.0) / seen, 5), "train_top1": round(sums.get("correct", 0.0) / seen, 5)}

    def evaluate(self, model: nn.Module, device: torch.device) -> dict:
        from edgekit.validate_classify import validate_classifier

        return validate_classifier(model, self.val_items, self.names, self.opts.imgsz, device=str(device))

    def fitness(self, metrics: dict) -> float:
        return fitness(metrics)

    def val_columns(self, metrics: dict) -> dict:
        return {"top1": metrics["top1"], "top5": metrics["top5"]}

    def checkpoint_extras(self, metrics: dict) -> dict:
        return {"task": "classify", "metrics": {self.val_split: {"top1": metrics["top1"], "top5": metrics["top5"]}}}

    def epoch_line(self, row: dict) -> str:
        return f"loss {row['loss']:.4f}  {self.val_split} top1 {row['top1']:.4f} top5 {row['top5']:.4f}"


def fitness(metrics: dict) -> float:
    """``0.9 * top1 + 0.1 * top5``; a split without images (None) counts as 0.

    Example:
        >>> fitness({"top1": None, "top5": None})
        0.0
    """
    return 0.9 * (metrics["top1"] or 0.0) + 0.1 * (metrics["top5"] or 0.0)


def train_classifier(opts: ClassifyOptions) -> dict:
    """Train ``opts.model`` on the image folders in ``opts.data``; returns the summary (paths, last row).

    The same engine as detection (:func:`edgekit.train.engine.run`) with the classification hooks.

    Example:
        >>> train_classifier(ClassifyOptions("mobilenetv2-cls", "crops/", imgsz=32, epochs=2))  # doctest: +SKIP
        {'out': 'runs/train/mobilenetv2-cls', 'best': '.../weights/best.pt', ...}
    """
    return run(ClassificationTask(opts))
