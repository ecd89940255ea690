"""Old import paths of the training helpers, kept for scripts that use them (e.g. benchmarks/overfit_check.py).

New code imports from where they live: :mod:`edgekit.train.detect` (``TrainOptions``,
``fit_anchors``, ``data_hash``), :mod:`edgekit.train.optim` (``ModelEMA``, the LR schedule),
:mod:`edgekit.train.runs` (run folders, results, ``restore_options``) and
:mod:`edgekit.train.api` (``train``).
"""

from edgekit.train.api import train
from edgekit.train.detect import TrainOptions, data_hash, fit_anchors
from edgekit.train.optim import ModelEMA, cosine_lr, param_groups, warmup_iters
from edgekit.train.runs import load_history, next_run_dir, restore_options, write_results

__all__ = ["ModelEMA", "TrainOptions", "cosine_lr", "data_hash", "fit_anchors", "load_history", "next_run_dir",
           "param_groups", "restore_options", "train", "warmup_iters", "write_results"]
