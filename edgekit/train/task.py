"""The hooks a task gives the training engine (YOLOX's ``Exp``: the task says *what*, the engine *how*).

:func:`edgekit.train.engine.run` owns everything that is the same for every task: the run
folder, devices and DDP, the optimizer and its parameter groups, warm-up + cosine LR, EMA,
the epoch loop, validation every epoch, fitness and ``best_fitness``, atomic
``weights/{best,last}.pt``, ``results.json``/``.csv`` and ``--resume``. A task subclasses
:class:`TrainTask` and fills in what differs: data, model, loss, evaluator, fitness and
its checkpoint keys. ``edgekit.train.detect.DetectionTask`` and
``edgekit.train.classify.ClassificationTask`` are the two built in.

The engine calls the hooks in this order::

    load_data()                     once, after a resumed run's options are restored
    build_model(resume)             fresh (--weights, anchors...) or from the resume checkpoint
    get_loss(model)                 once; the returned callable runs every training step
    get_dataset(), get_sampler()    the training set, and a sampler (None: shuffle)
    per epoch: loss_fn(net, batch, device) per batch, train_columns(sums, batches),
               evaluate(ema_model, device), fitness(metrics), val_columns(metrics),
               checkpoint_extras(metrics), epoch_line(row)
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

# one training step: (loss to back-propagate, additive statistics the engine sums over the epoch)
LossFn = Callable[[nn.Module, object, torch.device], "tuple[torch.Tensor, dict[str, float]]"]


class TrainTask:
    """Base class of the task hooks; the engine reads ``opts`` and the attributes below.

    ``opts`` is the task's options dataclass; the engine uses its ``model``, ``data``, ``imgsz``,
    ``epochs``, ``batch``, ``out``, ``device``, ``resume``, ``workers``, ``threads``, ``lr``,
    ``weight_decay``, ``warmup_epochs``, ``seed`` and ``progress`` fields, and restores all of them
    on ``--resume``. After :meth:`load_data`, ``names`` (class names) and ``data_info`` (the
    checkpoint's ``data`` entry: ``source``, ``train_hash``...) must be set; after
    :meth:`build_model`, ``model_kwargs`` (what ``create_model`` needs besides the class count).

    Example:
        >>> from edgekit.train.classify import ClassificationTask, ClassifyOptions
        >>> task = ClassificationTask(ClassifyOptions("mobilenetv2-cls", "crops/"))
        >>> task.name, task.supports_ddp
        ('classify', False)
    """

    name = "task"                 # the checkpoint's task; `edgekit train --task <name>`
    supports_ddp = True           # False: the engine refuses to run under torchrun
    ddp_refusal = ""              # the one-line reason given when it refuses
    betas = (0.9, 0.999)          # AdamW betas
    channels_last = False         # train in channels-last memory format
    collate_fn = None             # the DataLoader's (None: torch's default)
    nan_hint = "check the data"   # what to check when the loss stops being finite

    def __init__(self, opts):
        self.opts = opts
        self.names: list[str] = []
        self.data_info: dict = {}
        self.model_kwargs: dict = {}

    def load_data(self) -> None:
        """Read the dataset; set ``names``, ``data_info`` and the task's training/validation splits."""
        raise NotImplementedError

    def input_paths(self) -> list:
        """What training reads (``--data``, ``--weights``, the folders of its images): the run folder must
        be none of them, contain none, lie inside none (:func:`edgekit.io.check_output_not_input`)."""
        from pathlib import Path

        paths = [self.opts.data, getattr(self.opts, "weights", None)]
        for attr in ("train_records", "val_records"):  # detection: ImageRecords
            paths += dict.fromkeys(r.path.parent for r in getattr(self, attr, None) or [])
        for attr in ("train_items", "val_items"):  # classification: (path, class) pairs
            paths += dict.fromkeys(Path(p).parent for p, _ in getattr(self, attr, None) or [])
        return [p for p in paths if p]

    def build_model(self, resume: dict | None) -> nn.Module:
        """The model to train: a fresh one (``resume`` None) or the one of a resume checkpoint."""
        raise NotImplementedError

    def get_loss(self, model: nn.Module) -> LossFn:
        """``loss_fn(net, batch, device) -> (loss, stats)``: forward one batch and score it."""
        raise NotImplementedError

    def get_dataset(self) -> torch.utils.data.Dataset:
        """The training set; an ``epoch`` attribute, when it has one, is set before every epoch."""
        raise NotImplementedError

    def get_sampler(self) -> torch.utils.data.Sampler | None:
        """A training sampler for single-process runs (None: shuffle); DDP uses a distributed one."""
        return None

    def train_columns(self, sums: dict[str, float], batches: int) -> dict:
        """The training part of a results row (and of the progress bar) from the summed ``stats``."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, device: torch.device) -> dict:
        """Metrics of ``model`` (the EMA weights) on the validation split."""
        raise NotImplementedError

    def fitness(self, metrics: dict) -> float:
        """One number that ranks epochs: the highest is ``best.pt``."""
        raise NotImplementedError

    def val_columns(self, metrics: dict) -> dict:
        """The validation part of a results row."""
        raise NotImplementedError

    def checkpoint_extras(self, metrics: dict) -> dict:
        """Task-specific checkpoint keys (``metrics`` included), merged into the engine's common ones."""
        raise NotImplementedError

    def epoch_line(self, row: dict) -> str:
        """The losses and metrics of a results row, for the one-line-per-epoch progress output."""
        raise NotImplementedError
