"""Model registry, in the shape of timm's ``register_model`` / ``create_model``.

Adding a detector is one file with a decorated factory plus one import line in
``edgekit/models/__init__.py``. A factory takes ``num_classes``, ``anchors`` (per output,
(w, h) in input pixels, or one flat (n, 2) list that is split across outputs) and its own
keyword options, and returns a module with a ``head_spec``.

Each model is registered for a task: ``"detect"`` (the default) or ``"classify"``.
Classifier factories take no ``anchors``; their ``head_spec`` has ``type: "classify"``.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable

from torch import nn

from edgekit.errors import EdgekitError

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}
TASKS = ("detect", "classify")


def register_model(name: str, task: str = "detect") -> Callable:
    """Decorator registering a model factory under ``name`` for ``task`` (detect or classify).

    Example:
        >>> @register_model("my-det")  # doctest: +SKIP
        ... def my_det(num_classes=80, anchors=None, width=1.0, **kw):
        ...     return build_my_det(num_classes, anchors, width)
    """
    if task not in TASKS:
        raise EdgekitError(f"model '{name}' registered for unknown task '{task}': use one of {', '.join(TASKS)}")

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS and _MODELS[name] is not fn:
            raise EdgekitError(f"model '{name}' is registered twice")
        _MODELS[name] = fn
        _TASKS[name] = task
        return fn
    return wrap


def list_models(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` filters with shell wildcards, ``task`` by task.

    Example:
        >>> import edgekit.models
        >>> list_models("tiny-*")
        ['tiny-yolov2', 'tiny-yolov3']
        >>> list_models(task="classify")
        ['mobilenetv2-cls']
    """
    names = [n for n in sorted(_MODELS) if task is None or _TASKS[n] == task]
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def model_task(name: str) -> str:
    """The task a registered model solves: ``"detect"`` or ``"classify"``.

    Example:
        >>> import edgekit.models
        >>> model_task("yolo-lite"), model_task("mobilenetv2-cls")
        ('detect', 'classify')
    """
    get_model_factory(name)
    return _TASKS[name]


def get_model_factory(name: str) -> Callable[..., nn.Module]:
    """The factory registered under ``name``; EdgekitError naming the known ones if none."""
    if name not in _MODELS:
        raise EdgekitError(f"unknown model '{name}': available models are {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, num_classes: int = 80, anchors=None, **kwargs) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`.
        num_classes: number of classes.
        anchors: per output, a list of (w, h) in input pixels; or a flat (n, 2) list split
            across outputs by size; None for the family's defaults.
        **kwargs: family options (``width``, ``imgsz``...).

    Returns:
        An ``nn.Module`` whose forward returns raw head maps and whose ``head_spec``
        says how to decode them.

    Example:
        >>> m = create_model("tiny-yolov3", num_classes=3, imgsz=416)
        >>> m.head_spec["strides"]
        [32, 16]
    """
    factory = get_model_factory(name)
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params] if not takes_any else []
    if unknown:
        options = [k for k in params if k not in ("num_classes", "anchors")]
        raise EdgekitError(f"model '{name}' has no option {', '.join(unknown)}: its options are {', '.join(options)}")
    if num_classes < 1:
        raise EdgekitError(f"num_classes must be >= 1, got {num_classes}")
    if "anchors" not in params and not takes_any:  # classifiers have no anchors
        if anchors is not None:
            raise EdgekitError(f"model '{name}' is a {_TASKS[name]} model and takes no anchors: leave anchors out")
        return factory(num_classes=num_classes, **kwargs)
    return factory(num_classes=num_classes, anchors=anchors, **kwargs)
