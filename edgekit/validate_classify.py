"""Validation of a torch classifier through the *same* preprocessing and numpy post-processing
that the runtime uses: ``runtime.preprocess`` (letterbox) -> forward -> ``runtime.classify.topk``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def predict_items(model, items: list[tuple[Path, int]], imgsz: int, k: int = 5, batch: int = 32,
                  device: str = "cpu", progress: bool = False):
    """Top-k classes and probabilities of a torch classifier on ``(path, class)`` items.

    Returns (classes (N, k), probabilities (N, k), seconds per image in forward + post-processing).
    """
    import torch
    from tqdm import tqdm

    from edgekit.runtime.classify import topk
    from edgekit.runtime.model import read_image
    from edgekit.runtime.preprocess import preprocess

    model = model.to(device).eval()
    ids, probs, spent = [], [], 0.0
    for start in tqdm(range(0, len(items), batch), desc="val", disable=not progress, leave=False):
        tensors = []
        for path, _ in items[start:start + batch]:
            img = read_image(path)  # the pixel limit and one-line errors of every image edgekit reads
            tensors.append(preprocess(img, imgsz)[0])
        t0 = time.perf_counter()
        with torch.no_grad():
            logits = model(torch.from_numpy(np.concatenate(tensors)).to(device)).float().cpu().numpy()
        i, p = topk(logits, k)
        spent += time.perf_counter() - t0
        ids.append(i)
        probs.append(p)
    n = min(k, model.head_spec["num_classes"])
    if not ids:
        return np.zeros((0, n), np.int64), np.zeros((0, n), np.float32), 0.0
    return np.concatenate(ids), np.concatenate(probs), spent / max(len(items), 1)


def classification_metrics(pred_ids: np.ndarray, pred_probs: np.ndarray, labels: np.ndarray, names: list[str],
                           unsure: float | None = None) -> dict:
    """top-1, top-5, per-class accuracy, confusion matrix (rows: true, columns: predicted).

    Rates are None where there is nothing to count (no images, or every prediction rejected). With ``unsure`` (a threshold on the top probability), predictions below it are
    rejected: ``unsure`` reports the rejected fraction and the accuracy on the rest.

    Example:
        >>> m = classification_metrics(np.array([[0, 1], [0, 1]]), np.array([[.9, .1], [.6, .4]]), np.array([0, 1]), ["a", "b"])
        >>> m["top1"], m["top5"], m["per_class"], m["confusion"]
        (0.5, 1.0, {'a': 1.0, 'b': 0.0}, [[1, 0], [1, 0]])
    """
    def rate(hits: np.ndarray):
        return round(float(hits.mean()), 5) if hits.size else None

    c = len(names)
    labels = np.asarray(labels, np.int64).reshape(-1)
    pred_ids = np.asarray(pred_ids, np.int64).reshape(len(labels), -1)
    top1_hit = pred_ids[:, 0] == labels
    top5_hit = (pred_ids[:, :5] == labels[:, None]).any(axis=1)
    confusion = np.zeros((c, c), np.int64)
    np.add.at(confusion, (labels, pred_ids[:, 0]), 1)
    out = {"top1": rate(top1_hit), "top5": rate(top5_hit), "top5_k": int(min(5, c)),
           "per_class": {name: rate(top1_hit[labels == j]) for j, name in enumerate(names)},
           "confusion": confusion.tolist()}
    if unsure is not None:
        kept = np.asarray(pred_probs).reshape(len(labels), -1)[:, 0] >= unsure
        out["unsure"] = {"threshold": float(unsure), "rejected": rate(~kept), "top1_kept": rate(top1_hit[kept])}
    return out


def validate_classifier(model, records: list[tuple[Path, int]], names: list[str], imgsz: int, batch: int = 32,
                        device: str = "cpu", progress: bool = False, unsure: float | None = None) -> dict:
    """Accuracy of a torch classifier on ``(image path, class index)`` records.

    Returns:
        ``top1``, ``top5`` (top-min(5, C)), ``per_class`` (name -> top-1 accuracy, None
        without images), ``confusion`` (C x C, rows true, columns predicted), ``images``,
        ``ms_per_image`` (forward + post-processing, this host), and ``unsure`` when a
        reject threshold is given.

    Example:
        >>> from edgekit.models.checkpoint import load_checkpoint  # doctest: +SKIP
        >>> model, ckpt = load_checkpoint("best.pt")  # doctest: +SKIP
        >>> validate_classifier(model, load_image_folder("crops").split("test"), ckpt["names"], 64)["top1"]  # doctest: +SKIP
        0.91
    """
    ids, probs, per_image = predict_items(model, records, imgsz, 5, batch, device, progress)
    labels = np.array([c for _, c in records], np.int64)
    result = classification_metrics(ids, probs, labels, names, unsure)
    result.update({"images": len(records), "ms_per_image": round(per_image * 1000, 3)})
    return result


def validate_classifier_checkpoint(weights: str | os.PathLike, data: str | os.PathLike, split: str = "val",
                                   imgsz: int | None = None, batch: int = 32, device: str = "cpu",
                                   progress: bool = False, unsure: float | None = None) -> dict:
    """``edgekit val`` for classifiers: a checkpoint on an image-folder split.

    Example:
        >>> validate_classifier_checkpoint("runs/train/mobilenetv2-cls/weights/best.pt", "crops", "test")  # doctest: +SKIP
    """
    from edgekit.data.folders import load_image_folder
    from edgekit.errors import EdgekitError
    from edgekit.models.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(weights)
    ds = load_image_folder(data)
    if ds.names != list(ckpt["names"]):
        raise EdgekitError(f"{data} has classes {ds.names} but the model was trained on {ckpt['names']}: "
                           "validate on the same classes")
    size = imgsz or ckpt["imgsz"]
    result = validate_classifier(model, ds.split(split), ds.names, size, batch, device, progress, unsure)
    result.update({"model": ckpt["model"], "task": "classify", "weights": str(weights), "data": str(data),
                   "split": split, "imgsz": size})
    return result
