"""Checkpoints: plain dicts of tensors and JSON-able metadata, loadable with ``weights_only=True``.

A checkpoint carries everything needed to rebuild and use the model without the training
run: model name and options, class names, input size, anchors and ``head_spec``, the data
hash, metrics, and (in ``last.pt``) the optimizer for ``--resume``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from edgekit.errors import EdgekitError

FORMAT = "edgekit-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> Path:
    """Serialize ``ckpt`` to ``path`` atomically (an interrupted save leaves the old file).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.pt"
        >>> _ = save_checkpoint(p, {"model": "yolo-lite", "state_dict": {}})
        >>> torch.load(p, weights_only=True)["format"]
        'edgekit-checkpoint-1'
    """
    from edgekit.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({**ckpt, "format": FORMAT}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict safely (``weights_only=True``), with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"{path} does not exist: give the path to a checkpoint such as runs/train/<run>/weights/best.pt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, truncation and zip errors all land here
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise EdgekitError(f"{path} is not a loadable checkpoint ({reason}): it may be truncated or not an edgekit checkpoint") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise EdgekitError(f"{path} is not an edgekit checkpoint: train one with `edgekit train`, or export a Darknet .cfg directly")
    return ckpt


def model_from_checkpoint(ckpt: dict):
    """Rebuild the model of a checkpoint dict and load its weights (eval mode).

    Example:
        >>> m = model_from_checkpoint(read_checkpoint("runs/train/yolo-lite/weights/best.pt"))  # doctest: +SKIP
    """
    from edgekit.models import create_model

    # classifiers (task "classify") have no anchors; checkpoints older than the task key are detectors
    anchors = {} if ckpt.get("task", "detect") == "classify" else {"anchors": ckpt["anchors"]}
    model = create_model(ckpt["model"], num_classes=len(ckpt["names"]), **anchors, **ckpt.get("model_kwargs", {}))
    model.head_spec = dict(ckpt["head_spec"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise EdgekitError(f"checkpoint weights do not fit model '{ckpt['model']}': {str(exc).splitlines()[0]}") from None
    return model.eval()


def load_checkpoint(path: str | os.PathLike):
    """(model, checkpoint dict) from a ``.pt`` written by ``edgekit train``."""
    ckpt = read_checkpoint(path)
    return model_from_checkpoint(ckpt), ckpt
