"""``edgekit train``: train a registered detector on a dataset.

AdamW with warm-up and a cosine schedule, EMA weights, validation every epoch through the
shared post-processing and mAP, atomic ``weights/{best,last}.pt``, ``results.json``/``.csv``
per epoch, ``--resume``, and data-parallel training under ``torchrun`` (gloo on CPU).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.train.augment import AugmentOptions


@dataclass
class TrainOptions:
    """Everything ``edgekit train`` takes. Example: ``TrainOptions("yolo-lite", "data.yaml", imgsz=128, epochs=2)``."""

    model: str
    data: str
    imgsz: int = 320
    epochs: int = 50
    batch: int = 16
    out: str | None = None
    device: str = "cpu"
    resume: bool = False
    workers: int = 1
    threads: int | None = None  # torch intra-op threads; None: torch's default
    lr: float = 0.002
    weight_decay: float = 0.0005
    warmup_epochs: float = 2.0
    anchors: str = "kmeans"  # "kmeans" on the training labels, or "default"
    model_kwargs: dict = field(default_factory=dict)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    seed: int = 0
    progress: bool = True
    max_train_images: int | None = None  # a quick subset, for smoke tests
    weights: str | None = None  # start from this checkpoint's weights and anchors (fine-tuning)


class ModelEMA:
    """Exponential moving average of the weights (YOLOv5's: decay ramps up over ``tau`` updates)."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0):
        self.ema = deepcopy(model).eval()
        self.decay, self.tau, self.updates = decay, tau, updates
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        with torch.no_grad():
            for k, v in self.ema.state_dict().items():
                if v.dtype.is_floating_point:
                    v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
                else:
                    v.copy_(msd[k])


def data_hash(records) -> str:
    """A short hash of a split's image names and labels: which data a checkpoint saw."""
    h = hashlib.sha256()
    for r in records:
        h.update(r.path.name.encode())
        h.update(r.boxes.tobytes())
        h.update(r.classes.tobytes())
    return h.hexdigest()[:16]


def fit_anchors(records, imgsz: int, n: int, seed: int = 0) -> list[list[float]]:
    """k-means anchors (input pixels at ``imgsz``) from the training boxes."""
    from edgekit.models.anchors import kmeans_anchors

    wh = []
    for r in records:
        scale = imgsz / max(r.width, r.height)
        b = r.boxes[r.valid_mask()]
        wh.append((b[:, 2:] - b[:, :2]) * scale)
    wh = np.concatenate(wh) if wh else np.zeros((0, 2))
    if len(wh) < n:
        raise EdgekitError(f"only {len(wh)} training boxes, fewer than the {n} anchors to fit: use --anchors default")
    return np.asarray(kmeans_anchors(wh, n, seed=seed)).round(2).tolist()


def param_groups(model: nn.Module, weight_decay: float):
    """No weight decay on biases and normalisation weights."""
    decay, no_decay = [], []
    for mod in model.modules():
        for name, p in mod.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            (no_decay if name == "bias" or isinstance(mod, nn.modules.batchnorm._BatchNorm) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def next_run_dir(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``... whichever does not exist yet."""
    if not base.exists():
        return base
    k = 2
    while base.with_name(f"{base.name}-{k}").exists():
        k += 1
    return base.with_name(f"{base.name}-{k}")


def write_results(out: Path, history: list[dict]) -> None:
    """results.json and results.csv, one row per epoch, written atomically."""
    from edgekit.io import atomic_write_text

    atomic_write_text(out / "results.json", json.dumps(history, indent=1))
    keys = list(history[0])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(history)
    atomic_write_text(out / "results.csv", buf.getvalue())


def cosine_lr(it: int, total: int, warmup: int, lr: float) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` iterations, then cosine down to 1 % of it.

    Example:
        >>> [round(cosine_lr(i, 10, 2, 1.0), 3) for i in (0, 1, 2, 9)]
        [0.5, 1.0, 1.0, 0.048]
    """
    if it < warmup:
        return lr * (it + 1) / warmup
    frac = (it - warmup) / max(total - warmup, 1)
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac)))


def warmup_iters(warmup_epochs: float, batches_per_epoch: int, total: int) -> int:
    """Warm-up length in iterations: ``warmup_epochs`` worth, at most a third of the run.

    Example:
        >>> warmup_iters(2.0, 80, 800), warmup_iters(2.0, 8, 16)
        (160, 5)
    """
    return min(max(int(warmup_epochs * batches_per_epoch), 1), max(total // 3, 1))


def restore_options(cls, saved: dict, out: Path, epochs: int, progress: bool):
    """The options of a run being resumed: as saved (augmentation included), ``epochs`` if larger."""
    return cls(**{**saved, "augment": AugmentOptions(**saved["augment"]), "resume": True,
                  "epochs": max(epochs, saved["epochs"]), "out": str(out), "progress": progress})


def load_history(out: Path, start_epoch: int) -> list[dict]:
    """The per-epoch rows a resumed run already wrote (rows past its checkpoint are dropped)."""
    path = out / "results.json"
    return json.loads(path.read_text())[:start_epoch] if path.exists() else []


def optimizer_step(model: nn.Module, optimizer, ema: ModelEMA, loss: torch.Tensor, epoch: int, hint: str) -> None:
    """Backward, clip, step and EMA update; a non-finite loss is a clear error (``hint`` says what to check)."""
    if not torch.isfinite(loss):
        raise EdgekitError(f"the loss became {float(loss)} at epoch {epoch + 1}: lower --lr or {hint}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    optimizer.step()
    ema.update(model)


def save_best_last(out: Path, ck: dict, fit: float, best: float, optimizer) -> float:
    """Write ``last.pt`` (with the optimizer) and, when ``fit`` beats ``best``, ``best.pt``; returns the new best."""
    from edgekit.models.checkpoint import save_checkpoint

    if fit > best:
        best = fit
        save_checkpoint(out / "weights" / "best.pt", {**ck, "best_fitness": best})
    save_checkpoint(out / "weights" / "last.pt", {**ck, "best_fitness": best, "optimizer": optimizer.state_dict()})
    return best


def fitness(metrics: dict) -> float:
    return 0.1 * metrics["map50"] + 0.9 * metrics["map50_95"]


def train(opts: TrainOptions) -> dict:
    """Train ``opts.model`` on ``opts.data``; returns the final summary (paths and metrics).

    Example:
        >>> from edgekit.data import sample_data_yaml
        >>> train(TrainOptions("yolo-lite", str(sample_data_yaml()), imgsz=64, epochs=1, batch=8))  # doctest: +SKIP
    """
    from edgekit.train.loop import run_training

    return run_training(opts)
