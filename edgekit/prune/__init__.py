"""Structured channel pruning over the dependency graph (Torch-Pruning's DepGraph), with fine-tuning.

Whole channels leave the convs (and everything coupled to them: batch norms, residual
partners, concatenations, depthwise groups), so the exported model is smaller and faster on
any CPU, unlike zeroed weights. Where things are:

- ``options.py``: :class:`PruneOptions`, what ``edgekit prune`` takes;
- ``protect.py``: the layers that keep their shape (detection heads, ``--ignore``);
- ``importance.py``: the channel ranking (l1, l2, taylor, bn-scale);
- ``schedule.py``: one pruning step on the graph, to a ratio or to a MAC budget;
- ``finetune.py``: fine-tuning through :func:`edgekit.train.train`;
- ``run.py``: :func:`prune`, the K steps and the pruned checkpoint;
- ``model.py``: :func:`prune_model`, one step on any detector module (Darknet cfg models too);
- ``darknet_run.py``, ``darknet_out.py``: ``--weights model.cfg``, written back as ``.cfg`` + ``.weights``;
- ``measure.py`` and ``report.py``: before/after figures, artifact latency, the HTML report.

Example:
    >>> from edgekit.prune import PruneOptions, prune  # doctest: +SKIP
    >>> prune(PruneOptions("best.pt", "data.yaml", ratio=0.3, steps=3))["after"]["macs"]  # doctest: +SKIP
"""

from edgekit.prune.model import prune_model
from edgekit.prune.options import PruneOptions
from edgekit.prune.run import prune

__all__ = ["PruneOptions", "prune", "prune_model"]
