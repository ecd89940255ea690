"""Training of the registered detectors (host side: imports torch)."""

from edgekit.train.trainer import TrainOptions, train

__all__ = ["TrainOptions", "train"]
