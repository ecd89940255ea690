"""Detectors (host side: importing this imports torch).

A registry in timm's shape: ``create_model(name, num_classes=, anchors=)``,
``list_models()``. Adding a model is one file with a ``@register_model`` factory plus one
import line below. ``load_darknet(cfg, weights)`` builds the same kind of module from the
Darknet files users already have.

Example:
    >>> from edgekit.models import create_model, list_models
    >>> "yolo-lite" in list_models()
    True
"""

from edgekit.models.registry import create_model, get_model_factory, list_models, model_task, register_model
from edgekit.models.anchors import kmeans_anchors, split_anchors, anchor_fitness
from edgekit.models.complexity import count_macs, count_params
from edgekit.models.darknet import load_darknet

# model families: one import line each registers them
from edgekit.models import tiny_yolov2, tiny_yolov3, yolo_lite, mobilenetv2_yolo, mobilenetv2_cls  # noqa: F401
from edgekit.models import darknet_model  # noqa: F401  ("darknet": any .cfg, its text stored in the checkpoint)

__all__ = ["create_model", "list_models", "model_task", "register_model", "get_model_factory", "kmeans_anchors",
           "split_anchors", "anchor_fitness", "count_macs", "count_params", "load_darknet"]
