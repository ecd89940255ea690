"""``edgekit train --task classify``: train a registered classifier on an image-folder dataset.

The detector trainer's habits, for classifiers: the shared letterbox from
``edgekit.runtime.preprocess`` (the pixels the board will see), flip + small HSV jitter
from ``edgekit.train.augment``, AdamW with warm-up and a cosine schedule, label smoothing,
EMA weights, optional class-balanced sampling (Fish4Knowledge is 75 % one species), top-1
and top-5 on the validation split every epoch, atomic ``weights/{best,last}.pt`` carrying
the detector checkpoints' metadata plus ``task: "classify"``, ``results.json``/``.csv``
per epoch and ``--resume``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from edgekit.errors import EdgekitError
from edgekit.train.augment import AugmentOptions


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
        import cv2

        from edgekit.runtime.preprocess import letterbox

        img = self._images.get(i)
        if img is None:
            raw = cv2.imread(str(self.items[i][0]), cv2.IMREAD_COLOR)
            if raw is None:
                raise EdgekitError(f"cannot decode {self.items[i][0]}: remove or replace the file")
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


def fitness(metrics: dict) -> float:
    return 0.9 * (metrics["top1"] or 0.0) + 0.1 * (metrics["top5"] or 0.0)


def _setup(opts: ClassifyOptions):
    """Dataset, run folder, options (restored on resume), model, and the resume checkpoint."""
    from edgekit.data.folders import load_image_folder
    from edgekit.models import create_model, list_models, model_task
    from edgekit.models.checkpoint import model_from_checkpoint, read_checkpoint
    from edgekit.train.loop import resolve_out
    from edgekit.train.trainer import restore_options

    if model_task(opts.model) != "classify":
        raise EdgekitError(f"model '{opts.model}' is a detector: train it with --task detect, or pick a classifier "
                           f"({', '.join(list_models(task='classify'))})")
    out = resolve_out(opts, 0, 1)
    resume = read_checkpoint(out / "weights" / "last.pt") if opts.resume else None
    if resume is not None:
        if resume.get("task") != "classify":
            raise EdgekitError(f"{out} holds a detector run: resume it with --task detect")
        opts = restore_options(ClassifyOptions, resume["train_options"], out, opts.epochs, opts.progress)
    ds = load_image_folder(opts.data)
    if resume is not None and ds.names != list(resume["names"]):
        raise EdgekitError(f"{opts.data} now has classes {ds.names}, the run was trained on {resume['names']}: "
                           "restore the dataset or start a new run")
    if resume is not None:
        model, kwargs = model_from_checkpoint(resume).train(), dict(resume["model_kwargs"])
    else:
        kwargs = {**opts.model_kwargs, "imgsz": opts.imgsz}
        model = create_model(opts.model, num_classes=ds.num_classes, **kwargs)
    return opts, ds, out, model, kwargs, resume


def train_classifier(opts: ClassifyOptions) -> dict:
    """Train ``opts.model`` on the image folders in ``opts.data``; returns the summary (paths, last row).

    Example:
        >>> train_classifier(ClassifyOptions("mobilenetv2-cls", "crops/", imgsz=32, epochs=2))  # doctest: +SKIP
        {'out': 'runs/train/mobilenetv2-cls', 'best': '.../weights/best.pt', ...}
    """
    from tqdm import tqdm

    from edgekit import __version__
    from edgekit.data.folders import items_hash
    from edgekit.train.trainer import (ModelEMA, cosine_lr, load_history, optimizer_step, param_groups, save_best_last,
                                       warmup_iters, write_results)
    from edgekit.validate_classify import validate_classifier

    if opts.threads:
        torch.set_num_threads(opts.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise EdgekitError("classifier training runs in one process: run `edgekit train --task classify` without torchrun")
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise EdgekitError("--device cuda asked for, but torch sees no CUDA device: use --device cpu")
    device = torch.device(opts.device if opts.device.startswith("cuda") else "cpu")
    opts, ds, out, model, kwargs, resume = _setup(opts)
    torch.manual_seed(opts.seed)
    train_items = ds.split("train")[:opts.max_train_images or None]
    val_name = "val" if "val" in ds.splits else "test" if "test" in ds.splits else None  # no val/: score on test/
    if val_name is None:
        raise EdgekitError(f"{opts.data} has no val/ (or test/) folder: add one, with a sub-folder per class, to validate on")
    val_items = ds.split(val_name)
    model = model.to(device)
    ema = ModelEMA(model, updates=resume["ema_updates"] if resume else 0)
    optimizer = torch.optim.AdamW(param_groups(model, opts.weight_decay), lr=opts.lr)
    start_epoch, best, history = 0, -1.0, []
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        start_epoch, best = resume["epoch"] + 1, resume["best_fitness"]
        history = load_history(out, start_epoch)
    train_set = ClassifyTrainSet(train_items, opts.imgsz, augment=opts.augment, seed=opts.seed)
    sampler = balanced_sampler(train_items, ds.num_classes, opts.seed) if opts.balanced else None
    loader = DataLoader(train_set, batch_size=opts.batch, shuffle=sampler is None, sampler=sampler,
                        num_workers=opts.workers, drop_last=len(train_set) > opts.batch,
                        generator=torch.Generator().manual_seed(opts.seed))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=opts.label_smoothing)
    nb = len(loader)
    total = max(opts.epochs * nb, 1)
    warmup = warmup_iters(opts.warmup_epochs, nb, total)
    dhash = items_hash(train_items)
    (out / "weights").mkdir(parents=True, exist_ok=True)
    summary = {"out": str(out), "best": str(out / "weights" / "best.pt"), "last": str(out / "weights" / "last.pt"),
               "epochs": start_epoch, "val": history[-1] if history else None}
    for epoch in range(start_epoch, opts.epochs):
        t0 = time.time()
        model.train()
        train_set.epoch = epoch
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{opts.epochs}", disable=not opts.progress, leave=False)
        for i, (x, y) in enumerate(bar):
            for g in optimizer.param_groups:
                g["lr"] = cosine_lr(epoch * nb + i, total, warmup, opts.lr)
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer_step(model, optimizer, ema, loss, epoch, "check the images")
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
        m = validate_classifier(ema.ema, val_items, ds.names, opts.imgsz, device=str(device))
        row = {"epoch": epoch + 1, "loss": round(loss_sum / max(seen, 1), 5), "train_top1": round(correct / max(seen, 1), 5),
               "top1": m["top1"], "top5": m["top5"], "lr": round(cosine_lr(epoch * nb + nb - 1, total, warmup, opts.lr), 7),
               "epoch_s": round(time.time() - t0, 1)}
        history.append(row)
        write_results(out, history)
        ck = {"model": opts.model, "task": "classify", "model_kwargs": kwargs, "names": list(ds.names),
              "imgsz": opts.imgsz, "head_spec": dict(model.head_spec),
              "state_dict": {k: v.detach().cpu().clone() for k, v in ema.ema.state_dict().items()},
              "epoch": epoch, "metrics": {val_name: {"top1": m["top1"], "top5": m["top5"]}},
              "data": {"source": str(opts.data), "train_hash": dhash, "val_split": val_name},
              "train_options": asdict(opts), "edgekit_version": __version__, "ema_updates": ema.updates}
        best = save_best_last(out, ck, fitness(m), best, optimizer)
        if opts.progress:
            print(f"epoch {epoch + 1}/{opts.epochs}  loss {row['loss']:.4f}  {val_name} top1 {m['top1']:.4f} "
                  f"top5 {m['top5']:.4f}  {row['epoch_s']:.0f}s", flush=True)
        summary.update(epochs=epoch + 1, val=row)
    return summary
