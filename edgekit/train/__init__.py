"""Training of the registered models (host side: imports torch).

One engine (:mod:`edgekit.train.engine`) runs every task through the hooks of
:class:`edgekit.train.task.TrainTask`: :mod:`edgekit.train.detect` and
:mod:`edgekit.train.classify`.
"""

from edgekit.train.api import train
from edgekit.train.classify import ClassifyOptions, train_classifier
from edgekit.train.detect import TrainOptions

__all__ = ["ClassifyOptions", "TrainOptions", "train", "train_classifier"]
