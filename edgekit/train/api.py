"""``edgekit.train.train``: one entry point, the task picked by the options' type."""

from __future__ import annotations

from edgekit.train.classify import ClassificationTask, ClassifyOptions
from edgekit.train.detect import DetectionTask, TrainOptions
from edgekit.train.engine import run
from edgekit.train.task import TrainTask

# options type -> task; a new task is one module with its options and hooks, plus one line here
TASKS: dict[type, type[TrainTask]] = {TrainOptions: DetectionTask, ClassifyOptions: ClassificationTask}


def train(opts: TrainOptions | ClassifyOptions) -> dict:
    """Train ``opts.model`` on ``opts.data``; returns the final summary (paths, epochs, last results row).

    ``TrainOptions`` trains a detector, ``ClassifyOptions`` a classifier; both run through the
    one engine (:func:`edgekit.train.engine.run`).

    Example:
        >>> from edgekit.data import sample_data_yaml
        >>> train(TrainOptions("yolo-lite", str(sample_data_yaml()), imgsz=64, epochs=1, batch=8))  # doctest: +SKIP
        {'out': 'runs/train/yolo-lite', 'best': 'runs/train/yolo-lite/weights/best.pt', ..., 'epochs': 1, 'val': {...}}
    """
    task = TASKS.get(type(opts))
    if task is None:
        raise TypeError(f"train() takes {' or '.join(t.__name__ for t in TASKS)}, not {type(opts).__name__}")
    return run(task(opts))
