"""Checkpoints: plain dicts of tensors and JSON-able metadata, loadable with ``weights_only=True``.

A checkpoint carries everything needed to rebuild and use the model without the training
run: model name and options, class names, input size, anchors and ``head_spec``, the input
``resize`` mode (``letterbox`` or ``stretch``: a Darknet cfg's own), the data hash, metrics, and
(in ``last.pt``) the optimizer for ``--resume``.
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


def read_checkpoint(path: str | os.PathLike, resume: bool = False) -> dict:
    """Load a checkpoint dict safely (``weights_only=True``) and check its contents, with one-line errors.

    ``resume``: also require what ``--resume`` needs (``last.pt``'s epoch, optimizer and options).

    Example:
        >>> read_checkpoint("missing.pt")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        edgekit.errors.EdgekitError: missing.pt does not exist: ...
    """
    return checked_checkpoint(load_file(path), path, resume)


def load_file(path: str | os.PathLike):
    """What a ``.pt`` file holds, loaded with ``weights_only=True``; one-line errors for a missing or unloadable file."""
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"{path} does not exist: give the path to a checkpoint such as runs/train/<run>/weights/best.pt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, truncation and zip errors all land here
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise EdgekitError(f"{path} is not a loadable checkpoint ({reason}): it may be truncated or not an edgekit checkpoint") from None


def checked_checkpoint(ckpt, path: str | os.PathLike, resume: bool = False) -> dict:
    """``ckpt`` (loaded from ``path``) when it is an edgekit checkpoint with sound contents; else one-line error."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise EdgekitError(f"{path} is not an edgekit checkpoint: train one with `edgekit train`, or export a Darknet .cfg directly")
    problem = checkpoint_problem(ckpt, resume)
    if problem:
        raise EdgekitError(f"{path} has the edgekit checkpoint tag but {problem}: it is damaged or was not written by "
                           "edgekit; use the run's other checkpoint (best.pt/last.pt) or train again")
    return ckpt


def _is_count(v, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _anchors_ok(a) -> bool:
    import math

    def pair(p):
        return (isinstance(p, (list, tuple)) and len(p) == 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0 for x in p))

    # a flat list of (w, h) pairs, or one list of pairs per output scale
    return isinstance(a, (list, tuple)) and len(a) > 0 and (all(pair(p) for p in a) or all(
        isinstance(s, (list, tuple)) and s and all(pair(p) for p in s) for s in a))


# key -> (what it must be, check); the keys every reader of a checkpoint uses
SCHEMA = {
    "model": ("a model name", lambda v: isinstance(v, str) and v.strip() != ""),
    "names": ("a non-empty list of class names", lambda v: isinstance(v, (list, tuple)) and len(v) > 0
              and all(isinstance(n, str) for n in v)),
    "imgsz": ("an input size from 1 to 8192 (or [h, w] of two)", lambda v: (_is_count(v, 1) and v <= 8192) or (
        isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_count(s, 1) and s <= 8192 for s in v))),
    "state_dict": ("a non-empty dict of tensors", lambda v: isinstance(v, dict) and len(v) > 0
                   and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())),
    "head_spec": ("a dict", lambda v: isinstance(v, dict)),
}
OPTIONAL = {
    "task": ("'detect' or 'classify'", lambda v: v in ("detect", "classify")),
    "model_kwargs": ("a dict", lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v)),
    "anchors": ("a list of positive (w, h) pairs, or null", lambda v: v is None or _anchors_ok(v)),
    "epoch": ("a whole number >= 0", lambda v: _is_count(v)),
    "ema_updates": ("a whole number >= 0", lambda v: _is_count(v)),
    "train_options": ("a dict", lambda v: isinstance(v, dict)),
    "optimizer": ("a dict", lambda v: isinstance(v, dict)),
    "data": ("a dict", lambda v: isinstance(v, dict)),
    "metrics": ("a dict", lambda v: isinstance(v, dict)),
    "resize": ("'letterbox' or 'stretch'", lambda v: v in ("letterbox", "stretch")),
}
RESUME_KEYS = ("epoch", "ema_updates", "train_options", "optimizer")


def checkpoint_problem(ckpt: dict, resume: bool = False) -> str | None:
    """What is wrong with a checkpoint dict's contents (missing keys, wrong types, impossible values), or None.

    Checked before anything is built from it, so a damaged file is one line, not a KeyError deep in a reader.
    ``resume`` also asks for what ``--resume`` needs (epoch, optimizer, options).

    Example:
        >>> checkpoint_problem({"model": "yolo-lite", "names": ["a"], "imgsz": -64, "state_dict": {}, "head_spec": {}})
        "'imgsz' is -64, not an input size from 1 to 8192"
        >>> checkpoint_problem({"model": "yolo-lite", "names": "a"})
        "'names' is 'a', not a non-empty list of class names"
    """
    for key, (what, ok) in SCHEMA.items():
        if key not in ckpt:
            return f"no '{key}' ({what})"
        if not ok(ckpt[key]):
            return f"'{key}' is {_short(ckpt[key])}, not {what}"
    for key, (what, ok) in OPTIONAL.items():
        if key in ckpt and not ok(ckpt[key]):
            return f"'{key}' is {_short(ckpt[key])}, not {what}"
    if ckpt.get("task", "detect") == "detect" and "anchors" not in ckpt:
        return "no 'anchors' (a detector's anchors, or null for the family's defaults)"
    if resume:
        missing = [k for k in RESUME_KEYS if k not in ckpt]
        if missing:
            return f"no {', '.join(repr(k) for k in missing)} (what --resume needs; best.pt has none: resume from last.pt)"
        if "epochs" not in ckpt["train_options"]:
            return "'train_options' has no 'epochs'"
    return None


def _short(v) -> str:
    if isinstance(v, dict):
        return f"a dict of {len(v)} entries"
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def model_from_checkpoint(ckpt: dict):
    """Rebuild the model of a checkpoint dict and load its weights (eval mode).

    Example:
        >>> m = model_from_checkpoint(read_checkpoint("runs/train/yolo-lite/weights/best.pt"))  # doctest: +SKIP
    """
    from edgekit.models import create_model

    # classifiers (task "classify") have no anchors; checkpoints older than the task key are detectors
    anchors = {} if ckpt.get("task", "detect") == "classify" else {"anchors": ckpt["anchors"]}
    try:
        model = create_model(ckpt["model"], num_classes=len(ckpt["names"]), **anchors, **ckpt.get("model_kwargs", {}))
    except (TypeError, ValueError, KeyError, IndexError) as exc:  # model_kwargs/anchors the model cannot take
        raise EdgekitError(f"the checkpoint's model '{ckpt['model']}' cannot be built from its options "
                           f"({str(exc).splitlines()[0][:120]}): the file is damaged or from another edgekit; train again") from None
    if ckpt.get("pruned"):  # `edgekit prune` output: the registry's layers with the stored channel counts
        from edgekit.models.channels import apply_channel_counts

        apply_channel_counts(model, ckpt["pruned"])
    model.head_spec = dict(ckpt["head_spec"])
    if ckpt.get("task", "detect") == "detect":
        # what the model was trained on; checkpoints older than the key were all trained letterboxed
        model.resize = ckpt.get("resize", "letterbox")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise EdgekitError(f"checkpoint weights do not fit model '{ckpt['model']}': {str(exc).splitlines()[0]}") from None
    return model.eval()


def load_checkpoint(path: str | os.PathLike):
    """(model, checkpoint dict) from a ``.pt`` written by ``edgekit train``."""
    ckpt = read_checkpoint(path)
    return model_from_checkpoint(ckpt), ckpt
