"""Fine-tuning a pruned checkpoint: the training engine itself (``edgekit train --weights pruned.pt``)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from edgekit.prune.options import PruneOptions


def fine_tune(weights: Path, model_name: str, out: Path, epochs: int, imgsz: int, opts: PruneOptions) -> dict:
    """Train ``weights`` (a pruned checkpoint) for ``epochs`` into ``out``; returns the engine's summary.

    An interrupted fine-tune resumes from ``out/weights/last.pt``; a finished one returns its summary
    without training again (the engine's ``--resume`` contract).

    Example:
        >>> fine_tune(Path("step1/pruned.pt"), "yolo-lite", Path("step1"), 1, 64, opts)["best"]  # doctest: +SKIP
        'step1/weights/best.pt'
    """
    from edgekit.train import TrainOptions, train

    resume = (out / "weights" / "last.pt").exists()
    with contextlib.redirect_stdout(sys.stderr):  # the engine's epoch lines are progress, not prune's results
        return train(TrainOptions(model_name, opts.data, imgsz=imgsz, epochs=epochs, batch=opts.batch, out=str(out),
                                  resume=resume, workers=opts.workers, threads=opts.threads, bf16=opts.bf16, lr=opts.lr,
                                  warmup_epochs=min(0.5, epochs / 3), weights=str(weights), seed=opts.seed,
                                  progress=opts.progress, max_train_images=opts.max_train_images))
